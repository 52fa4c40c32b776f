"""RunInstances and quotas (issue 15): over the user's quota -> InstanceLimitExceeded (400) with the limit and the
current use; MaxCount above what fits launches as many as fit; a pending instance that the quota holds says so in
its StateReason."""

import dataclasses

import pytest

from condor_cloud.master import quotas
from condor_cloud.master.quotas import Quota

from .test_ec2_actions import ClientError, code_of, launch, status_of


@pytest.fixture
def limited(env, tmp_path):
    """env with a pool-wide quota of 2 running instances (set_quota changes it)."""
    def set_quota(quota, **users):
        path = tmp_path / "quotas.config"
        qf = quotas.QuotaFile({}, {})
        for user, fields in users.items():
            qf = quotas.set_user(qf, user, **fields)
        quotas.save(str(path), qf)
        api = dataclasses.replace(env.settings.api, quota_defaults=quota, quota_file=str(path))
        env.app.settings = dataclasses.replace(env.settings, api=api)

    env.set_quota = set_quota
    set_quota(Quota(instances=2))
    return env


def run_all(env):
    for ad in env.schedd.jobs:
        ad["JobStatus"] = 2


def test_over_the_quota_is_instance_limit_exceeded(limited, ec2):
    client = ec2()
    launch(client, MinCount=2, MaxCount=2)
    run_all(limited)
    with pytest.raises(ClientError) as info:
        launch(client)
    assert code_of(info) == "InstanceLimitExceeded" and status_of(info) == 400
    assert info.value.response["Error"]["Message"] == \
        "over your instance quota: 2 of 2 running, this launch needs 1 more"
    assert len(limited.schedd.submitted) == 2
    launch(ec2("bob"))                           # another user's quota is their own


def test_max_count_launches_as_many_as_fit(limited, ec2):
    client = ec2()
    launch(client)
    run_all(limited)
    res = launch(client, MinCount=1, MaxCount=3)
    assert len(res["Instances"]) == 1 and len(limited.schedd.submitted) == 2
    with pytest.raises(ClientError) as info:
        launch(client, MinCount=2, MaxCount=3)
    assert code_of(info) == "InstanceLimitExceeded"


def test_vcpu_quota_counts_the_instance_type(limited, ec2):
    limited.set_quota(Quota(cpus=4))
    client = ec2()
    res = launch(client, InstanceType="medium", MinCount=1, MaxCount=3)     # 2 vCPUs each: 2 fit
    assert len(res["Instances"]) == 2
    run_all(limited)
    with pytest.raises(ClientError) as info:
        launch(client, InstanceType="small")
    assert "over your vCPU quota: 4 of 4 vCPUs in use" in info.value.response["Error"]["Message"]


def test_a_pending_instance_held_by_the_quota_says_why(limited, ec2):
    client = ec2()
    launch(client, MinCount=2, MaxCount=2)
    run_all(limited)
    limited.set_quota(Quota(instances=3))
    waiting = launch(client)["Instances"][0]["InstanceId"]
    limited.set_quota(Quota(instances=2))
    (res,) = client.describe_instances(InstanceIds=[waiting])["Reservations"]
    inst = res["Instances"][0]
    assert inst["State"]["Name"] == "pending"
    assert inst["StateReason"]["Message"] == "over your instance quota (2 of 2 running)"
