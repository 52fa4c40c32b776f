"""Quotas and usage on the real pool (issue 15), with alice's instance quota set to 1 by the product's own
`condor-cloud user quota` (the overrides file + a negotiator reconfig; reset to the default at the end):
- at her limit, the API refuses alice's next launch (403, naming the limit and the current use);
- her by-hand condor_submit job over the limit stays idle with the negotiator's reason in LastRejMatchReason
  (condor_q -better-analyze) and the API's PENDING reason, and starts by itself once her running instance ends;
- bob, another user, launches and runs meanwhile;
- the usage reported for bob's finished instance is its run as the job's history records it.

The instances are short where they can be: alice's first runs the `sleep` image (it must hold her quota until
destroyed), the others the `poweroff` image (boots, powers off: the job completes). Needs root and the sandbox."""

import json
import os
import time

import pytest

from helpers import by_hand, http, job_attr, start_api, stop_api, wait_state
from wait import wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox needs root")

CLI = ["condor-cloud"]


def cli(pool, *args, user=None, check=True):
    return pool.run(CLI + list(args), user=user, check=check)


def image_ids(pool):
    status, _, body = http(pool, "GET", "/api/images", "alice")
    assert status == 200, body
    return {i["name"]: i["id"] for i in json.loads(body)["images"]}


def cluster_of(instance):
    return int(instance["id"].split("_")[-2].split(".")[0])


def launch(pool, user, image, name):
    return http(pool, "POST", "/api/instances", user, data={"image_id": image_ids(pool)[image], "hwp_id": "small",
                                                             "name": name})


def history_ad(pool, cluster):
    """The finished job's history ad as {attr: raw value}."""
    text = pool.run(["condor_history", "%d.0" % cluster, "-limit", "1", "-l"]).stdout
    return dict((k.strip(), v.strip()) for k, _, v in (line.partition(" = ") for line in text.splitlines()) if v)


# -- fixtures ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pool(sandbox, test_images):
    sandbox.put_image("sleep.qcow2", test_images["sleep"])
    sandbox.put_image("poweroff.qcow2", test_images["poweroff"])
    start_api(sandbox)
    out = cli(sandbox, "user", "quota", "alice", "--instances", "1").stdout
    assert "quota of alice set: instances 1" in out, out
    yield sandbox
    cli(sandbox, "user", "quota", "alice", "--instances", "default", check=False)
    stop_api(sandbox)


@pytest.fixture(scope="module")
def alices_first(pool):
    """alice's running instance (the sleep image): her one instance of quota."""
    status, _, body = launch(pool, "alice", "sleep.qcow2", "quota-first")
    assert status == 201, body
    inst = json.loads(body)["instance"]
    assert wait_state(pool, "alice", inst["id"], ("RUNNING",)) == "RUNNING"
    yield inst
    http(pool, "DELETE", "/api/instances/" + inst["id"], "alice")


@pytest.fixture(scope="module")
def bobs_finished(pool, alices_first):
    """bob's poweroff instance, launched while alice is at her limit; its job has completed."""
    status, _, body = launch(pool, "bob", "poweroff.qcow2", "quota-bob")
    assert status == 201, body
    inst = json.loads(body)["instance"]
    inst["cluster"] = cluster_of(inst)
    assert pool.wait_job(inst["cluster"], ("completed",), timeout=300) == "completed"
    return inst


# -- tests ---------------------------------------------------------------------------------------------------------
def test_the_quota_is_shown_to_the_administrator(pool):
    (alice,) = [u for u in json.loads(cli(pool, "user", "list", "--json").stdout) if u["name"] == "alice"]
    assert alice["quota"]["instances"] == 1 and alice["overrides"] == ["instances"]


def test_at_her_limit_alice_is_refused_by_the_api(pool, alices_first):
    status, _, body = launch(pool, "alice", "poweroff.qcow2", "quota-refused")
    assert status == 403, body
    error = json.loads(body)
    assert error["message"] == "over your instance quota: 1 of 1 running, this launch needs 1 more"
    assert error["quota"]["limit"] == 1 and error["quota"]["in_use"] == 1
    names = [i["name"] for i in json.loads(http(pool, "GET", "/api/instances", "alice")[2])["instances"]]
    assert "quota-refused" not in names


def test_another_user_is_not_affected(bobs_finished):
    # it was launched and ran to its end (the guest powered off) while alice was at her limit
    assert bobs_finished["cluster"] > 0


def test_a_by_hand_job_over_the_limit_waits_with_the_reason_and_starts_when_room_frees(pool, alices_first):
    cluster = pool.submit(by_hand("poweroff.qcow2"), user="alice")
    jid = "%d.0" % cluster
    reason = wait_for("the negotiator's reason on %s" % jid, lambda: job_attr(pool, jid, "LastRejMatchReason"),
                      120, interval=2, accept=lambda r: r is not None and "concurrency limit" in r,
                      explain=lambda: pool.diagnose(cluster))
    assert "concurrency limit cloud_inst.alice reached" in reason
    assert pool.job_status(cluster) == "idle" and job_attr(pool, jid, "JobCurrentStartDate") is None
    analysis = pool.run(["condor_q", jid, "-better-analyze"]).stdout
    assert "concurrency limit cloud_inst.alice reached" in analysis
    listed = json.loads(http(pool, "GET", "/api/instances", "alice")[2])["instances"]
    (waiting,) = [i for i in listed if i["id"].split("_")[-2] == jid]
    assert waiting["state"] == "PENDING"
    assert waiting["state_reason"] == "over your instance quota (1 of 1 running)"
    # alice's running instance ends: the waiting job starts by itself (and, powering off, completes)
    assert http(pool, "DELETE", "/api/instances/" + alices_first["id"], "alice")[0] == 204
    assert pool.wait_job(cluster, ("running", "completed"), timeout=300) in ("running", "completed")


def test_usage_of_a_finished_instance_matches_its_history(pool, bobs_finished):
    ad = history_ad(pool, bobs_finished["cluster"])
    start, wall = int(ad["JobCurrentStartDate"]), float(ad["LastRemoteWallClockTime"])
    ended = int(ad["EnteredCurrentStatus"])
    assert abs((ended - start) - wall) <= 5          # the history's own two accounts of the run agree
    # a period around this one run (bob has no other instance in it: the queue is empty between modules)
    since, until = utc(start - 60), utc(ended + 60)
    doc = json.loads(cli(pool, "usage", "--user", "bob", "--since", since, "--until", until, "--json").stdout)
    (bob,) = doc["users"]
    assert (bob["user"], bob["instances"], bob["running"]) == ("bob", 1, 0)
    assert abs(bob["instance_hours"] * 3600 - wall) <= 5, (bob, ad)
    assert abs(bob["instance_hours"] * 3600 - (ended - start)) <= 5, (bob, ad)
    # the API tells bob the same, and only about himself
    status, _, body = http(pool, "GET", "/api/usage?since=%s&until=%s" % (since, until), "bob")
    assert status == 200, body
    (entry,) = json.loads(body)["usage"]["users"]
    assert entry["user"] == "bob" and abs(entry["usage"]["instance_hours"] - bob["instance_hours"]) < 0.001
    assert http(pool, "GET", "/api/usage?user=alice", "bob")[0] == 403


def utc(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
