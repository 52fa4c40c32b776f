"""JOB_EXIT (condor_cloud/node/as_condor_cloud/exit_hook.py): removes the instance of its own starter for every
exit reason, never one the job ad names or another starter's, and the console log of a removed or evicted instance."""

import io
import os

import pytest

from condor_cloud.core import processes
from condor_cloud.node.as_condor_cloud import exit_hook
from condor_cloud.node.cache import ImageCache

from support import Starter, job_ad, make_instance, present, run_prepare


pytestmark = pytest.mark.subprocess  # the hooks run qemu-img for real


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


@pytest.mark.parametrize("reason", ["remove", "evict"])
def test_a_destroyed_or_evicted_instance_loses_its_console_log_and_others_keep_theirs(demo, reason):
    """remove: destroyed; evict: its node vacates it (shutdown, a DELETE while the startd stops), and it restarts
    elsewhere as a new instance with a new log: nothing of it stays on this node."""
    _, prepared = run_prepare(job_ad())
    log = demo.consoles / (prepared["CloudInstanceId"] + ".log")
    (demo.consoles / (prepared["CloudInstanceId"] + ".log.0")).write_text("rotated")
    (demo.consoles / "9.0-0000abcd.log").write_text("another instance's")
    assert log.exists()
    assert exit_hook.main(["exit", reason], io.StringIO(job_ad()), starter_pid=os.getpid()) == 0
    assert sorted(os.listdir(demo.consoles)) == ["9.0-0000abcd.log"]


@pytest.mark.parametrize("reason", ["exit", "hold"])
def test_an_instance_that_ended_or_failed_keeps_its_console_log(demo, reason):
    """exit (the guest powered off or crashed) and hold (it could not start): its log tells why."""
    _, prepared = run_prepare(job_ad())
    assert exit_hook.main(["exit", reason], io.StringIO(job_ad()), starter_pid=os.getpid()) == 0
    assert os.listdir(demo.consoles) == [prepared["CloudInstanceId"] + ".log"]


# -- the exit hook removes its own starter's instance only -------------------------------------------------
def run_exit(ad_text):
    return exit_hook.main(["exit", "exit"], io.StringIO(ad_text), starter_pid=os.getpid())


def test_exit_hook_removes_the_instance_of_its_starter(cloud):
    make_instance(cloud, "7.0-0000beef")
    assert run_exit(job_ad()) == 0
    assert present(cloud) == []


@pytest.mark.subprocess
@pytest.mark.parametrize("differs", ["pid", "start time", "scratch"])
def test_exit_hook_leaves_an_instance_that_differs_in_one_respect(cloud, tmp_path, dead_pid, differs):
    # The other instance names this very job (same GlobalJobId, and the ad carries its id): only what the node
    # recorded about the starter tells them apart.
    mine = make_instance(cloud, "7.0-0000beef")
    other = {"pid": dict(pid=dead_pid, start_time=processes.process_start_time(os.getpid())),
             "start time": dict(start_time=processes.process_start_time(os.getpid()) + 1),
             "scratch": dict(scratch=str(tmp_path))}[differs]
    theirs = make_instance(cloud, "7.0-0000cafe", **other)
    assert run_exit(job_ad(CloudInstanceId='"%s"' % theirs, CloudInstanceDir='"%s"' % (cloud.instances / theirs))) == 0
    assert present(cloud) == [theirs]
    assert mine not in present(cloud)


def test_exit_hook_with_a_hostile_ad_removes_nothing_else(cloud, tmp_path):
    theirs = make_instance(cloud, "8.0-0000cafe", scratch=str(tmp_path), job="master#8.0#1700000001")
    assert run_exit(job_ad(CloudInstanceId='"%s"' % theirs, GlobalJobId='"master#8.0#1700000001"')) == 0
    assert run_exit(job_ad(CloudInstanceId='"../../etc"')) == 0
    assert present(cloud) == [theirs]
