"""Usage (condor_cloud/master/usage.py) from hand-made job ads, queue and history, as the schedd records them:
JobCurrentStartDate and ShadowBday set when a shadow starts, LastRemoteWallClockTime and RemoteWallClockTime
when it ends (HTCondor v23.9.6, schedd.cpp). Times are POSIX seconds; H is an hour."""

import classad2
import pytest

from condor_cloud.core.errors import CloudError
from condor_cloud.master import usage

API = "condor-cloud-api"
H = 3600
T0 = 1_700_000_000          # the period [T0, T0 + 24 H)
SINCE, UNTIL = T0, T0 + 24 * H


def finished(start, length, owner="alice", cluster=1, cpus=2, memory=2048, status=4, **more):
    """A history ad of a job whose one run was [start, start + length)."""
    ad = {"ClusterId": cluster, "ProcId": 0, "GlobalJobId": "master#%d.0#1" % cluster, "JobUniverse": 13,
          "JobStatus": status, "Owner": owner, "JobStartDate": start, "JobCurrentStartDate": start,
          "LastRemoteWallClockTime": float(length), "RemoteWallClockTime": float(length),
          "EnteredCurrentStatus": start + length + 2, "CompletionDate": start + length if status == 4 else 0,
          "JobVM_VCPUS": cpus, "JobVMMemory": memory, "RequestCpus": cpus}
    ad.update(more)
    return ad


def running(start, owner="alice", cluster=2, cpus=2, memory=2048, **more):
    """A queue ad of a job running since start."""
    ad = {"ClusterId": cluster, "ProcId": 0, "GlobalJobId": "master#%d.0#1" % cluster, "JobUniverse": 13,
          "JobStatus": 2, "Owner": owner, "JobStartDate": start, "JobCurrentStartDate": start, "ShadowBday": start,
          "EnteredCurrentStatus": start, "RemoteWallClockTime": 0.0, "JobVM_VCPUS": cpus, "JobVMMemory": memory,
          "RequestCpus": cpus}
    ad.update(more)
    return ad


def compute(queue=(), history=(), since=SINCE, until=UNTIL, now=UNTIL + H, user=None):
    return usage.compute_usage(list(queue), list(history), since, until, now, API, user)


def test_a_finished_instance_inside_the_period_counts_its_run():
    alice = compute(history=[finished(T0 + H, 2 * H, cpus=2, memory=3072)])["alice"]
    assert (alice.instances, alice.instance_hours, alice.vcpu_hours, alice.memory_gib_hours, alice.running) == \
        (1, 2.0, 4.0, 6.0, 0)


def test_the_run_is_what_htcondor_recorded_not_when_the_job_left_the_queue():
    # EnteredCurrentStatus and CompletionDate come seconds later than the shadow's end; the length is the schedd's
    ad = finished(T0 + H, H, EnteredCurrentStatus=T0 + 5 * H, CompletionDate=T0 + 5 * H)
    assert compute(history=[ad])["alice"].instance_hours == 1.0


def test_runs_are_clipped_to_the_period():
    before = finished(T0 - H, 2 * H, cluster=1)              # half in
    after = finished(UNTIL - H, 4 * H, cluster=2)            # a quarter in
    outside = finished(T0 - 5 * H, H, cluster=3)
    later = finished(UNTIL + H, H, cluster=4)
    alice = compute(history=[before, after, outside, later], now=UNTIL + 10 * H)["alice"]
    assert (alice.instances, alice.instance_hours) == (2, 2.0)


def test_a_running_instance_counts_up_to_now():
    alice = compute(queue=[running(T0 + 20 * H)], now=T0 + 22 * H)["alice"]
    assert (alice.instances, alice.instance_hours, alice.running) == (1, 2.0, 1)


def test_a_running_instance_across_the_start_of_the_period_counts_from_it():
    alice = compute(queue=[running(T0 - 3 * H)], now=T0 + H)["alice"]
    assert alice.instance_hours == 1.0


def test_a_running_instance_is_clipped_at_the_end_of_a_past_period():
    alice = compute(queue=[running(UNTIL - H)], now=UNTIL + 5 * H)["alice"]
    assert (alice.instance_hours, alice.running) == (1.0, 1)


def test_a_job_that_never_ran_is_no_instance():
    idle = {"ClusterId": 5, "ProcId": 0, "JobUniverse": 13, "JobStatus": 1, "Owner": "alice", "QDate": T0}
    removed = dict(idle, JobStatus=3, EnteredCurrentStatus=T0 + H)
    assert compute(queue=[idle], history=[removed]) == {}


def test_a_held_instance_counts_its_run_until_the_hold():
    held = finished(T0 + H, H / 2, status=5, EnteredCurrentStatus=T0 + H + H / 2)
    alice = compute(queue=[held])["alice"]
    assert (alice.instance_hours, alice.running) == (0.5, 0)


def test_a_removed_instance_whose_shadow_still_runs_counts_until_its_removal():
    ad = running(T0 + H, JobStatus=3, EnteredCurrentStatus=T0 + 2 * H)
    alice = compute(queue=[ad], now=T0 + 2 * H + 30)["alice"]
    assert (alice.instance_hours, alice.running) == (1.0, 0)


def test_a_restarted_instance_counts_each_run():
    # first run [T0+1H, T0+3H) (node lost), requeued, second run [T0+4H, T0+5H)
    ad = finished(T0 + 4 * H, H, JobStartDate=T0 + H, JobLastStartDate=T0 + H, RemoteWallClockTime=3.0 * H)
    alice = compute(history=[ad])["alice"]
    assert (alice.instances, alice.instance_hours, alice.vcpu_hours) == (1, 3.0, 6.0)


def test_a_restarted_instance_still_running_counts_its_earlier_runs_and_this_one():
    ad = running(T0 + 4 * H, JobStartDate=T0 + H, RemoteWallClockTime=2.0 * H)
    assert compute(queue=[ad], now=T0 + 6 * H)["alice"].instance_hours == 4.0


def test_earlier_runs_across_the_periods_edge_are_shared_out_in_proportion():
    # 2 h of earlier runs somewhere in [T0-2H, T0+2H): HTCondor does not keep when; half that span is in the period
    ad = finished(T0 + 2 * H, H, JobStartDate=T0 - 2 * H, RemoteWallClockTime=3.0 * H)
    assert compute(history=[ad])["alice"].instance_hours == 2.0


def test_a_run_reconnected_after_a_schedd_restart_is_not_counted_twice():
    # run since T0+1H; the schedd restarted at T0+2H: its wall clock checkpoint (1 h) went into RemoteWallClockTime
    # and the new shadow's birthday is T0+2H
    ad = running(T0 + H, ShadowBday=T0 + 2 * H, RemoteWallClockTime=1.0 * H)
    assert compute(queue=[ad], now=T0 + 3 * H)["alice"].instance_hours == 2.0


def test_api_instances_count_for_the_cloud_user():
    ads = [finished(T0, H, owner=API, cluster=1, CloudOwner="bob"), finished(T0, H, owner="mallory", cluster=2,
                                                                               CloudOwner="bob")]
    result = compute(history=ads)
    assert set(result) == {"bob", "mallory"} and result["bob"].instance_hours == 1.0


def test_a_job_in_both_the_queue_and_the_history_counts_once():
    # it left the queue between the two reads: the history ad is the final one
    queue_copy = running(T0, cluster=7)
    history_copy = finished(T0, H, cluster=7)
    alice = compute(queue=[queue_copy], history=[history_copy], now=T0 + 3 * H)["alice"]
    assert (alice.instances, alice.instance_hours, alice.running) == (1, 1.0, 0)


def test_only_vm_jobs_and_only_the_user_asked_for():
    ads = [finished(T0, H, owner="alice", cluster=1), finished(T0, H, owner="bob", cluster=2),
           finished(T0, H, owner="alice", cluster=3, JobUniverse=5)]
    assert set(compute(history=ads, user="alice")) == {"alice"}
    assert compute(history=ads, user="alice")["alice"].instances == 1


def test_the_charged_size_weighs_the_hours():
    ad = finished(T0, H, cpus=1, memory=512,
                  ConcurrencyLimits="cloud_inst.alice,cloud_cpu.alice:4,cloud_mem.alice:4096")
    alice = compute(history=[ad])["alice"]
    assert (alice.vcpu_hours, alice.memory_gib_hours) == (4.0, 4.0)


def test_totals_and_json():
    result = compute(history=[finished(T0, H, owner="alice", cluster=1), finished(T0, 2 * H, owner="bob", cluster=2)])
    total = usage.totals(result.values())
    assert (total.instances, total.instance_hours) == (2, 3.0)
    assert result["bob"].as_dict() == {"user": "bob", "instances": 1, "instance_hours": 2.0, "vcpu_hours": 4.0,
                                       "memory_gib_hours": 4.0, "running": 0}


def test_the_schedd_constraint():
    text = usage.constraint(SINCE, UNTIL, "john.doe", API)
    assert text.startswith("JobUniverse == 13 && JobStartDate isnt undefined && JobStartDate < %d" % UNTIL)
    assert '(Owner == "john.doe" || (Owner == "condor-cloud-api" && CloudOwner == "john.doe"))' in text
    classad2.ExprTree(text)         # parses
    with pytest.raises(CloudError):
        usage.constraint(SINCE, UNTIL, 'x" || true || "')


class FakeSchedd:
    def __init__(self, queue, history, error=None):
        self.queue, self.hist, self.error, self.calls = queue, history, error, []

    def query(self, constraint, projection):
        self.calls.append(("query", constraint, projection))
        if self.error:
            raise self.error
        return self.queue

    def history(self, constraint, projection):
        self.calls.append(("history", constraint, projection))
        return self.hist


def test_read_usage_asks_the_schedd_once_each_and_evaluates_its_ads():
    q = classad2.ClassAd(running(T0 + H))
    q["RequestMemory"] = classad2.ExprTree("MY.JobVMMemory")
    h = classad2.ClassAd(finished(T0, H, owner="bob", cluster=9))
    schedd = FakeSchedd([q], [h])
    result = usage.read_usage(schedd, SINCE, UNTIL, T0 + 2 * H, API)
    assert result["alice"].instance_hours == 1.0 and result["bob"].instance_hours == 1.0
    (kind1, c1, p1), (kind2, c2, p2) = schedd.calls
    assert (kind1, kind2) == ("query", "history") and p1 == p2 == usage.PROJECTION
    assert c2 == c1 + " && EnteredCurrentStatus >= %d" % SINCE


def test_a_schedd_error_is_a_cloud_error():
    import htcondor2
    with pytest.raises(CloudError) as info:
        usage.read_usage(FakeSchedd([], [], htcondor2.HTCondorException("no schedd")), SINCE, UNTIL, UNTIL, API)
    assert "reading usage" in info.value.message
