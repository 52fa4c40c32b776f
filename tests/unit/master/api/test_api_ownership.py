"""Ownership is what the schedd authenticated (the job's Owner), never a free attribute: CloudOwner counts only on
jobs of the API's own account (issue 11, item 2). The fake schedd evaluates the API's constraints with the real
classad2 library, so these tests see exactly which jobs a query returns."""

import pytest

from condor_cloud.core.errors import CloudError
from condor_cloud.master.jobs import CloudJobs, Profile

from support import FakeSchedd, jsonh


def by_hand(env, owner, **attrs):
    """A job someone submitted with condor_submit: Owner is the schedd's, the rest is whatever they wrote."""
    import classad2

    cluster = 900 + len(env.schedd.jobs)
    ad = classad2.ClassAd({"ClusterId": cluster, "ProcId": 0, "JobUniverse": 13, "JobStatus": 2,
                           "GlobalJobId": "master.example.org#%d.0#1700000000" % cluster, "QDate": 1700000000,
                           "Owner": owner, "JobVMMemory": 256, "JobVM_VCPUS": 1,
                           "VMPARAM_vm_Disk": "demo.qcow2:vda:w", "Cmd": "mine"})
    ad.update(attrs)
    env.schedd.jobs.append(ad)
    return "master.example.org_%d.0_1700000000" % cluster


def listed(env, user):
    return {i["id"]: i for i in env.client.get("/api/instances", headers=jsonh(user)).get_json()["instances"]}


def test_a_forged_cloud_owner_does_not_put_a_job_into_another_users_list(env):
    forged = by_hand(env, "bob", CloudOwner="alice", CloudName="alice-web", ChirpCloudAddresses="192.0.2.66",
                     CloudProfile="large", CloudKeyName="alices-key")
    assert forged not in listed(env, "alice")
    assert env.client.get("/api/instances/" + forged, headers=jsonh("alice")).status_code == 404
    assert env.client.delete("/api/instances/" + forged, headers=jsonh("alice")).status_code == 404
    assert env.schedd.acts == []
    mine = listed(env, "bob")[forged]  # it is bob's, and his free attributes name nothing
    assert mine["owner"] == "bob" and mine["name"] == "mine" and mine["hardware_profile"]["id"] != "large"


def test_the_api_accounts_jobs_belong_to_their_cloud_owner(env):
    launched = by_hand(env, "condor-cloud-api", CloudOwner="alice", CloudName="web")
    assert listed(env, "alice")[launched]["owner"] == "alice"
    assert launched not in listed(env, "bob")
    by_hand_alice = by_hand(env, "alice")
    assert listed(env, "alice")[by_hand_alice]["owner"] == "alice"  # her own condor_submit jobs are hers too


def test_only_the_api_account_launches_for_someone_else():
    schedd = FakeSchedd()
    profile = Profile("small", 512, 1)
    jobs = CloudJobs(lambda: schedd, submitter="alice")
    with pytest.raises(CloudError, match="only the API's account"):
        jobs.submit("bob", "demo.qcow2", profile, "web")
    assert schedd.submitted == []
    jobs.submit("alice", "demo.qcow2", profile, "web")  # her own: no Cloud* attributes at all
    assert not [k for k in schedd.submitted[0] if k.startswith("MY.Cloud")]


def test_a_failed_spool_removes_the_launch(env):
    def broken(result):
        import htcondor2

        raise htcondor2.HTCondorException("transfer failed")

    env.schedd.spool = broken
    from support import DEMO_ID
    import base64

    r = env.client.post("/api/instances", data={"image_id": DEMO_ID, "user_data": base64.b64encode(b"#!/bin/sh\n")},
                        headers=jsonh())
    assert r.status_code == 502
    import htcondor2

    assert [(a, spec) for a, spec, _ in env.schedd.acts] == [(htcondor2.JobAction.Remove, "42.0")]


@pytest.mark.parametrize("raw", [b"#!/bin/sh\n\x00", b"\xff\xfe not text"])
def test_the_api_refuses_user_data_the_node_would_refuse(env, raw):
    import base64

    from support import DEMO_ID

    r = env.client.post("/api/instances", data={"image_id": DEMO_ID, "user_data": base64.b64encode(raw)},
                        headers=jsonh())
    assert r.status_code == 400 and env.schedd.submitted == []


@pytest.mark.parametrize("value", ['a"b', "a\\b", "$(Owner)", "a\nb", "x\x00", 5, None])
def test_only_checked_literals_reach_a_job_attribute(value):
    from condor_cloud.master.jobs import plain_literal

    with pytest.raises(ValueError, match="refusing to put"):
        plain_literal(value)
    assert plain_literal("alice@example.org web-1_2.x") == '"alice@example.org web-1_2.x"'
