"""The cleanup cron (condor_cloud/node/as_condor/cleanup.py): reclaims orphans, keeps live instances and what
it cannot destroy, evicts the cache above its limit but never a base in use, and reports to the startd.
reclaim_orphans's own branches: tests/unit/node/test_reclaim.py."""

import os

import classad2
import pytest

from condor_cloud.node import instance_dirs
from condor_cloud.node.cache import ImageCache

from support import FakeHypervisor, Starter, job_ad, make_qcow2, run_cleanup, run_prepare


pytestmark = pytest.mark.subprocess  # the hooks run qemu-img for real


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
    # the orphan leaves nothing, its console log included (it may have been destroyed while its node was down)
    assert os.listdir(demo.consoles) == [live["CloudInstanceId"] + ".log"]
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
