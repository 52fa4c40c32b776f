"""Issue 17 item 3: damaged bookkeeping never makes the cleanup delete or evict what is in use.

What is in use comes from what the system says: libvirt's running domains and the files of their disks' chains
(faked here through the cleanup's hypervisor seam; libvirt_conn.Libvirt.running_domains is tested against a fake
libvirt module), the recorded starter's pid and start time, and the lock a running prepare hook holds on its
instance directory. An unreadable instance.json means "keep it and log it"."""

import io
import json
import os
import subprocess

import pytest

from condor_cloud.core import config
from condor_cloud.node import instance_dirs, libvirt_conn, reclaim
from condor_cloud.node.as_condor import cleanup
from condor_cloud.node.as_condor_cloud import prepare_hook
from condor_cloud.node.cache import ImageCache

from support import Hypervisor, job_ad


pytestmark = pytest.mark.subprocess  # real prepare hooks (qemu-img), stand-in starters


def prepare(starter_pid=None, **attrs):
    out = io.StringIO()
    assert prepare_hook.main([], io.StringIO(job_ad(**attrs)), out, starter_pid=starter_pid or os.getpid()) == 0
    values = dict(line.split(" = ", 1) for line in out.getvalue().splitlines())
    return json.loads(values["CloudInstanceId"]), json.loads(values["CloudInstanceDir"])


def run_cleanup(hv):
    log = io.StringIO()
    assert cleanup.main([], None, io.StringIO(), hypervisor=hv, log=log) == 0
    return log.getvalue()


def entry_names(cloud):
    return [e.filename for e in ImageCache(str(cloud.cache)).entries()]


def damage(path, how):
    meta = os.path.join(path, "instance.json")
    with open(meta, "rb") as f:
        text = f.read()
    if how == "missing":
        os.unlink(meta)
        return
    with open(meta, "wb") as f:
        f.write({"truncated": text[: len(text) // 2], "empty": b"",
                 "names nothing": json.dumps({"id": os.path.basename(path)}).encode()}[how])


# -- the case ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["truncated", "empty", "missing", "names nothing"])
@pytest.mark.parametrize("domain_runs", [True, False], ids=["domain running", "domain not started"])
def test_a_live_instance_with_damaged_bookkeeping_is_kept_and_its_base_not_evicted(demo, how, domain_runs):
    instance_id, path = prepare()                       # its starter (this process) is alive
    [entry] = ImageCache(str(demo.cache)).entries()
    overlay = os.path.join(path, "vda.qcow2")
    before = sorted(os.listdir(path))
    damage(path, how)
    os.utime(path, (1, 1))                              # far older than CLOUD_ORPHAN_GRACE
    demo.write_config("CLOUD_CACHE_MAX_SIZE = 1\n")     # every entry is over the limit
    domains = [libvirt_conn.Domain("u-1", "alice_7.0", (overlay, entry.path))] if domain_runs else []
    hv = Hypervisor(domains)
    log = run_cleanup(hv)
    assert os.path.isdir(path) and set(before) - {"instance.json"} <= set(os.listdir(path))
    assert entry_names(demo) == [entry.filename]        # the base the live overlay backs onto stays
    assert hv.destroyed == []
    assert "condor-cloud cleanup: instance directory %s is kept: " % path in log
    assert "remove it by hand once no domain uses them" in log


def test_an_orphan_is_kept_while_another_domain_uses_its_overlay(demo):
    # A domain that is not the recorded one (vm-gahp's fallback XML gets its own UUID) still runs on the overlay.
    starter = subprocess.Popen(["sleep", "600"])
    try:
        instance_id, path = prepare(starter_pid=starter.pid)
    finally:
        starter.kill()
        starter.wait()
    recorded = instance_dirs.load(str(demo.instances), instance_id).meta["uuid"]
    [entry] = ImageCache(str(demo.cache)).entries()
    hv = Hypervisor([libvirt_conn.Domain("fallback-uuid", "alice_7.0", (os.path.join(path, "vda.qcow2"), entry.path))])
    log = io.StringIO()
    settings = config.load_settings()
    assert reclaim.reclaim_orphans(settings, hv, log=log) == []
    assert os.path.isdir(path) and hv.destroyed == [recorded]
    assert log.getvalue() == ("condor-cloud cleanup: orphan %s is kept: domain alice_7.0 (fallback-uuid) still "
                              "uses its disks\n" % instance_id)
    hv.domains = []                                     # that domain ended: reclaimed
    assert reclaim.reclaim_orphans(settings, hv, log=io.StringIO()) == [instance_id]


def test_an_entry_in_a_running_domains_chain_is_never_evicted(demo):
    # No instance directory names it any more (removed by hand, say): libvirt's answer alone keeps it.
    instance_id, path = prepare()
    [entry] = ImageCache(str(demo.cache)).entries()
    instance_dirs.remove(str(demo.instances), instance_id)
    demo.write_config("CLOUD_CACHE_MAX_SIZE = 1\n")
    run_cleanup(Hypervisor([libvirt_conn.Domain("u-1", "alice_7.0", ("/elsewhere/vda.qcow2", entry.path))]))
    assert entry_names(demo) == [entry.filename]
    log = run_cleanup(Hypervisor(fail=True))            # libvirt does not answer: nothing is evicted
    assert entry_names(demo) == [entry.filename]
    assert "no cache entry evicted until libvirt answers" in log
    run_cleanup(Hypervisor())                           # libvirt says nothing runs: evicted
    assert entry_names(demo) == []


def test_a_running_domain_keeps_a_damaged_directory_through_a_symlinked_instance_dir(demo, tmp_path):
    # The domain XML names the path the instance recorded; the cleanup may see the directory by another name.
    link = tmp_path / "instances-link"
    os.symlink(str(demo.instances), str(link))
    instance_id, path = prepare()
    damage(path, "truncated")
    os.unlink(os.path.join(path, "seed.iso"))
    os.utime(path, (1, 1))
    overlay = os.path.join(str(link), instance_id, "vda.qcow2")
    log = run_cleanup(Hypervisor([libvirt_conn.Domain("u-1", "alice_7.0", (overlay,))]))
    assert os.path.isdir(path)
    assert "that domain alice_7.0 (u-1) uses" in log


def test_a_directory_whose_prepare_still_runs_is_kept(demo):
    # Only bookkeeping in it (its prepare has made no disk yet) and older than the grace period, but its prepare
    # hook holds the directory's lock: kept; removed once the lock is gone.
    settings = config.load_settings()
    path = demo.instances / "9.0-0000beef"
    path.mkdir()
    (path / "instance.json").write_bytes(b"{\"id\": ")
    os.utime(str(path), (1, 1))
    fd = reclaim.hold_prepare_lock(str(path))
    try:
        assert reclaim.reclaim_orphans(settings, Hypervisor(), log=io.StringIO()) == []
        assert path.is_dir()
    finally:
        os.close(fd)
    assert reclaim.reclaim_orphans(settings, Hypervisor(), log=io.StringIO()) == ["9.0-0000beef"]


def test_an_orphan_whose_prepare_still_runs_is_kept(demo):
    # The starter was killed while its prepare hook ran: the hook goes on (until CLOUD_PREPARE_TIMEOUT).
    starter = subprocess.Popen(["sleep", "600"])
    instance_id, path = prepare(starter_pid=starter.pid)
    starter.kill()
    starter.wait()
    settings = config.load_settings()
    fd = reclaim.hold_prepare_lock(path)
    try:
        assert reclaim.reclaim_orphans(settings, Hypervisor(), log=io.StringIO()) == []
    finally:
        os.close(fd)
    assert reclaim.reclaim_orphans(settings, Hypervisor(), log=io.StringIO()) == [instance_id]


def test_the_prepare_hook_holds_its_directorys_lock_while_it_runs(demo, monkeypatch):
    seen = []
    real = prepare_hook.qemuimg.create_overlay

    def create_overlay(qemu_img, base, fmt, overlay):
        seen.append(reclaim.prepare_running(os.path.dirname(overlay)))
        return real(qemu_img, base, fmt, overlay)

    monkeypatch.setattr(prepare_hook.qemuimg, "create_overlay", create_overlay)
    _, path = prepare()
    assert seen == [True] and not reclaim.prepare_running(path)   # released when the hook returns


def test_eviction_reads_the_overlay_header_when_instance_json_is_damaged_and_refuses_when_it_cannot(demo):
    instance_id, path = prepare()
    [entry] = ImageCache(str(demo.cache)).entries()
    damage(path, "truncated")
    log = io.StringIO()
    assert reclaim.entries_in_use(str(demo.instances), str(demo.cache), log=log) == {entry.filename}
    with open(os.path.join(path, "vda.qcow2"), "r+b") as f:
        f.truncate(12)                                  # the header is cut: which base it uses is unknown
    used = reclaim.entries_in_use(str(demo.instances), str(demo.cache), log=log)
    assert "any-entry@0123456789abcdef.qcow2" in used   # everything counts as in use: nothing is evicted
    assert "evicting nothing: %s (instance %s has a damaged instance.json)" % (path, instance_id) in log.getvalue()
    demo.write_config("CLOUD_CACHE_MAX_SIZE = 1\n")
    run_cleanup(Hypervisor())
    assert entry_names(demo) == [entry.filename]
