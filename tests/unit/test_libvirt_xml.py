"""The XML script's own guards (condor_cloud/node/as_root/xml_script.py), each with a prepared instance so that the guard, not
an earlier lookup failure, is what refuses: memory and vCPU bounds, disk and CD-ROM paths only inside the instance
directory (_own_file), and backing files only inside the cache."""

import io
import os

import pytest

from condor_cloud.core import config, errors
from condor_cloud.node import instance_dirs, jobad
from condor_cloud.node.as_root import xml_script
from condor_cloud.node.as_condor_cloud import prepare_hook
from condor_cloud.core.errors import CloudError

from support import job_ad, make_qcow2

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
