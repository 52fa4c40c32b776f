"""Crashes leave no ghosts (issue 17, item 1): the knobs of the shipped snippets that bound how long a lost
instance can still look RUNNING, read by HTCondor's own configuration parser (htcondor2) from config.d, master and
node together as on a single-host cloud. Each docstring gives the reason and the place in HTCondor 23.9.6's source
(tag v23.9.6) it rests on; docs/DESIGN.txt, "Failures: instances and nodes", has the timelines, and
tests/integration/test_failures.py measures them on a real pool."""

import re

import classad2
import pytest

BOUND = 60          # issue 17: a lost VM shows a true state within 60 s
KEEPALIVE_RETRY = 5  # a failed keep-alive is retried after 5 s (ALIVE_BAILOUT, condor_startd.V6/claim.cpp)


@pytest.fixture
def knobs(shipped_config):
    return shipped_config


def lease_transform(knobs):
    """(REQUIREMENTS expression, {attribute: value} of its SET lines) of the CloudLease job transform."""
    assert "CloudLease" in knobs["JOB_TRANSFORM_NAMES"].split()
    body = knobs["JOB_TRANSFORM_CloudLease"]
    requirements = re.search(r"^\s*REQUIREMENTS\s+(.+)$", body, re.M).group(1)
    sets = dict(re.findall(r"^\s*SET\s+(\w+)\s+(.+?)\s*$", body, re.M))
    return requirements, sets


def lease(knobs):
    return int(lease_transform(knobs)[1]["JobLeaseDuration"])


def schedd_check_period(knobs):
    """How often the schedd compares each running job's last keep-alive with its lease: min(ALIVE_INTERVAL, lease
    / 3, at least 10) (Scheduler::RecomputeAliveInterval and Scheduler::reconfig, schedd.cpp)."""
    return min(int(knobs.get("ALIVE_INTERVAL", "300")), max(10, lease(knobs) // 3))


def test_every_vm_job_gets_the_short_lease(knobs):
    """JobLeaseDuration = 36 s on every VM job, also one submitted by hand with its own job_lease_duration:
    condor_submit's default is 2400 s (JOB_DEFAULT_LEASE_DURATION, submit_utils.cpp), and a shadow that cannot
    deactivate the claim of a starter that died sleeps out the rest of it (RemoteResource::killStarter,
    remoteresource.cpp: "Failed to kill starter, sleeping for remaining lease duration"), the job RUNNING all that
    time. A schedd job transform sets it at submit, after anything the submitter wrote."""
    requirements, sets = lease_transform(knobs)
    assert sets == {"JobLeaseDuration": "36"}
    applies = classad2.ExprTree(requirements)
    assert applies.eval(classad2.ClassAd({"JobUniverse": 13, "JobVMType": "kvm", "JobLeaseDuration": 2400}))
    assert not applies.eval(classad2.ClassAd({"JobUniverse": 5, "JobLeaseDuration": 2400}))
    # the same jobs as the other Condor Cloud transforms
    assert requirements == re.search(r"^\s*REQUIREMENTS\s+(.+)$", knobs["JOB_TRANSFORM_CloudRank"], re.M).group(1)


def test_a_silent_node_is_noticed_well_within_the_bound(knobs):
    """The schedd kills the shadow of a job whose node has sent no keep-alive for the lease and requeues the job
    (Scheduler::sendAlives: LastJobLeaseRenewal + JobLeaseDuration < now -> jobExitCode(JOB_RECONNECT_FAILED),
    treated as JOB_SHOULD_REQUEUE in Scheduler::jobExitCode, then SIGKILL). The last keep-alive came at most just
    before the node died, and the check runs every schedd_check_period: lease + period (48 s) leaves 12 s for the
    next negotiation and a client's poll."""
    assert lease(knobs) + schedd_check_period(knobs) <= BOUND - 10


def test_a_brief_outage_of_the_master_ends_no_instance(knobs):
    """The other side of the lease: a node that hears nothing from the schedd for the lease kills the claim
    (Claim::leaseExpired, claim.cpp). Its keep-alives go every lease/3 s (Claim::startLeaseTimer) and a failed one
    is retried every 5 s (ALIVE_BAILOUT), so a schedd away (restarting, unreachable) for less than
    2 * lease / 3 - 5 s (19 s) never ends an instance, whenever it starts; one away for more than the lease always
    does (the instances start again, fresh). See docs/DESIGN.txt for a network blip of N seconds."""
    assert 2 * lease(knobs) // 3 - KEEPALIVE_RETRY >= 15


def test_startds_keep_alive_the_claims_of_running_instances(knobs):
    """STARTER_HANDLES_ALIVES = False. With HTCondor's default (True) the schedd renews a running job's lease
    whenever its shadow process exists (Scheduler::sendAlives: starter_handles_alives && shadowRec) and the startd
    renews the claim itself while a starter runs (Claim::sendAlive): a node that lost power, hangs or is cut off
    is then noticed only when the shadow's TCP connection fails (TCP_KEEPALIVE_INTERVAL 360 s + 25 s, or three
    times the starter's maximum update interval, 30 min: RemoteResource::updateFromStarterTimeout)."""
    assert knobs["STARTER_HANDLES_ALIVES"].lower() == "false"


def test_the_owner_cannot_lengthen_the_lease(knobs):
    """A job's owner may edit its ad after submit (condor_qedit); a protected attribute only a queue super user
    may change (ModifyAttrCheck, qmgmt.cpp), so the bound holds for every VM job."""
    assert "JobLeaseDuration" in knobs["PROTECTED_JOB_ATTRS"].split()


def test_a_starter_that_lost_its_shadow_waits_for_the_reconnect(knobs):
    """A starter whose shadow went away (the schedd restarts: Scheduler::preempt SIGKILLs the shadows of jobs with
    a lease and keeps the jobs) kills its VM after the lease minus the time since its last exchange with the
    shadow, its last update (JICShadow::syscall_sock_disconnect, jic_shadow.cpp). With HTCondor's 300 s (our 60 s
    before) most instances would be killed at once; updating every lease/3 s leaves every starter 2 * lease / 3
    (24 s) for the restarted schedd's reconnect."""
    assert 0 < int(knobs["STARTER_UPDATE_INTERVAL"]) <= lease(knobs) // 3
