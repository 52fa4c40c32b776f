"""The hooks' contracts: job ad on stdin, `Attr = value` lines on stdout, HookStatusCode/HookStatusMessage on
failure, nothing left behind after a failure, and the cleanup's orphan reclaim."""

import io
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import classad2
import pytest

from condor_cloud.node import reclaim, instance_dirs
from condor_cloud.node.as_condor import cleanup
from condor_cloud.core import errors
from condor_cloud.node.as_condor_cloud import exit_hook, prepare_hook
from condor_cloud.node.as_root import xml_script
from condor_cloud.node.cache import ImageCache

from support import job_ad, make_qcow2

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = pytest.mark.subprocess  # the hooks run qemu-img for real


def run_prepare(ad_text, starter_pid=None):
    out = io.StringIO()
    status = prepare_hook.main([], io.StringIO(ad_text), out, starter_pid=starter_pid or os.getpid())
    return status, classad2.parseOne(out.getvalue()) if out.getvalue() else None


def qemu_info(path):
    return json.loads(subprocess.run(["qemu-img", "info", "--output=json", "-U", str(path)], check=True,
                                     stdout=subprocess.PIPE).stdout)


@pytest.fixture
def demo(cloud):
    make_qcow2(cloud.store / "demo.qcow2", "32M", data=b"DEMO-BASE" * 100)
    return cloud


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


# -- LIBVIRT_XML_SCRIPT ------------------------------------------------------------------------------------
class NoDomains:
    def uuid_of(self, name):
        return None


def xml_for(ad_text, hypervisor=None, scratch=None):
    """Run the XML script as vm-gahp does, in the job's scratch directory (default: the `cloud` fixture's)."""
    out = io.StringIO()
    status = xml_script.main([], io.StringIO(ad_text), out, hypervisor=hypervisor or NoDomains(),
                              scratch=scratch or os.environ["_CONDOR_SCRATCH_DIR"])
    return status, out.getvalue()


def test_xml_script_renders_the_prepared_instance(demo):
    _, prepared = run_prepare(job_ad())
    ad = job_ad(VMPARAM_VM_NAME='"alice_7.0"', JobVM_VCPUS=2, JobVMVNCConsole="true")
    status, xml = xml_for(ad)
    assert status == 0
    root = ET.fromstring(xml)
    assert root.get("type") == "qemu"
    assert root.find("name").text == "alice_7.0"
    assert root.find("memory").text == "256" and root.find("vcpu").text == "2"
    assert root.find("devices/disk/source").get("file") == os.path.join(prepared["CloudInstanceDir"], "vda.qcow2")
    [entry] = ImageCache(str(demo.cache)).entries()
    backing = root.find("devices/disk/backingStore")
    assert backing.find("source").get("file") == entry.path and backing.find("format").get("type") == "qcow2"
    assert backing.find("source/seclabel").get("relabel") == "no"
    assert root.find("devices/serial/log").get("file") == str(demo.consoles / (prepared["CloudInstanceId"] + ".log"))
    assert root.find("devices/graphics").get("listen") == "127.0.0.1"
    assert root.find("devices/interface") is None  # CLOUD_NETWORK = none


def test_xml_script_ignores_disk_paths_in_the_job_ad(demo):
    _, prepared = run_prepare(job_ad())
    ad = job_ad(VMPARAM_VM_NAME='"alice_7.0"', VMPARAM_vm_Disk='"/etc/shadow:vda:w"')
    status, xml = xml_for(ad)
    assert status == 0 and "/etc/shadow" not in xml


def test_xml_script_without_a_prepared_instance_fails_without_output(cloud):
    # (bounds and path guards: tests/unit/test_libvirt_xml.py; ads naming other instances: test_instance_binding.py)
    status, xml = xml_for(job_ad(VMPARAM_VM_NAME='"alice_7.0"', CloudInstanceId='"1.0-00000000"'))
    assert status == 1 and xml == ""


# -- JOB_EXIT ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reason", exit_hook.REASONS)
def test_exit_hook_removes_the_instance_for_every_reason(demo, reason):
    _, prepared = run_prepare(job_ad())
    ad = job_ad(CloudInstanceId='"%s"' % prepared["CloudInstanceId"], ExitCode=0)
    assert exit_hook.main(["exit", reason], io.StringIO(ad), starter_pid=os.getpid()) == 0
    assert os.listdir(demo.instances) == []
    assert len(ImageCache(str(demo.cache)).entries()) == 1  # the cache stays


def test_exit_hook_finds_the_instance_without_our_attributes(demo):
    run_prepare(job_ad(), starter_pid=os.getpid())
    assert exit_hook.main(["exit", "evict"], io.StringIO(job_ad()), starter_pid=os.getpid()) == 0
    assert os.listdir(demo.instances) == []


def test_exit_hook_leaves_other_starters_instances_alone(demo, monkeypatch, tmp_path):
    victim = Starter()
    try:
        _, prepared = run_prepare(job_ad(GlobalJobId='"other#1.0#1"'), starter_pid=victim.pid)
        # same scratch directory, another starter; then same starter, another scratch directory
        assert exit_hook.main(["exit", "exit"], io.StringIO(job_ad()), starter_pid=os.getpid()) == 0
        monkeypatch.setenv("_CONDOR_SCRATCH_DIR", str(tmp_path))
        assert exit_hook.main(["exit", "exit"], io.StringIO(job_ad()), starter_pid=victim.pid) == 0
        assert os.listdir(demo.instances) == [prepared["CloudInstanceId"]]
    finally:
        victim.kill()


# -- cleanup -----------------------------------------------------------------------------------------------
class FakeHypervisor:
    def __init__(self, fail=False):
        self.destroyed = []
        self.fail = fail

    def destroy(self, domain_uuid):
        if self.fail:
            raise RuntimeError("libvirt unreachable")
        self.destroyed.append(domain_uuid)
        return True

    def running_domains(self):  # the cleanup asks which domains run and which files they use: none here
        if self.fail:
            raise RuntimeError("libvirt unreachable")
        return []


class Starter:
    """A stand-in starter process, alive while the instance is prepared and killed later."""

    def __init__(self):
        self.proc = subprocess.Popen(["sleep", "600"])
        self.pid = self.proc.pid

    def kill(self):
        self.proc.kill()
        self.proc.wait()


def run_cleanup(hypervisor):
    out = io.StringIO()
    assert cleanup.main([], None, out, hypervisor=hypervisor) == 0
    return out.getvalue()


def test_cleanup_reclaims_orphans_and_keeps_live_instances(demo):
    _, live = run_prepare(job_ad(ProcId=0), starter_pid=os.getpid())
    starter = Starter()
    _, orphan = run_prepare(job_ad(ProcId=1), starter_pid=starter.pid)
    starter.kill()
    orphan_uuid = instance_dirs.load(str(demo.instances), orphan["CloudInstanceId"]).meta["uuid"]
    hv = FakeHypervisor()
    output = run_cleanup(hv)
    assert hv.destroyed == [orphan_uuid]
    assert os.listdir(demo.instances) == [live["CloudInstanceId"]]
    ad = classad2.parseOne(output.replace("- update:true\n", ""))
    assert ad["CloudCachedImages"] == "demo.qcow2" and ad["CloudInstances"] == 1
    assert output.endswith("- update:true\n")


def test_cleanup_keeps_an_orphan_whose_domain_it_cannot_destroy(demo):
    starter = Starter()
    run_prepare(job_ad(), starter_pid=starter.pid)
    starter.kill()
    run_cleanup(FakeHypervisor(fail=True))
    assert len(os.listdir(demo.instances)) == 1


def test_cleanup_removes_old_half_made_directories_only_after_grace(demo):
    young = demo.instances / "3.0-0000beef"
    old = demo.instances / "4.0-0000beef"
    young.mkdir()
    old.mkdir()
    os.utime(str(old), (1, 1))
    run_cleanup(FakeHypervisor())
    assert os.listdir(demo.instances) == ["3.0-0000beef"]


def test_cleanup_evicts_above_the_limit_but_not_a_base_in_use(demo):
    _, live = run_prepare(job_ad(), starter_pid=os.getpid())
    make_qcow2(demo.store / "other.qcow2", "32M", data=b"x" * 4096)
    starter = Starter()
    run_prepare(job_ad(ProcId=3, VMPARAM_vm_Disk='"other.qcow2:vda:w"'), starter_pid=starter.pid)
    starter.kill()
    demo.write_config("CLOUD_CACHE_MAX_SIZE = 1\n")
    output = run_cleanup(FakeHypervisor())
    assert [e.image for e in ImageCache(str(demo.cache)).entries()] == ["demo.qcow2"]
    assert 'CloudCachedImages = "demo.qcow2"' in output


def test_prepare_builds_the_cloud_init_seed(demo):
    from condor_cloud.node import seed

    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKIIQRb+RTtN147yImzguA+ZJcsFCuYSvtE80Xb3bBLl alice@example.org"
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


# -- UPDATE_JOB_INFO ---------------------------------------------------------------------------------------
from condor_cloud.node.as_condor_cloud import update_hook  # noqa: E402


def test_update_hook_publishes_the_discovered_address(demo):
    _, prepared = run_prepare(job_ad())
    mac = instance_dirs.load(str(demo.instances), prepared["CloudInstanceId"]).meta["mac"]
    seen, published = [], []

    def discover(m, network, libvirt_uri):
        seen.append((m, network.kind))
        return ["192.0.2.10"]

    ad = job_ad()
    assert update_hook.main([], io.StringIO(ad), discover=discover, publish=published.append,
                            starter_pid=os.getpid()) == 0
    assert seen == [(mac, "none")]
    assert published == [{"ChirpCloudAddress": "192.0.2.10", "ChirpCloudAddresses": "192.0.2.10"}]
    # already in the job ad: not published again
    published.clear()
    ad = job_ad(ChirpCloudAddresses='"192.0.2.10"')
    update_hook.main([], io.StringIO(ad), discover=discover, publish=published.append, starter_pid=os.getpid())
    assert published == []


def test_update_hook_reports_a_failed_publish_and_exits_1(demo, capsys):
    from condor_cloud.core.errors import CloudError

    _, prepared = run_prepare(job_ad())
    capsys.readouterr()

    def publish(attrs):
        raise CloudError("condor_chirp set_job_attr_delayed ChirpCloudAddress failed (exit 1): no chirp config")

    assert update_hook.main([], io.StringIO(job_ad()), discover=lambda *a, **k: ["192.0.2.10"], publish=publish,
                            starter_pid=os.getpid()) == 1
    assert capsys.readouterr().err == ("condor-cloud update: condor_chirp set_job_attr_delayed ChirpCloudAddress "
                                       "failed (exit 1): no chirp config\n")


def test_update_hook_without_an_instance_does_nothing(cloud):
    calls = []
    assert update_hook.main([], io.StringIO(job_ad()), discover=calls.append, publish=calls.append,
                            starter_pid=os.getpid()) == 0
    assert calls == []


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


class DomainsByName(FakeHypervisor):
    def __init__(self, names):
        super().__init__()
        self.names = names

    def uuid_of(self, name):
        return self.names.get(name)


def test_xml_script_destroys_a_stale_domain_of_a_dead_instance(demo):
    starter = Starter()
    _, dead = run_prepare(job_ad(), starter_pid=starter.pid)
    starter.kill()
    dead_uuid = instance_dirs.load(str(demo.instances), dead["CloudInstanceId"]).meta["uuid"]
    run_prepare(job_ad())
    hv = DomainsByName({"alice_7.0": dead_uuid})
    status, xml = xml_for(job_ad(VMPARAM_VM_NAME='"alice_7.0"'), hv)
    assert status == 0 and hv.destroyed == [dead_uuid]


def test_xml_script_never_destroys_a_live_instance_domain(demo, monkeypatch, tmp_path):
    _, live = run_prepare(job_ad())
    live_uuid = instance_dirs.load(str(demo.instances), live["CloudInstanceId"]).meta["uuid"]
    monkeypatch.setenv("_CONDOR_SCRATCH_DIR", str(tmp_path))  # another job of this starter, in its own scratch
    run_prepare(job_ad())
    hv = DomainsByName({"alice_7.0": live_uuid})
    status, xml = xml_for(job_ad(VMPARAM_VM_NAME='"alice_7.0"'), hv, scratch=str(tmp_path))
    assert status == 1 and xml == "" and hv.destroyed == []


def test_a_disk_format_that_contradicts_the_image_is_held_and_leaves_nothing(demo):
    status, out = run_prepare(job_ad(VMPARAM_vm_Disk='"demo.qcow2:vda:w:raw"'))
    assert_held(status, out, errors.BAD_REQUEST, "vm_disk says image 'demo.qcow2' is raw but it is qcow2")
    assert os.listdir(demo.instances) == []


def test_a_destroyed_instance_loses_its_console_log_and_others_keep_theirs(demo):
    _, prepared = run_prepare(job_ad())
    log = demo.consoles / (prepared["CloudInstanceId"] + ".log")
    (demo.consoles / (prepared["CloudInstanceId"] + ".log.0")).write_text("rotated")
    (demo.consoles / "9.0-0000abcd.log").write_text("another instance's")
    assert log.exists()
    assert exit_hook.main(["exit", "remove"], io.StringIO(job_ad()), starter_pid=os.getpid()) == 0
    assert sorted(os.listdir(demo.consoles)) == ["9.0-0000abcd.log"]


def test_an_instance_that_ended_otherwise_keeps_its_console_log(demo):
    _, prepared = run_prepare(job_ad())
    assert exit_hook.main(["exit", "exit"], io.StringIO(job_ad()), starter_pid=os.getpid()) == 0
    assert os.listdir(demo.consoles) == [prepared["CloudInstanceId"] + ".log"]
