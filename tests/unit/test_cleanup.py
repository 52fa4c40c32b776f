"""Removing instances: the cleanup's reclaim_orphans branches (a grace period for a directory without a readable
instance.json; libvirt unreachable -> keep the directory, its domain may still run) and the exit hook's binding
to its own starter (never to an instance the job ad names). Each test reaches the check it names: the instances
differ from a removable one in that one respect only."""

import io
import os
import subprocess

import pytest

from condor_cloud.node import reclaim, instance_dirs
from condor_cloud.node import libvirt_conn
from condor_cloud.core import config, processes
from condor_cloud.node.as_condor_cloud import exit_hook

from support import job_ad


def make_instance(cloud, instance_id, pid=None, start_time=None, scratch=None, job="master#7.0#1700000000"):
    """An instance directory as the prepare hook records it, made by the starter (pid, start_time, scratch);
    default: this test process, its real start time, the `cloud` fixture's scratch directory.

    The ONE place that knows how an instance records its starter."""
    pid = os.getpid() if pid is None else pid
    start_time = processes.process_start_time(pid) if start_time is None else start_time
    scratch = os.path.realpath(str(cloud.scratch)) if scratch is None else scratch
    instance_dirs.create(str(cloud.instances), instance_id, {"job": job, "owner": "alice", "uuid": "uuid-" + instance_id,
                                                         "mac": "02:00:00:00:00:07", "disks": []},
                     instance_dirs.Starter(pid, start_time, scratch))
    return instance_id


class Hypervisor:
    """The cleanup's libvirt seam (libvirt_conn.Libvirt): destroys domains by UUID and lists the running ones with the
    files of their disks. fail: libvirt unreachable; fail_destroy: it lists but cannot destroy."""

    def __init__(self, fail=False, domains=(), fail_destroy=False):
        self.fail = fail
        self.fail_destroy = fail_destroy
        self.domains = list(domains)
        self.destroyed = []

    def destroy(self, domain_uuid):
        if self.fail or self.fail_destroy:
            raise RuntimeError("libvirt unreachable")
        self.destroyed.append(domain_uuid)
        self.domains = [d for d in self.domains if d.uuid != domain_uuid]
        return True

    def running_domains(self):
        if self.fail:
            raise RuntimeError("libvirt unreachable")
        return list(self.domains)


@pytest.fixture
def dead_pid():
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def present(cloud):
    return sorted(os.listdir(str(cloud.instances)))


# -- reclaim_orphans ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("content", [None, b"{not json", b"[]"])
def test_a_directory_without_readable_instance_json_gets_the_grace_period(cloud, content):
    settings = config.load_settings()
    path = cloud.instances / "3.0-0000beef"
    path.mkdir()
    if content is not None:
        (path / "instance.json").write_bytes(content)
    made = os.stat(str(path)).st_mtime
    hv = Hypervisor()
    log = io.StringIO()
    assert reclaim.reclaim_orphans(settings, hv, now=made + settings.orphan_grace - 1, log=log) == []
    assert present(cloud) == ["3.0-0000beef"]
    assert reclaim.reclaim_orphans(settings, hv, now=made + settings.orphan_grace + 1, log=log) == ["3.0-0000beef"]
    assert present(cloud) == [] and hv.destroyed == []


@pytest.mark.subprocess
def test_an_orphan_is_kept_while_libvirt_is_unreachable(cloud, dead_pid):
    settings = config.load_settings()
    orphan = make_instance(cloud, "4.0-0000beef", pid=dead_pid, start_time=12345)
    log = io.StringIO()
    assert reclaim.reclaim_orphans(settings, Hypervisor(fail=True), log=log) == []
    assert present(cloud) == [orphan]
    assert log.getvalue() == ("condor-cloud cleanup: cannot list libvirt's running domains (libvirt unreachable): "
                              "no instance directory holding disks is removed and no cache entry evicted until "
                              "libvirt answers\n")
    log = io.StringIO()
    assert reclaim.reclaim_orphans(settings, Hypervisor(fail_destroy=True), log=log) == []
    assert present(cloud) == [orphan]
    assert log.getvalue() == ("condor-cloud cleanup: cannot destroy domain of orphan %s: libvirt unreachable\n"
                              % orphan)
    hv = Hypervisor()
    assert reclaim.reclaim_orphans(settings, hv, log=log) == [orphan]       # libvirt back: reclaimed
    assert hv.destroyed == ["uuid-" + orphan] and present(cloud) == []


def test_a_live_starters_instance_is_kept_and_a_reused_pid_is_not_alive(cloud):
    settings = config.load_settings()
    live = make_instance(cloud, "5.0-0000beef")
    reused = make_instance(cloud, "6.0-0000beef", start_time=processes.process_start_time(os.getpid()) - 1)
    hv = Hypervisor()
    assert reclaim.reclaim_orphans(settings, hv, log=io.StringIO()) == [reused]
    assert present(cloud) == [live] and hv.destroyed == ["uuid-" + reused]


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
