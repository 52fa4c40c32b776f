"""A DELETE is final (issue 17, item 2): CloudJobs.remove removes the job (condor_rm) and, when the job is still
in the queue `linger` seconds later (its shadow waits for a node that does not answer), force-removes it
(condor_rm -forcex, JobAction.RemoveX) from a timer, so the caller never waits. The real pool does it with the
startd off in tests/integration/test_failures.py."""

import time

import classad2
import htcondor2
import pytest

from condor_cloud.master.jobs import CloudJobs, InstanceInfo, NoSuchInstance


class Schedd:
    """Records act() calls; answers Remove as the schedd does, RemoveX with `forcex` (or raises it)."""

    def __init__(self, remove=None, forcex=None):
        self.acts = []
        self.remove_answer = remove or {"TotalSuccess": 1}
        self.forcex_answer = forcex if forcex is not None else {"TotalSuccess": 1}

    def act(self, action, job, reason=None):
        self.acts.append((action, job, reason))
        answer = self.remove_answer if action == htcondor2.JobAction.Remove else self.forcex_answer
        if isinstance(answer, Exception):
            raise answer
        return classad2.ClassAd(answer)


def info(cluster=42, proc=0):
    return InstanceInfo(id="master_%d.%d_1700000000" % (cluster, proc), cluster=cluster, proc=proc, name="web",
                        owner="alice", image="demo.qcow2", profile="small", state="RUNNING", job_status=2,
                        memory=512, cpus=1, keyname="", launch_time=1700000000, start_time=1700000010,
                        hold_reason="")


def jobs(schedd):
    return CloudJobs(schedd_factory=lambda: schedd, submitter="condor-cloud-api")


def test_a_removed_job_still_queued_after_the_linger_is_force_removed():
    schedd = Schedd()
    started = time.monotonic()
    timer = jobs(schedd).remove(info(), "destroyed through the API by alice", linger=0.2)
    # the caller does not wait for the escalation
    assert time.monotonic() - started < 0.2
    assert schedd.acts == [(htcondor2.JobAction.Remove, "42.0", "destroyed through the API by alice")]
    timer.join(5)
    assert not timer.is_alive() and timer.daemon
    assert [(a, j) for a, j, _ in schedd.acts] == [(htcondor2.JobAction.Remove, "42.0"),
                                                   (htcondor2.JobAction.RemoveX, "42.0")]
    reason = schedd.acts[1][2]
    assert reason.startswith("destroyed through the API by alice") and "forced" in reason


def test_the_default_linger_leaves_a_healthy_node_time_and_the_lease_margin():
    """20 s: a node that answers stops the VM and reports in seconds (up to ~30 s while the VM starter sleeps
    after creating the domain, harmless to cut short: the kill is already on its way); 20 s + a listing stay well
    inside the 60 s bound."""
    schedd = Schedd()
    timer = jobs(schedd).remove(info(), "bye")
    try:
        assert timer.interval == 20.0
    finally:
        timer.cancel()


def test_no_escalation_when_asked_for_none():
    schedd = Schedd()
    assert jobs(schedd).remove(info(), "bye", linger=None) is None
    assert [a for a, _, _ in schedd.acts] == [htcondor2.JobAction.Remove]


def test_a_failed_remove_raises_and_schedules_nothing():
    schedd = Schedd(remove={"TotalSuccess": 0, "TotalJobsNotFound": 1})
    with pytest.raises(NoSuchInstance):
        jobs(schedd).remove(info(), "bye", linger=0.01)
    time.sleep(0.1)
    assert [a for a, _, _ in schedd.acts] == [htcondor2.JobAction.Remove]


@pytest.mark.parametrize("answer", [{"TotalSuccess": 0, "TotalJobsNotFound": 1},
                                    htcondor2.HTCondorException("Failed to connect to schedd"),
                                    RuntimeError("Failed to connect to schedd")])
def test_the_escalation_is_best_effort(answer):
    """The job left on its own (not found), or the schedd is unreachable: nothing to do, nothing raised (the job
    lease bounds the removal anyway)."""
    schedd = Schedd(forcex=answer)
    timer = jobs(schedd).remove(info(), "bye", linger=0.01)
    timer.join(5)
    assert [a for a, _, _ in schedd.acts] == [htcondor2.JobAction.Remove, htcondor2.JobAction.RemoveX]


class Refusing:
    """A schedd call that fails `times` times with `error`, then answers."""

    def __init__(self, error, times):
        self.error, self.times, self.calls = error, times, 0

    def __call__(self):
        self.calls += 1
        if self.calls <= self.times:
            raise self.error
        return "answer"


REJECTED = OSError("Failed to fetch ads from schedd, errmsg=SECMAN:2004:Server rejected our session id")


@pytest.mark.parametrize("error", [REJECTED, OSError("Failed to connect to schedd.")])
def test_a_refusal_before_the_schedd_acts_is_retried_once(error):
    """After a schedd restart each long-lived API process's cached session is refused once (real pool); a submit's
    queue connection that failed created nothing."""
    call = Refusing(error, 1)
    assert jobs(Schedd())._call("listing instances", call) == "answer" and call.calls == 2


def test_a_second_rejection_or_another_error_is_a_backend_error_without_retry():
    from condor_cloud.master.jobs import BackendError

    call = Refusing(REJECTED, 2)
    with pytest.raises(BackendError, match="SECMAN:2004"):
        jobs(Schedd())._call("listing instances", call)
    assert call.calls == 2
    other = Refusing(RuntimeError("Failed to create new proc ID."), 1)
    with pytest.raises(BackendError, match="Failed to create"):
        jobs(Schedd())._call("submitting an instance", other)
    assert other.calls == 1   # a submit that may have reached the schedd is never sent twice


@pytest.mark.parametrize("status, destroyable", [(1, True), (2, True), (3, False), (4, False), (5, True), (6, False),
                                                 (7, True)])
def test_one_destroy_rule_for_the_apis_and_the_cli(status, destroyable):
    """Idle, running, held and suspended instances can be destroyed; one already being removed, completed or ending
    cannot (both APIs and the CLI call CloudJobs.destroy)."""
    from dataclasses import replace

    from condor_cloud.master.jobs import InstanceStateError, can_destroy

    item = replace(info(), job_status=status)
    assert can_destroy(item) is destroyable
    schedd = Schedd()
    if destroyable:
        jobs(schedd).destroy(item, "bye", linger=None)
        assert [a for a, _, _ in schedd.acts] == [htcondor2.JobAction.Remove]
    else:
        with pytest.raises(InstanceStateError, match="cannot be destroyed now"):
            jobs(schedd).destroy(item, "bye", linger=None)
        assert schedd.acts == []
