"""The node engine on a real pool: HTCondor 23.9 + condor-vm-gahp + libvirt + QEMU booting real guests, all jobs
submitted with condor_submit and the by-hand submit description (issue "Real pool end to end", scenarios a, b, e, f
and i, and a DELETE of a guest that honours ACPI; the cache and overlay scenarios c, d and g are in test_cache.py,
and h, where the next instance of a cached image lands on a two-node pool, in test_placement.py)."""

import json
import os
import re
import time

import pytest

from helpers import (BOOTED, CACHE, INSTANCES, STORE, by_hand, cache_entries, console, instance_dirs,
                     remove_and_wait, sha256, submit)
from host import pids_in_root
from wait import wait_for



def has_vm(sb):
    out = sb.run(["condor_status", "-af", "Name", "HasVM"]).stdout
    return [line for line in out.splitlines() if line.strip()]


def domains(sb, cluster=None):
    """Names of the libvirt domains (of one job cluster: vm-gahp names them <user>_<cluster>.<proc>)."""
    names = [line.strip() for line in sb.virsh("list", "--all", "--name").splitlines() if line.strip()]
    return [n for n in names if cluster is None or n.endswith("_%d.0" % cluster)]


def shutdown_reason(sb, cluster):
    """How the job's domain last stopped, from libvirt's QEMU log: "shutdown" (the guest powered itself off) or
    "destroyed" (killed from outside); None while it runs."""
    found = []
    for name in os.listdir(sb.path("/var/log/libvirt/qemu")):
        if name.endswith("_%d.0.log" % cluster):
            with open(sb.path("/var/log/libvirt/qemu/" + name), errors="replace") as f:
                found += re.findall(r"^\S+ \S+: shutting down, reason=(\w+)", f.read(), re.M)
    return found[-1] if found else None


def domain_uuids(sb):
    return [line.strip() for line in sb.virsh("list", "--all", "--uuid").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def pool(sandbox, test_images):
    sandbox.put_image("demo.qcow2", test_images["poweroff"])
    sandbox.put_image("sleeper.qcow2", test_images["sleep"])
    sandbox.put_image("acpi.qcow2", test_images["acpi"])
    return sandbox


# a. the by-hand submit boots the guest; a guest that powers off completes the job with exit code 0
def test_by_hand_submit_boots_and_completes(pool):
    cluster = submit(pool, "demo.qcow2")
    wait_for("the guest's boot marker", lambda: BOOTED in console(pool, cluster), 240,
             explain=lambda: pool.diagnose(cluster))
    assert pool.wait_job(cluster, ("completed",), timeout=180) == "completed"
    ad = pool.job_ad(cluster)
    assert ad.get("ExitCode") == "0" and ad.get("ExitBySignal", "false") == "false"
    wait_for("the exit hook to remove the instance", lambda: instance_dirs(pool, cluster) == [], 60)
    assert cache_entries(pool, "demo.qcow2")  # the base stays cached for the next instance


# b. condor_rm of a running instance: domain, overlay and instance directory gone; cached base unchanged
def test_condor_rm_removes_everything_but_the_cached_base(pool):
    cluster = submit(pool, "sleeper.qcow2")
    wait_for("the guest to boot", lambda: BOOTED in console(pool, cluster), 240, explain=lambda: pool.diagnose(cluster))
    [entry] = cache_entries(pool, "sleeper.qcow2")
    base_sum = sha256(pool.path(CACHE + "/" + entry))
    [instance] = instance_dirs(pool, cluster)
    assert os.path.exists(pool.path("%s/%s/vda.qcow2" % (INSTANCES, instance)))
    assert domains(pool, cluster)
    remove_and_wait(pool, cluster)
    wait_for("the instance directory to go", lambda: not os.path.exists(pool.path(INSTANCES + "/" + instance)), 60)
    wait_for("the domain to go", lambda: domains(pool, cluster) == [], 60)
    assert sha256(pool.path(CACHE + "/" + entry)) == base_sum
    assert shutdown_reason(pool, cluster) == "destroyed"      # this guest ignores ACPI: HTCondor destroyed it


# b2. condor_rm of a guest that honours ACPI: it shuts itself down cleanly, and nothing of it is left
def test_condor_rm_lets_a_guest_that_honours_acpi_shut_down(pool):
    cluster = submit(pool, "acpi.qcow2")
    wait_for("the guest to boot", lambda: BOOTED in console(pool, cluster), 240, explain=lambda: pool.diagnose(cluster))
    [instance] = instance_dirs(pool, cluster)
    assert shutdown_reason(pool, cluster) is None
    remove_and_wait(pool, cluster)
    wait_for("the domain to go", lambda: domains(pool, cluster) == [], 60)
    assert shutdown_reason(pool, cluster) == "shutdown"       # powered off by the guest on the ACPI request
    wait_for("the instance directory to go", lambda: not os.path.exists(pool.path(INSTANCES + "/" + instance)), 60)


# i. consoles: the owner reads the serial console with `condor-cloud instance console` (condor_tail through the
# schedd and the starter), nobody else can; with vm_vnc = true the VNC server's host:port reaches condor_q.
def test_owner_reads_the_console_and_vnc_address_is_published(pool):
    cluster = pool.submit(by_hand("sleeper.qcow2", extra=["vm_vnc = true"]), user="alice")
    jid = "%d.0" % cluster
    wait_for("the guest to boot", lambda: BOOTED in console(pool, cluster), 240, explain=lambda: pool.diagnose(cluster))
    assert pool.run(["condor_q", jid, "-af", "Out", "TransferOut"]).stdout.split() == ["console.log", "false"]
    read = lambda user: pool.run(["condor-cloud", "instance", "console", jid], user=user, check=False)
    mine = wait_for("the console through condor_tail", lambda: (lambda p: p if BOOTED in p.stdout else None)(
        read("alice")), 60, explain=lambda: pool.diagnose(cluster))
    assert mine.returncode == 0 and "CONDOR-CLOUD-GUEST-BOOTED variant=sleep" in mine.stdout
    assert mine.stdout in console(pool, cluster)             # the node's log, not a copy of something else
    theirs = read("bob")
    assert theirs.returncode == 1 and "bob is not authorized" in theirs.stderr and BOOTED not in theirs.stdout
    # VNC: published by the update hook, and a real RFB server answers there (inside the sandbox's namespace).
    endpoint = wait_for("ChirpCloudVNC in condor_q", lambda: (lambda v: v if v != "undefined" else None)(
        pool.run(["condor_q", jid, "-af", "ChirpCloudVNC"]).stdout.strip()), 120,
        explain=lambda: pool.diagnose(cluster))
    host, port = endpoint.rsplit(":", 1)
    assert host == "127.0.0.1" and 5900 <= int(port) < 6000               # CLOUD_VNC_LISTEN's default
    greeting = pool.run(["python3", "-c", "import socket; s = socket.create_connection(('%s', %s), 10); "
                         "print(s.recv(12).decode())" % (host, port)]).stdout
    assert greeting.startswith("RFB 003.")
    remove_and_wait(pool, cluster)
    assert BOOTED in console(pool, cluster)                     # the node keeps the log after the instance


# e. missing image, hostile names, corrupt image: held with a clear reason, node stays in service, nothing written
@pytest.mark.parametrize("disk,reason", [
    ("nothere.qcow2", "image 'nothere.qcow2' not found in %s" % STORE),
    ("../../etc/shadow", "image name '../../etc/shadow' is not allowed"),
    ("/etc/shadow", "image name '/etc/shadow' is not allowed"),
    ("escape.qcow2", "image 'escape.qcow2' is a symlink that points outside %s: refused" % STORE),
    ("corrupt.qcow2", "image 'corrupt.qcow2' should be qcow2 but its contents are raw"),
])
def test_bad_images_are_held_with_a_clear_reason(pool, disk, reason):
    if disk == "escape.qcow2" and not os.path.lexists(pool.path(STORE + "/escape.qcow2")):
        os.symlink("/etc/shadow", pool.path(STORE + "/escape.qcow2"))
    if disk == "corrupt.qcow2":
        with open(pool.path(STORE + "/corrupt.qcow2"), "wb") as f:
            f.write(os.urandom(1 << 20))
        os.chmod(pool.path(STORE + "/corrupt.qcow2"), 0o644)
    shadow_sum = sha256(pool.path("/etc/shadow"))
    cache_before = set(os.listdir(pool.path(CACHE)))
    cluster = submit(pool, disk)
    pool.wait_job(cluster, ("held",), timeout=180)
    hold = pool.hold_reason(cluster)
    assert reason in hold, hold
    assert "PREPARE_JOB" in hold  # from our hook, not from vm-gahp
    assert all(line.split()[-1] == "true" for line in has_vm(pool)), has_vm(pool)
    assert instance_dirs(pool, cluster) == []
    assert set(os.listdir(pool.path(CACHE))) - cache_before <= {".locks"}
    assert sha256(pool.path("/etc/shadow")) == shadow_sum
    pool.run(["condor_rm", str(cluster)], user="alice")


def test_image_naming_a_host_file_is_held_with_the_reason(pool, tmp_path):
    # A qcow2 whose clusters live in an external data file (qemu-img amend -o data_file=...) maps a node file into
    # the guest. Such an image in the store is held by the prepare hook's cache fill; the file is never opened.
    import subprocess

    secret = "/root/condor-cloud-node-secret.raw"
    with open(pool.path(secret), "wb") as f:
        f.write(b"node secret" + b"\0" * 65536)
    os.chmod(pool.path(secret), 0o600)
    image = str(tmp_path / "mapped.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", "data_file=%s" % (tmp_path / "d"), image, "1M"],
                   check=True)
    subprocess.run(["qemu-img", "amend", "-o", "data_file=%s" % secret, image], check=True)
    pool.put_image("mapped.qcow2", image)
    before = os.stat(pool.path(secret))
    cache_before = set(os.listdir(pool.path(CACHE)))
    cluster = submit(pool, "mapped.qcow2")
    pool.wait_job(cluster, ("held",), timeout=180)
    hold = pool.hold_reason(cluster)
    assert "image 'mapped.qcow2' has an external data file; images in the store must be standalone" in hold, hold
    assert "PREPARE_JOB" in hold
    assert instance_dirs(pool, cluster) == [] and cache_entries(pool, "mapped.qcow2") == []
    assert set(os.listdir(pool.path(CACHE))) - cache_before <= {".locks"}
    after = os.stat(pool.path(secret))
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    pool.run(["condor_rm", str(cluster)], user="alice")


def _starter_pids(sb):
    pids = []
    for pid in pids_in_root(sb.root):
        try:
            with open("/proc/%d/comm" % pid) as f:
                if f.read().strip() == "condor_starter":
                    pids.append(pid)
        except OSError:
            pass
    return pids


# f. the starter killed with SIGKILL: the cleanup reclaims the orphaned instance directory and domain
def test_killed_starter_is_cleaned_up_within_one_period(pool):
    cluster = submit(pool, "sleeper.qcow2")
    wait_for("the guest to boot", lambda: BOOTED in console(pool, cluster), 240, explain=lambda: pool.diagnose(cluster))
    [instance] = instance_dirs(pool, cluster)
    [name] = domains(pool, cluster)
    domain_uuid = pool.virsh("domuuid", name).strip()
    # This instance's starter: the prepare hook's parent, recorded in instance.json (not every starter around).
    with open(pool.path("%s/%s/instance.json" % (INSTANCES, instance))) as f:
        starter = json.load(f)["starter"]["pid"]
    assert starter in _starter_pids(pool)
    os.kill(starter, 9)
    killed = time.time()
    period = 10  # CLOUD_CLEANUP_PERIOD in the sandbox
    wait_for("the orphaned instance directory to go",
             lambda: not os.path.exists(pool.path(INSTANCES + "/" + instance)), 3 * period + 15)
    wait_for("the orphaned domain to go", lambda: domain_uuid not in domain_uuids(pool), 3 * period + 15)
    print("reclaimed %.1f s after the kill" % (time.time() - killed))
    assert all(line.split()[-1] == "true" for line in has_vm(pool))
    pool.run(["condor_rm", str(cluster)], user="alice", check=False)
    wait_for("the rerun to go", lambda: not instance_dirs(pool, cluster), 120)
    wait_for("the job's domains to go", lambda: domains(pool, cluster) == [], 120)
