"""An instance is bound to the starter that prepared it (pid + kernel start time + scratch directory), and every
node program finds "its" instance through that binding, never through the job ad: a job's owner controls its ad
and other users' instance ids are public (issue 11, item 1). Each test here fails when its guard is removed."""

import io
import os

import pytest

from condor_cloud.node import instance_dirs
from condor_cloud.node.as_condor import cleanup
from condor_cloud.node.as_condor_cloud import exit_hook, update_hook
from condor_cloud.node.as_root import xml_script
from condor_cloud.node.cache import ImageCache

from support import FakeHypervisor, Starter, job_ad, make_qcow2, run_prepare


pytestmark = pytest.mark.subprocess  # qemu-img and stand-in starter processes run for real


@pytest.fixture
def victim(cloud, tmp_path, monkeypatch):
    """Another user's running instance: prepared by another starter (a live process) in its own scratch dir."""
    make_qcow2(cloud.store / "demo.qcow2", "16M")
    victim_scratch = tmp_path / "victim-scratch"
    victim_scratch.mkdir()
    starter = Starter()
    monkeypatch.setenv("_CONDOR_SCRATCH_DIR", str(victim_scratch))
    status, out = run_prepare(job_ad(Owner='"bob"', GlobalJobId='"master#3.0#1"', ClusterId=3),
                              starter_pid=starter.pid)
    assert status == 0
    monkeypatch.setenv("_CONDOR_SCRATCH_DIR", str(cloud.scratch))  # from here on: the attacker's starter
    inst = instance_dirs.load(str(cloud.instances), out["CloudInstanceId"])
    inst.starter = starter
    inst.scratch = str(victim_scratch)
    yield inst
    starter.kill()


def attacker_ad(victim, **attrs):
    return job_ad(CloudInstanceId='"%s"' % victim.id, CloudInstanceDir='"%s"' % victim.path, **attrs)


def intact(victim):
    return os.path.exists(victim.overlay_path("vda")) and os.path.exists(os.path.join(victim.path, "instance.json"))


def test_a_held_job_naming_another_instance_does_not_remove_it_or_its_base(cloud, victim):
    # the attack: a by-hand job names a victim's id and a missing image; prepare holds it, exit runs
    status, out = run_prepare(attacker_ad(victim, VMPARAM_vm_Disk='"missing.qcow2:vda:w"'))
    assert status == 1
    for reason in exit_hook.REASONS:
        assert exit_hook.main(["exit", reason], io.StringIO(attacker_ad(victim)), starter_pid=os.getpid()) == 0
    assert intact(victim)
    cloud.write_config("CLOUD_CACHE_MAX_SIZE = 0\n")  # evict everything that no instance uses
    out = io.StringIO()
    assert cleanup.main([], None, out, hypervisor=FakeHypervisor()) == 0
    assert [e.filename for e in ImageCache(str(cloud.cache)).entries()] == victim.meta["bases"]
    assert intact(victim)


def test_the_update_hook_never_publishes_another_instances_address(cloud, victim):
    published, seen = [], []

    def discover(mac, network, libvirt_uri):
        seen.append(mac)
        return ["192.0.2.66"]

    ad = attacker_ad(victim, JobVMVNCConsole="true")
    assert update_hook.main([], io.StringIO(ad), discover=discover, publish=published.append,
                            read_xml=lambda uuid, uri: pytest.fail("read another instance's domain"),
                            starter_pid=os.getpid()) == 0
    assert published == [] and seen == []


def test_the_xml_script_never_renders_another_instance(cloud, victim):
    out = io.StringIO()
    status = xml_script.main([], io.StringIO(attacker_ad(victim, VMPARAM_VM_NAME='"alice_7.0"')), out,
                              hypervisor=None, scratch=str(cloud.scratch))
    assert status == 1 and out.getvalue() == ""
    # even run in the victim's scratch directory, the victim's starter is not an ancestor of this process
    with pytest.raises(Exception, match="no instance on this node was prepared"):
        instance_dirs.find_for_xml_script(str(cloud.instances), victim.scratch)
    # ... and is found when it is (the real chain: starter -> vm-gahp -> this script)
    found = instance_dirs.find_for_xml_script(str(cloud.instances), victim.scratch,
                                          lineage=[os.getpid(), victim.starter.pid])
    assert found.id == victim.id


def test_the_binding_needs_pid_start_time_and_scratch_directory(cloud, victim):
    real = instance_dirs.Starter.of(victim.starter.pid, victim.scratch)
    assert victim.bound_to(real)
    assert not victim.bound_to(instance_dirs.Starter(real.pid, real.start_time + 1, real.scratch))  # pid reused
    assert not victim.bound_to(instance_dirs.Starter(real.pid, real.start_time, str(cloud.scratch)))
    assert not victim.bound_to(instance_dirs.Starter(os.getpid(), real.start_time, real.scratch))
    assert instance_dirs.find_bound(str(cloud.instances), real) != []
    assert instance_dirs.find_bound(str(cloud.instances), instance_dirs.Starter.of(os.getpid())) == []


def test_a_dead_starters_instance_is_not_found_by_the_xml_script(cloud, victim):
    victim.starter.kill()
    with pytest.raises(Exception, match="no instance on this node was prepared"):
        instance_dirs.find_for_xml_script(str(cloud.instances), victim.scratch,
                                      lineage=[os.getpid(), victim.starter.pid])
