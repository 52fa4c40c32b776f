"""Quotas and usage in the Deltacloud API (issue 15): a launch over its owner's quota is refused before submit
(403, the limit and the current use named), a PENDING instance that the quota holds says so, and GET /api/usage
shows a user their own usage and quota only (an admin everybody's)."""

import dataclasses
import xml.etree.ElementTree as ET

import classad2
import pytest

from condor_cloud.master import quotas
from condor_cloud.master.quotas import Quota

from support import DEMO_ID, html, jsonh, xml

NOW_START = 1700000000


@pytest.fixture
def qenv(env, tmp_path):
    """env whose settings have a pool-wide quota of 1 running instance and an overrides file (initially none)."""
    env.quota_file = tmp_path / "quotas.config"

    def set_quota(defaults=Quota(), **users):
        ctx = env.app.extensions["condor_cloud"]
        ctx["settings"] = dataclasses.replace(env.settings, quota_defaults=defaults, quota_file=str(env.quota_file))
        qf = quotas.QuotaFile({}, {})
        for user, fields in users.items():
            qf = quotas.set_user(qf, user, **fields)
        quotas.save(str(env.quota_file), qf)

    env.set_quota = set_quota
    set_quota(Quota(instances=1))
    return env


def launch(env, user="alice", headers=None, **data):
    data.setdefault("image_id", DEMO_ID)
    return env.client.post("/api/instances", data=data, headers=headers or jsonh(user))


def running(env, user="alice", **data):
    """A launch of user's that the fake schedd then runs (JobStatus 2); returns its instance dict."""
    inst = launch(env, user, **data).get_json()["instance"]
    env.schedd.set_status(env.schedd.next_cluster, 2)       # the cluster just submitted
    return inst


# -- refused at the door -------------------------------------------------------------------------------------------
def test_a_launch_over_the_instance_quota_is_refused_before_submit(qenv):
    running(qenv)
    r = launch(qenv)
    assert r.status_code == 403
    body = r.get_json()
    assert body["message"] == "over your instance quota: 1 of 1 running, this launch needs 1 more"
    assert body["quota"] == {"kind": "quota_exceeded", "field": "instances", "limit": 1, "in_use": 1,
                             "requested": 1}
    assert len(qenv.schedd.submitted) == 1      # only the first one


def test_the_refusal_is_a_deltacloud_error_in_xml_and_html(qenv):
    running(qenv)
    r = launch(qenv, headers=xml())
    assert r.status_code == 403
    root = ET.fromstring(r.data)
    assert root.tag == "error" and root.get("status") == "403" and root.find("code").text == "403"
    assert "1 of 1 running" in root.find("message").text
    assert root.find("quota").attrib == {"field": "instances", "limit": "1", "in_use": "1", "requested": "1"}
    r = launch(qenv, headers=html())
    assert r.status_code == 403 and "over your instance quota: 1 of 1 running" in r.get_data(as_text=True)


def test_memory_and_vcpu_quotas_count_the_profiles_size(qenv):
    qenv.set_quota(Quota(cpus=3, memory_mib=2048))
    running(qenv, hwp_id="medium")                  # 2 vCPUs, 1024 MiB
    r = launch(qenv, hwp_id="medium")
    assert r.status_code == 403 and r.get_json()["message"] == \
        "over your vCPU quota: 2 of 3 vCPUs in use, this launch needs 2 more"
    assert launch(qenv, hwp_id="small").status_code == 201      # 1 vCPU, 512 MiB fits
    qenv.set_quota(Quota(memory_mib=2048))
    assert launch(qenv, hwp_id="large").get_json()["message"] == \
        "over your memory quota: 1 GiB of 2 GiB in use, this launch needs 2 GiB more"


def test_only_running_instances_count_and_other_users_are_not_affected(qenv):
    launch(qenv)                                     # idle: holds no slot, no limit
    assert launch(qenv).status_code == 201
    qenv.schedd.set_status(qenv.schedd.next_cluster, 2)
    assert launch(qenv).status_code == 403
    assert launch(qenv, "bob").status_code == 201


def test_an_override_applies_at_once_without_a_restart(qenv):
    running(qenv)
    assert launch(qenv).status_code == 403
    qenv.set_quota(Quota(instances=1), alice={"instances": 2})
    assert launch(qenv).status_code == 201
    qenv.set_quota(Quota(instances=1), alice={"instances": None})      # unlimited
    assert launch(qenv).status_code == 201


def test_unlimited_asks_the_schedd_nothing_more(env):
    assert launch(env).status_code == 201
    queries = len(env.schedd.queries)
    assert launch(env).status_code == 201
    assert len(env.schedd.queries) == queries + 1     # the read-back of the new job only


# -- PENDING with a reason -----------------------------------------------------------------------------------------
def test_a_pending_instance_held_by_the_quota_says_why(qenv):
    running(qenv)
    qenv.set_quota(Quota(instances=2))
    waiting = launch(qenv).get_json()["instance"]
    launch(qenv, "bob")
    qenv.set_quota(Quota(instances=1))               # e.g. lowered, or a launch that raced the check
    listed = {i["id"]: i for i in qenv.client.get("/api/instances", headers=jsonh()).get_json()["instances"]}
    assert listed[waiting["id"]]["state"] == "PENDING"
    assert listed[waiting["id"]]["state_reason"] == "over your instance quota (1 of 1 running)"
    shown = qenv.client.get("/api/instances/" + waiting["id"], headers=jsonh()).get_json()["instance"]
    assert shown["state_reason"] == "over your instance quota (1 of 1 running)"
    root = ET.fromstring(qenv.client.get("/api/instances/" + waiting["id"], headers=xml()).data)
    assert root.find("state_reason").text == "over your instance quota (1 of 1 running)"
    page = qenv.client.get("/api/instances/" + waiting["id"], headers=html()).get_data(as_text=True)
    assert "over your instance quota (1 of 1 running)" in page
    assert "over your instance quota" in qenv.client.get("/api/instances", headers=html()).get_data(as_text=True)
    # bob's idle instance waits for other reasons: his quota has room
    (bobs,) = qenv.client.get("/api/instances", headers=jsonh("bob")).get_json()["instances"]
    assert bobs["state"] == "PENDING" and "state_reason" not in bobs
    # the admin's listing computes each owner's own
    every = {i["id"]: i for i in qenv.client.get("/api/instances", headers=jsonh("root_")).get_json()["instances"]}
    assert every[waiting["id"]]["state_reason"] == "over your instance quota (1 of 1 running)"
    assert "state_reason" not in every[bobs["id"]]


def test_a_pending_instance_no_node_has_room_for_says_why(env):
    """Issue 13: the negotiator's "no match found" (LastRejMatchReason, on one job of an autocluster) explains every
    idle instance of that autocluster and owner; a quota reason, when there is one, comes first."""
    first, second = (launch(env).get_json()["instance"] for _ in range(2))
    bobs = launch(env, "bob").get_json()["instance"]
    a, b, c = env.schedd.jobs[-3:]
    a.update({"AutoClusterId": 3, "LastRejMatchReason": "no match found ", "LastRejMatchTime": 1700000100})
    b["AutoClusterId"] = 3
    c["AutoClusterId"] = 3          # bob's: another owner, not explained by alice's job
    for inst in (first, second):
        shown = env.client.get("/api/instances/" + inst["id"], headers=jsonh()).get_json()["instance"]
        assert shown["state"] == "PENDING"
        assert shown["state_reason"].startswith("no node has room for it now") and "no match found" in shown["state_reason"]
    assert "state_reason" not in env.client.get("/api/instances/" + bobs["id"], headers=jsonh("bob")).get_json()["instance"]
    a["LastMatchTime"] = 1700000200
    shown = env.client.get("/api/instances/" + second["id"], headers=jsonh()).get_json()["instance"]
    assert "state_reason" not in shown


def test_no_reason_once_there_is_room(qenv):
    first = running(qenv)
    qenv.set_quota(Quota(instances=2))
    waiting = launch(qenv).get_json()["instance"]
    qenv.set_quota(Quota(instances=1))
    qenv.client.delete("/api/instances/" + first["id"], headers=jsonh())       # removed: no longer running
    shown = qenv.client.get("/api/instances/" + waiting["id"], headers=jsonh()).get_json()["instance"]
    assert "state_reason" not in shown


# -- GET /api/usage ------------------------------------------------------------------------------------------------
def _history(env, ads):
    def history(constraint=None, projection=(), **kw):
        expr = classad2.ExprTree(constraint or "true")
        return [a for a in ads if expr.eval(a) is True]

    env.schedd.history = history


def _finished(owner, cluster, start, seconds, cpus=1, memory=512):
    return classad2.ClassAd({
        "ClusterId": cluster, "ProcId": 0, "GlobalJobId": "master.example.org#%d.0#%d" % (cluster, start - 10),
        "QDate": start - 10, "JobUniverse": 13, "JobStatus": 3, "Owner": "condor-cloud-api", "CloudOwner": owner,
        "JobStartDate": start, "JobCurrentStartDate": start, "EnteredCurrentStatus": start + seconds + 5,
        "RemoteWallClockTime": float(seconds), "LastRemoteWallClockTime": float(seconds),
        "ConcurrencyLimits": "cloud_inst.%s,cloud_cpu.%s:%d,cloud_mem.%s:%d" % (owner, owner, cpus, owner, memory)})


@pytest.fixture
def used(qenv):
    _history(qenv, [_finished("alice", 7, NOW_START, 7200, cpus=2, memory=1024),
                    _finished("bob", 8, NOW_START, 3600)])
    return qenv


def _usage(env, user, query="?since=2023-11-01T00:00Z&until=2023-12-01T00:00Z"):
    return env.client.get("/api/usage" + query, headers=jsonh(user))


def test_a_user_sees_their_own_usage_and_quota_only(used):
    r = _usage(used, "alice")
    assert r.status_code == 200
    doc = r.get_json()["usage"]
    assert doc["since"] == "2023-11-01T00:00:00Z" and doc["until"] == "2023-12-01T00:00:00Z"
    (entry,) = doc["users"]
    assert entry["user"] == "alice"
    assert entry["usage"] == {"user": "alice", "instances": 1, "instance_hours": 2.0, "vcpu_hours": 4.0,
                              "memory_gib_hours": 2.0, "running": 0}
    assert entry["quota"] == {"instances": 1, "cpus": None, "memory_mib": None}
    assert entry["in_use"] == {"instances": 0, "cpus": 0, "memory_mib": 0}
    assert "total" not in doc and "bob" not in r.get_data(as_text=True)


def test_a_user_may_not_ask_for_another_users_usage(used):
    r = _usage(used, "alice", "?user=bob")
    assert r.status_code == 403 and "only your own usage" in r.get_json()["message"]
    assert "instance_hours" not in r.get_data(as_text=True)
    (own,) = _usage(used, "bob", "?user=bob&since=2023-11-01T00:00Z&until=2023-12-01T00:00Z").get_json()[
        "usage"]["users"]
    assert own["user"] == "bob" and own["usage"]["instance_hours"] == 1.0


def test_an_admin_sees_everybody_and_a_total(used):
    doc = _usage(used, "root_").get_json()["usage"]
    by_user = {e["user"]: e for e in doc["users"]}
    assert {"alice", "bob", "root_"} <= set(by_user)
    assert by_user["bob"]["usage"]["instance_hours"] == 1.0
    assert doc["total"]["instance_hours"] == 3.0 and doc["total"]["instances"] == 2
    (only,) = _usage(used, "root_", "?user=bob&since=2023-11-01T00:00Z&until=2023-12-01T00:00Z").get_json()[
        "usage"]["users"]
    assert only["user"] == "bob"


def test_usage_counts_what_runs_now_and_its_quota(used):
    running(used)
    doc = used.client.get("/api/usage", headers=jsonh("alice")).get_json()["usage"]
    (entry,) = doc["users"]
    assert entry["in_use"] == {"instances": 1, "cpus": 1, "memory_mib": 512}


def test_usage_in_xml_and_html(used):
    r = used.client.get("/api/usage?since=2023-11-01T00:00Z&until=2023-12-01T00:00Z", headers=xml())
    root = ET.fromstring(r.data)
    assert root.tag == "usage" and [u.get("name") for u in root.findall("user")] == ["alice"]
    user = root.find("user")
    assert user.find("instance_hours").text == "2.0" and user.find("quota").get("instances") == "1"
    assert user.find("quota").get("cpus") == "unlimited"
    page = used.client.get("/api/usage?since=2023-11-01T00:00Z&until=2023-12-01T00:00Z",
                           headers=html()).get_data(as_text=True)
    assert 'id="usage-alice"' in page and "2.00" in page and "usage-bob" not in page
    assert 'href="http://localhost/api/usage"' in page      # in the pages' navigation


@pytest.mark.parametrize("query", ["?since=yesterday", "?since=2023-13-01", "?since=2023-12-01&until=2023-11-01",
                                   "?user=Bob%0A"])
def test_bad_usage_parameters_are_400(used, query):
    r = used.client.get("/api/usage" + query, headers=jsonh("root_"))
    assert r.status_code == 400


def test_usage_needs_a_login_and_is_linked_from_the_entry_point(used):
    assert used.client.get("/api/usage", headers={"Accept": "application/json"}).status_code == 401
    links = {link["rel"]: link["href"] for link in used.client.get("/api", headers=jsonh()).get_json()["api"][
        "links"]}
    assert links["usage"] == "http://localhost/api/usage"
    root = ET.fromstring(used.client.get("/api", headers=xml()).data)
    assert "usage" in [link.get("rel") for link in root.findall("link")]
