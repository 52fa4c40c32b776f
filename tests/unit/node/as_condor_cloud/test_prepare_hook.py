"""The prepare hook (condor_cloud/node/as_condor_cloud/prepare_hook.py, hooks/prepare): job ad on stdin,
`Attr = value` lines on stdout, HookStatusCode/HookStatusMessage on failure, nothing left behind after a failure;
the overlay, the seed, the console log and the MAC it makes. The other hooks: test_exit_hook.py, test_update_hook.py,
node/as_root/test_xml_script.py, node/as_condor/test_cleanup.py."""

import io
import json
import os
import subprocess
import sys

import classad2
import pytest

from condor_cloud.core import errors
from condor_cloud.node import instance_dirs
from condor_cloud.node.as_condor_cloud import prepare_hook
from condor_cloud.node.cache import ImageCache

from support import ED25519, REPO, FakeHypervisor, job_ad, make_qcow2, run_cleanup, run_prepare


pytestmark = pytest.mark.subprocess  # the hooks run qemu-img for real


def qemu_info(path):
    return json.loads(subprocess.run(["qemu-img", "info", "--output=json", "-U", str(path)], check=True,
                                     stdout=subprocess.PIPE).stdout)


def test_prepare_points_the_job_at_a_fresh_overlay(demo):
    status, out = run_prepare(job_ad())
    assert status == 0
    instance_dir = out["CloudInstanceDir"]
    assert os.path.dirname(instance_dir) == str(demo.instances)
    overlay = os.path.join(instance_dir, "vda.qcow2")
    assert out["VMPARAM_vm_Disk"] == overlay + ":vda:w:qcow2"
    info = qemu_info(overlay)
    [entry] = ImageCache(str(demo.cache)).entries()
    assert info["format"] == "qcow2"
    assert info["backing-filename"] == entry.path
    assert info["backing-filename-format"] == "qcow2"
    assert os.stat(entry.path).st_mode & 0o222 == 0  # nobody may write a shared base
    meta = instance_dirs.load(str(demo.instances), out["CloudInstanceId"]).meta
    assert meta["bases"] == [entry.filename]
    assert meta["starter"]["pid"] == os.getpid()


def test_two_instances_share_one_cached_base(demo):
    _, a = run_prepare(job_ad(ProcId=0))
    _, b = run_prepare(job_ad(ProcId=1))
    assert a["CloudInstanceDir"] != b["CloudInstanceDir"]
    assert len(ImageCache(str(demo.cache)).entries()) == 1


def assert_held(status, out, code, message):
    assert status == 1
    assert out["HookStatusCode"] == code
    assert out["HookStatusMessage"] == message


def test_missing_image_is_held_with_a_clear_reason_and_leaves_nothing(cloud):
    status, out = run_prepare(job_ad(VMPARAM_vm_Disk='"foo.qcow2:vda:w"'))
    assert_held(status, out, errors.IMAGE_NOT_FOUND, "image 'foo.qcow2' not found in %s" % cloud.store)
    assert os.listdir(cloud.instances) == []


@pytest.mark.parametrize("disk", ['"../../etc/shadow:vda:w"', '"/etc/shadow:vda:w"', '"demo.qcow2:vda"',
                                  '"demo.qcow2:vda:x"', '"demo.qcow2:v/a:w"', '"a\\\\b:vda:w"', '""'])
def test_hostile_or_malformed_disks_are_held_and_change_nothing(demo, disk):
    status, out = run_prepare(job_ad(VMPARAM_vm_Disk=disk))
    assert status == 1 and out["HookStatusCode"] == errors.BAD_REQUEST
    assert os.listdir(demo.instances) == []
    assert ImageCache(str(demo.cache)).entries() == []


def test_symlink_out_of_the_store_is_held(cloud):
    make_qcow2(cloud.outside / "secret.qcow2")
    os.symlink(str(cloud.outside / "secret.qcow2"), str(cloud.store / "evil.qcow2"))
    status, out = run_prepare(job_ad(VMPARAM_vm_Disk='"evil.qcow2:vda:w"'))
    assert_held(status, out, errors.BAD_REQUEST,
                "image 'evil.qcow2' is a symlink that points outside %s: refused" % cloud.store)
    assert ImageCache(str(cloud.cache)).entries() == []


def test_corrupt_image_is_held(cloud):
    (cloud.store / "broken.qcow2").write_bytes(b"\0garbage" * 1000)
    status, out = run_prepare(job_ad(VMPARAM_vm_Disk='"broken.qcow2:vda:w"'))
    assert status == 1 and out["HookStatusCode"] == errors.IMAGE_INVALID
    assert "broken.qcow2" in out["HookStatusMessage"]
    assert os.listdir(cloud.instances) == []


def test_malformed_job_ad_is_held(cloud):
    status, out = run_prepare("this is [ not an ad\n")
    assert status == 1 and out["HookStatusCode"] == errors.BAD_REQUEST


def test_a_wait_on_the_cache_lock_is_bounded(demo):
    demo.write_config("CLOUD_PREPARE_TIMEOUT = 1\n")
    with ImageCache(str(demo.cache)).locked("demo.qcow2"):
        # held through a second file description, like another job's prepare filling the cache
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            status, out = run_prepare(job_ad(), starter_pid=os.getppid())
            os._exit(0 if status == 1 and out["HookStatusCode"] == errors.TIMEOUT
                     and "waiting for or copying image 'demo.qcow2'" in out["HookStatusMessage"] else 1)
        _, code = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(code) == 0
    assert os.listdir(demo.instances) == []


def test_a_file_in_scratch_that_would_shadow_the_overlay_is_refused(demo):
    (demo.scratch / "vda.qcow2").write_bytes(b"user file")
    status, out = run_prepare(job_ad())
    assert status == 1 and "shadow" in out["HookStatusMessage"]


def test_real_prepare_executable_contract(demo):
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.run([sys.executable, os.path.join(REPO, "hooks", "prepare")], input=job_ad().encode(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    out = classad2.parseOne(proc.stdout.decode())
    assert set(out.keys()) == {"CloudInstanceId", "CloudInstanceDir", "VMPARAM_vm_Disk"}
    proc = subprocess.run([sys.executable, os.path.join(REPO, "hooks", "prepare")],
                          input=job_ad(VMPARAM_vm_Disk='"nope.qcow2:vda:w"').encode(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=60)
    assert proc.returncode == 1
    assert classad2.parseOne(proc.stdout.decode())["HookStatusCode"] == errors.IMAGE_NOT_FOUND
    assert b"not found" in proc.stderr  # the StarterLog gets it too


def test_prepare_builds_the_cloud_init_seed(demo):
    from condor_cloud.node import seed

    key = ED25519
    (demo.scratch / "user-data").write_bytes(b"#cloud-config\n")
    (demo.scratch / "ssh-authorized-keys").write_text(key + "\n")
    status, out = run_prepare(job_ad(CloudName='"Web_1"'))
    assert status == 0
    seed_path = os.path.join(out["CloudInstanceDir"], "seed.iso")
    meta = instance_dirs.load(str(demo.instances), out["CloudInstanceId"]).meta
    assert meta["cdroms"] == [{"path": seed_path, "device": "sda"}]
    label, files = seed.read_seed(seed_path)
    assert label == "cidata" and files["user-data"] == b"#cloud-config\n"
    assert files["meta-data"] == ('instance-id: "%s"\nlocal-hostname: "web-1"\npublic-keys:\n  - "%s"\n'
                                  % (out["CloudInstanceId"], key)).encode()


def test_bad_user_data_is_held_and_leaves_nothing(cloud):
    (cloud.scratch / "user-data").write_bytes(b"\xff\xfe binary")
    status, out = run_prepare(job_ad())
    assert status == 1 and out["HookStatusCode"] == errors.BAD_REQUEST
    assert out["HookStatusMessage"].startswith("user data is neither UTF-8 text nor gzip")
    assert os.listdir(cloud.instances) == []


def test_prepare_prunes_console_logs_past_the_keep_time_and_nothing_else(demo):
    # The console directory is writable by the execute account only, so its prepare hook prunes, not the cleanup.
    # virtlogd rotates a log that reaches its max_size to <name>.0, .1, ...
    names = ["1.0-0000aaaa.log", "3.0-0000cccc.log.0", "3.0-0000cccc.log.1", "README", "3.0-0000cccc.log.old",
             ".hidden.log", "2.0-0000bbbb.log"]
    for name in names:
        (demo.consoles / name).write_text("x")
        if name != "2.0-0000bbbb.log":
            os.utime(str(demo.consoles / name), (1, 1))
    run_cleanup(FakeHypervisor())
    assert len(os.listdir(demo.consoles)) == len(names)  # the cleanup (user condor) leaves them
    _, out = run_prepare(job_ad())
    assert sorted(os.listdir(demo.consoles)) == sorted([".hidden.log", "2.0-0000bbbb.log", "3.0-0000cccc.log.old",
                                                        "README", out["CloudInstanceId"] + ".log"])


def test_a_disk_format_that_contradicts_the_image_is_held_and_leaves_nothing(demo):
    status, out = run_prepare(job_ad(VMPARAM_vm_Disk='"demo.qcow2:vda:w:raw"'))
    assert_held(status, out, errors.BAD_REQUEST, "vm_disk says image 'demo.qcow2' is raw but it is qcow2")
    assert os.listdir(demo.instances) == []


@pytest.mark.subprocess  # the hook runs qemu-img for real
def test_prepare_hook_links_the_console_and_a_failed_prepare_leaves_none(cloud, tmp_path, monkeypatch):
    make_qcow2(cloud.store / "demo.qcow2", "16M")
    scratch = cloud.scratch
    out = io.StringIO()
    assert prepare_hook.main([], io.StringIO(job_ad()), out, starter_pid=os.getpid()) == 0
    instance_id = [line.split('"')[1] for line in out.getvalue().splitlines() if line.startswith("CloudInstanceId")][0]
    assert os.path.samefile(str(cloud.consoles / (instance_id + ".log")), str(scratch / "console.log"))
    # a job that is held leaves no console log behind
    (scratch / "console.log").unlink()
    assert prepare_hook.main([], io.StringIO(job_ad(VMPARAM_vm_Disk='"missing.qcow2:vda:w"')), io.StringIO(),
                             starter_pid=os.getpid()) == 1
    assert os.listdir(str(cloud.consoles)) == [instance_id + ".log"] and not (scratch / "console.log").exists()


@pytest.mark.subprocess  # the hook runs qemu-img for real
def test_four_sd_disks_are_held_with_the_reason_not_as_an_internal_error(cloud):
    make_qcow2(cloud.store / "demo.qcow2", "16M")
    out = io.StringIO()
    disks = ",".join("demo.qcow2:%s:w" % d for d in ("sda", "sdb", "sdc", "sdd"))
    rc = prepare_hook.main([], io.StringIO(job_ad(VMPARAM_vm_Disk='"%s"' % disks)), out, starter_pid=os.getpid())
    assert rc == 1
    assert "HookStatusCode = %d" % errors.BAD_REQUEST in out.getvalue()
    assert "the instance's cloud-init seed CD-ROM needs one of them free" in out.getvalue()
    assert os.listdir(str(cloud.instances)) == []


# -- through the prepare hook ------------------------------------------------------------------------------
def hook(ad):
    out = io.StringIO()
    rc = prepare_hook.main([], io.StringIO(ad), out, starter_pid=os.getpid())
    return rc, out.getvalue()


@pytest.mark.subprocess  # the hook runs qemu-img for real
def test_prepare_records_the_job_ids_mac(cloud):
    make_qcow2(cloud.store / "demo.qcow2", "16M")
    rc, out = hook(job_ad(ClusterId=1234, ProcId=5, GlobalJobId='"master#1234.5#1700000000"'))
    assert rc == 0, out
    [instance_id] = os.listdir(str(cloud.instances))
    with open(str(cloud.instances / instance_id / "instance.json")) as f:
        assert '"mac": "02:05:00:00:04:d2"' in f.read()


@pytest.mark.parametrize("attrs,reason", [
    ({"JobVM_MACADDR": '"52:54:00:00:00:01"'}, "vm_macaddr is not supported"),
    ({"ProcId": 8192}, "job 7.8192: an instance's MAC address is made from its job id"),
])
def test_prepare_holds_a_job_mac_or_an_unencodable_proc_before_doing_anything(cloud, attrs, reason):
    rc, out = hook(job_ad(**attrs))
    assert rc == 1
    assert "HookStatusCode = %d" % errors.BAD_REQUEST in out and reason in out
    assert os.listdir(str(cloud.instances)) == [] and os.listdir(str(cloud.cache)) == []
