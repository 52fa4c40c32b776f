"""The LIBVIRT_XML_SCRIPT (condor_cloud/node/as_root/xml_script.py): it renders the prepared instance, and its own
guards, each with a prepared instance so that the guard, not an earlier lookup failure, is what refuses: memory and
vCPU bounds, disk and CD-ROM paths only inside the instance directory (_own_file), backing files only inside the
cache; a stale domain of a dead instance is destroyed, a live instance's never."""

import io
import os
import xml.etree.ElementTree as ET

import pytest

from condor_cloud.core import config, errors
from condor_cloud.core.errors import CloudError
from condor_cloud.node import instance_dirs, jobad
from condor_cloud.node.as_condor_cloud import prepare_hook
from condor_cloud.node.as_root import xml_script
from condor_cloud.node.cache import ImageCache

from support import FakeHypervisor, Starter, job_ad, make_qcow2, run_prepare


pytestmark = pytest.mark.subprocess  # the prepare hook runs qemu-img for real


def build(cloud, **attrs):
    """build_params for the job ad as the XML script sees it, for the instance the prepare fixture made.

    The ONE place that knows how the XML script finds its instance: by the scratch directory it runs in and the
    starter among its ancestors (this test process is the instance's recorded starter)."""
    ad = jobad.read_ad(io.StringIO(job_ad(VMPARAM_VM_NAME='"alice_7.0"', **attrs)))
    return xml_script.build_params(config.load_settings(), ad, kvm_probe=lambda: False, scratch=str(cloud.scratch),
                                    lineage=[os.getpid()])


@pytest.fixture
def prepared(cloud):
    """A real instance made by the prepare hook for the `cloud` fixture's job (this process is its starter)."""
    make_qcow2(cloud.store / "demo.qcow2", "16M")
    out = io.StringIO()
    assert prepare_hook.main([], io.StringIO(job_ad()), out, starter_pid=os.getpid()) == 0, out.getvalue()
    [instance_id] = os.listdir(str(cloud.instances))
    cloud.instance = instance_dirs.load(str(cloud.instances), instance_id)
    return cloud


def refused(cloud, **attrs):
    with pytest.raises(CloudError) as exc:
        build(cloud, **attrs)
    return exc.value


def edit(cloud, change):
    """Change the instance's instance.json (as damage or a hostile write would)."""
    instance = instance_dirs.load(str(cloud.instances), cloud.instance.id)
    change(instance.meta)
    instance.save()


MAX_MEMORY_MIB = 4 << 20     # 4 TiB


MAX_VCPUS = 256


def test_the_prepared_instance_builds_up_to_the_bounds(prepared):
    params = build(prepared, JobVMMemory=MAX_MEMORY_MIB, JobVM_VCPUS=MAX_VCPUS)
    assert params.memory_mib == MAX_MEMORY_MIB and params.vcpus == MAX_VCPUS
    assert build(prepared, JobVMMemory=1).memory_mib == 1 and build(prepared).vcpus == 1
    assert [d.path for d in params.disks] == [os.path.join(prepared.instance.path, "vda.qcow2")]
    assert params.disks[0].backing.startswith(str(prepared.cache) + os.sep)


@pytest.mark.parametrize("memory", [0, -1, MAX_MEMORY_MIB + 1])
def test_memory_out_of_bounds_is_refused(prepared, memory):
    exc = refused(prepared, JobVMMemory=memory)
    assert exc.code == errors.BAD_REQUEST
    assert exc.message == "vm_memory must be between 1 and %d MiB" % MAX_MEMORY_MIB


@pytest.mark.parametrize("vcpus", [0, -1, MAX_VCPUS + 1])
def test_vcpus_out_of_bounds_are_refused(prepared, vcpus):
    exc = refused(prepared, JobVM_VCPUS=vcpus)
    assert exc.code == errors.BAD_REQUEST
    assert exc.message == "vm_vcpus must be between 1 and %d" % MAX_VCPUS


def test_a_disk_path_outside_the_instance_directory_is_refused(prepared):
    edit(prepared, lambda meta: meta["disks"][0].update(path="/etc/shadow"))
    exc = refused(prepared)
    assert exc.message == "instance %s names a disk outside its directory" % prepared.instance.id


def test_a_disk_that_is_a_symlink_out_of_the_instance_directory_is_refused(prepared):
    overlay = os.path.join(prepared.instance.path, "vda.qcow2")
    os.unlink(overlay)
    os.symlink(str(prepared.outside / "elsewhere.qcow2"), overlay)
    assert "names a disk outside its directory" in refused(prepared).message


def test_a_disk_in_a_subdirectory_of_the_instance_is_refused(prepared):
    # "directly in": not even a directory below the instance's own
    sub = os.path.join(prepared.instance.path, "sub")
    os.mkdir(sub)
    edit(prepared, lambda meta: meta["disks"][0].update(path=os.path.join(sub, "vda.qcow2")))
    assert "names a disk outside its directory" in refused(prepared).message


def test_a_cdrom_outside_the_instance_directory_is_refused(prepared):
    edit(prepared, lambda meta: meta["cdroms"][0].update(path="/dev/sda"))
    exc = refused(prepared)
    assert exc.message == "instance %s names a CD-ROM outside its directory" % prepared.instance.id


@pytest.mark.parametrize("base", ["../outside/base.qcow2", "/etc/shadow"])
def test_a_base_outside_the_cache_is_refused(prepared, base):
    edit(prepared, lambda meta: meta["disks"][0].update(base=base))
    exc = refused(prepared)
    assert exc.message == "instance %s names a base outside the cache" % prepared.instance.id


def test_a_base_that_is_a_symlink_out_of_the_cache_is_refused(prepared):
    os.symlink(str(prepared.outside / "base.qcow2"), str(prepared.cache / "evil@0123456789abcdef.qcow2"))
    edit(prepared, lambda meta: meta["disks"][0].update(base="evil@0123456789abcdef.qcow2"))
    assert "names a base outside the cache" in refused(prepared).message


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
    # (bounds and path guards: above; ads naming other instances: tests/unit/scenarios/test_instance_binding.py)
    status, xml = xml_for(job_ad(VMPARAM_VM_NAME='"alice_7.0"', CloudInstanceId='"1.0-00000000"'))
    assert status == 1 and xml == ""


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
