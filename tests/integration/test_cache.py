"""The node's image cache and instances' copy-on-write overlays on a real pool (HTCondor + condor-vm-gahp +
libvirt + QEMU booting real guests, by-hand submits; issue "Real pool end to end", scenarios c, d and g; the others
are in test_pool.py, and h, where the next instance of a cached image lands, in test_placement.py)."""

import json
import os
import time

import pytest

from helpers import (BOOTED, CACHE, INSTANCES, STORE, cache_entries, console, instance_dirs, remove_and_wait,
                     sha256, submit)
from wait import wait_for


@pytest.fixture(scope="module")
def pool(sandbox, test_images):
    sandbox.put_image("sleeper.qcow2", test_images["sleep"])
    sandbox.put_image("writer.qcow2", test_images["write"])
    return sandbox


def overlay_has(path, needle):
    with open(path, "rb") as f:
        return needle in f.read()


# c. a guest's write lands in its own overlay; the base is unchanged; a second instance does not see it
def test_guest_writes_land_in_its_own_overlay(pool):
    marker = b"CONDOR-CLOUD-GUEST-WROTE variant=write"
    cluster = submit(pool, "writer.qcow2")
    wait_for("the guest's write", lambda: "CONDOR-CLOUD-GUEST-WROTE-DISK" in console(pool, cluster), 240,
             explain=lambda: pool.diagnose(cluster))
    [instance] = instance_dirs(pool, cluster)
    overlay = pool.path("%s/%s/vda.qcow2" % (INSTANCES, instance))
    # The guest powered off; the instance stays until vm-gahp's next status poll, so its overlay can be read.
    assert overlay_has(overlay, marker)
    [entry] = cache_entries(pool, "writer.qcow2")
    base = pool.path(CACHE + "/" + entry)
    assert not overlay_has(base, marker)
    base_sum = sha256(base)
    with open(pool.path(STORE + "/writer.qcow2"), "rb") as f:
        assert marker not in f.read()
    pool.wait_job(cluster, ("completed",), timeout=180)
    # A second instance starts from the unchanged base: its fresh overlay holds no write of the first.
    second = submit(pool, "writer.qcow2")
    wait_for("the second instance's overlay", lambda: instance_dirs(pool, second), 120,
             explain=lambda: pool.diagnose(second))
    [instance2] = instance_dirs(pool, second)
    wait_for("the second guest's write", lambda: "CONDOR-CLOUD-GUEST-WROTE-DISK" in console(pool, second), 240,
             explain=lambda: pool.diagnose(second))
    assert instance2 != instance
    assert sha256(base) == base_sum
    pool.wait_job(second, ("completed",), timeout=180)


# d. 8 instances of one not-yet-cached image at once on one node: exactly one copy, all boot
def test_boot_storm_copies_once_and_all_boot(pool, test_images):
    pool.put_image("storm.qcow2", test_images["poweroff"])
    cluster = submit(pool, "storm.qcow2", count=8)
    for proc in range(8):
        wait_for("instance %d to boot" % proc, lambda p=proc: BOOTED in console(pool, cluster, p), 420,
                 explain=lambda: pool.diagnose(cluster))
    for proc in range(8):
        pool.wait_job(cluster, ("completed",), timeout=240, proc=proc)
    assert len(cache_entries(pool, "storm.qcow2")) == 1
    with open(pool.path(CACHE + "/.fills.log")) as f:
        fills = [line for line in f if " entry=storm.qcow2@" in line]
    assert len(fills) == 1, fills


# g. a cache over its limit: least recently used bases are evicted, a base in use never is
def test_cache_eviction_is_lru_and_spares_bases_in_use(pool, test_images):
    for name in ("old.qcow2", "new.qcow2"):
        pool.put_image(name, test_images["poweroff"])
    for name in ("old.qcow2", "new.qcow2"):  # old used first, so least recently used
        c = submit(pool, name)
        pool.wait_job(c, ("completed",), timeout=300)
        time.sleep(1)
    busy = submit(pool, "sleeper.qcow2")
    wait_for("the busy guest to boot", lambda: BOOTED in console(pool, busy), 240, explain=lambda: pool.diagnose(busy))
    sizes = {n: os.stat(pool.path(CACHE + "/" + n)).st_blocks * 512 for n in cache_entries(pool)}
    in_use = set()
    for inst in instance_dirs(pool):
        with open(pool.path("%s/%s/instance.json" % (INSTANCES, inst))) as f:
            in_use.update(json.load(f)["bases"])
    assert any(n.startswith("sleeper.qcow2@") for n in in_use)
    keep = [n for n in sizes if n in in_use or n.startswith("new.qcow2@")]
    limit = sum(sizes[n] for n in keep) + min(sizes.values()) // 2
    config = pool.path("/etc/condor/config.d/98test-cache-limit.config")
    with open(config, "w") as f:
        f.write("CLOUD_CACHE_MAX_SIZE = %d\n" % limit)
    try:
        wait_for("eviction down to the limit",
                 lambda: sum(os.stat(pool.path(CACHE + "/" + n)).st_blocks * 512 for n in cache_entries(pool)) <= limit,
                 60)
        left = cache_entries(pool)
        assert any(n.startswith("sleeper.qcow2@") for n in left)   # in use: never evicted
        assert any(n.startswith("new.qcow2@") for n in left)       # more recently used than old
        assert not any(n.startswith("old.qcow2@") for n in left)
        ads = pool.run(["condor_status", "-af", "CloudCachedImages"]).stdout
        wait_for("the machine ad to follow", lambda: "old.qcow2" not in pool.run(
            ["condor_status", "-af", "CloudCachedImages"]).stdout, 30)
        assert "sleeper.qcow2" in ads
    finally:
        os.unlink(config)
        remove_and_wait(pool, busy)
