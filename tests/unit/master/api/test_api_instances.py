"""Instances: create (the exact submit description), list with one query, show, destroy, ownership, validation,
backend errors."""

import base64
import os
import xml.etree.ElementTree as ET

import pytest

from support import DEMO_ID, ED25519, html, image_id, jsonh, xml


def launch(env, user="alice", **data):
    data.setdefault("image_id", DEMO_ID)
    return env.client.post("/api/instances", data=data, headers=jsonh(user))


def test_create_submits_the_by_hand_job(env):
    r = launch(env, hwp_id="medium", name="web1")
    assert r.status_code == 201
    inst = r.get_json()["instance"]
    assert r.headers["Location"] == inst["href"] == "http://localhost/api/instances/" + inst["id"]
    assert inst["id"] == "master.example.org_42.0_1700000000"
    assert inst["state"] == "PENDING" and inst["owner"] == "alice" and inst["name"] == "web1"
    assert inst["image"] == {"href": "http://localhost/api/images/" + DEMO_ID, "id": DEMO_ID, "rel": "image"}
    assert inst["hardware_profile"]["id"] == "medium"
    assert inst["hardware_profile"]["properties"] == {"memory": "1024", "cpu": "2"}
    assert inst["actions"] == [{"href": inst["href"], "rel": "destroy", "method": "delete"}]
    assert inst["public_addresses"] == [] and inst["private_addresses"] == []
    assert inst["create_time"] == "2023-11-14T22:13:20Z"
    (sub,) = env.schedd.submitted
    assert sub == {
        "universe": "vm", "vm_type": "kvm", "vm_memory": "1024", "vm_vcpus": "2", "request_cpus": "2",
        "vm_disk": "demo.qcow2:vda:w", "vm_no_output_vm": "true", "executable": "web1",
        "MY.CloudOwner": '"alice"', "MY.CloudProfile": '"medium"', "MY.CloudName": '"web1"'}
    assert env.schedd.spooled == []  # nothing to send: no user data, no key


def test_create_defaults_small_and_a_name(env):
    inst = launch(env).get_json()["instance"]
    assert inst["hardware_profile"]["id"] == "small"
    assert inst["name"].startswith("i-")
    assert env.schedd.submitted[0]["vm_memory"] == "512"


def test_create_xml_and_matrix_param(env):
    r = env.client.post("/api/instances;image_id=" + DEMO_ID, headers=xml())
    assert r.status_code == 201
    root = ET.fromstring(r.data)
    assert root.tag == "instance" and root.find("state").text == "PENDING"
    assert root.find("owner_id").text == "alice"
    assert root.find("image").get("id") == DEMO_ID
    assert root.find("realm").get("id") == "default"
    assert root.find("actions/link").attrib["rel"] == "destroy"
    assert root.find("public_addresses").findall("address") == []


def test_create_params_in_query_string(env):
    # The PyPI deltacloud client sends POST parameters in the query string.
    r = env.client.post("/api/instances?image_id=%s&hwp_id=large" % DEMO_ID, headers=jsonh())
    assert r.status_code == 201 and r.get_json()["instance"]["hardware_profile"]["id"] == "large"


def test_user_data_and_key_travel_as_private_spooled_files_not_attributes(env):
    env.keys.add("alice", "laptop", ED25519)
    data = base64.b64encode(b"#cloud-config\nhostname: web1\n").decode()
    r = launch(env, user_data=data, keyname="laptop")
    assert r.status_code == 201
    sub = env.schedd.submitted[0]
    # any schedd user can read any job's attributes (condor_q -l): the secrets must not be among them
    assert not [k for k, v in sub.items() if data in str(v) or "AAAA" in str(v)]
    assert sub["MY.CloudKeyName"] == '"laptop"'
    assert sub["<spool>"] and sub["should_transfer_files"] == "YES" and sub["leave_in_queue"] == "false"
    assert sub["transfer_input_files"] == "ssh-authorized-keys,user-data"
    [spooled] = env.schedd.spooled
    assert spooled["files"] == {"user-data": b"#cloud-config\nhostname: web1\n",
                                "ssh-authorized-keys": (ED25519 + "\n").encode()}
    assert set(spooled["modes"].values()) == {0o600} and spooled["dir_mode"] == 0o700
    assert not os.path.exists(sub["initialdir"])  # the API keeps no copy once the schedd has it
    assert r.get_json()["instance"]["authentication"] == {"keyname": "laptop"}
    shown = ET.fromstring(env.client.get(r.headers["Location"], headers=xml()).data)
    assert shown.find("authentication").get("type") == "key"
    assert shown.find("authentication/login/keyname").text == "laptop"


@pytest.mark.parametrize("data,fragment", [
    ({"image_id": ""}, "image_id is required"),
    ({"image_id": "0" * 40}, "no image"),
    ({"hwp_id": "huge"}, "no hardware profile"),
    ({"realm_id": "us-east-1"}, "no realm"),
    ({"name": 'x" + 1 + "'}, "instance name"),
    ({"name": "$(Owner)"}, "instance name"),
    ({"name": "a\nqueue 100"}, "instance name"),
    ({"name": "n" * 64}, "instance name"),
    ({"user_data": "not base64!"}, "base64"),
    ({"user_data": base64.b64encode(b"x" * 1025).decode()}, "larger than 1024"),
    ({"keyname": "nokey"}, "no key"),
    ({"keyname": "../../etc/passwd"}, "key name"),
])
def test_create_bad_input_is_400(env, data, fragment):
    r = launch(env, **data)
    assert r.status_code == 400, r.data
    assert fragment in r.get_json()["message"]
    assert env.schedd.submitted == []


def test_create_without_image_id_xml_400(env):
    r = env.client.post("/api/instances", headers=xml())
    assert r.status_code == 400 and ET.fromstring(r.data).find("code").text == "400"


def test_bob_cannot_use_alices_key(env):
    env.keys.add("alice", "laptop", ED25519)
    assert launch(env, user="bob", keyname="laptop").status_code == 400


def test_list_uses_one_query_with_projection(env):
    for _ in range(3):
        launch(env)
    env.schedd.queries.clear()
    r = env.client.get("/api/instances", headers=jsonh())
    assert len(r.get_json()["instances"]) == 3
    assert len(env.schedd.queries) == 1
    constraint, projection = env.schedd.queries[0]
    assert constraint == ('JobUniverse == 13 && ((Owner == "condor-cloud-api" && CloudOwner == "alice") || '
                          '(Owner == "alice" && Owner != "condor-cloud-api"))')
    assert "GlobalJobId" in projection and "JobStatus" in projection


def test_states_follow_job_status(env):
    inst = launch(env).get_json()["instance"]
    cluster = 42
    for status, state in [(1, "PENDING"), (5, "PENDING"), (2, "RUNNING"), (3, "STOPPED"), (4, "STOPPED")]:
        env.schedd.set_status(cluster, status)
        got = env.client.get("/api/instances/" + inst["id"], headers=jsonh()).get_json()["instance"]
        assert got["state"] == state
        assert bool(got["actions"]) == (state != "STOPPED")
    env.schedd.set_status(cluster, 2)
    running = env.client.get("/api/instances?state=RUNNING", headers=jsonh()).get_json()["instances"]
    assert [i["id"] for i in running] == [inst["id"]]
    assert env.client.get("/api/instances?state=PENDING", headers=jsonh()).get_json()["instances"] == []


def test_addresses_when_known(env):
    inst = launch(env).get_json()["instance"]
    env.schedd.jobs[0]["ChirpCloudAddresses"] = "192.0.2.10,not-an-ip"
    got = env.client.get("/api/instances/" + inst["id"], headers=jsonh()).get_json()["instance"]
    assert got["public_addresses"] == [{"address": "192.0.2.10", "type": "ipv4"}]
    root = ET.fromstring(env.client.get("/api/instances/" + inst["id"], headers=xml()).data)
    assert [(a.get("type"), a.text) for a in root.find("public_addresses")] == [("ipv4", "192.0.2.10")]


def test_users_see_only_their_own_admin_sees_all(env):
    a = launch(env, user="alice").get_json()["instance"]
    b = launch(env, user="bob").get_json()["instance"]
    ids = lambda user: [i["id"] for i in env.client.get("/api/instances", headers=jsonh(user)).get_json()["instances"]]
    assert ids("alice") == [a["id"]]
    assert ids("bob") == [b["id"]]
    assert ids("root_") == [a["id"], b["id"]]
    assert env.client.get("/api/instances/" + a["id"], headers=jsonh("bob")).status_code == 404
    assert env.client.delete("/api/instances/" + a["id"], headers=jsonh("bob")).status_code == 404
    assert env.client.post("/api/instances/%s/destroy" % a["id"], headers=jsonh("bob")).status_code == 403
    assert env.schedd.acts == []
    assert env.client.get("/api/instances/" + a["id"], headers=jsonh("root_")).status_code == 200


def test_destroy(env):
    inst = launch(env).get_json()["instance"]
    r = env.client.delete("/api/instances/" + inst["id"], headers=jsonh())
    assert r.status_code == 204 and r.data == b""
    (act,) = env.schedd.acts
    import htcondor2

    assert act[0] == htcondor2.JobAction.Remove and act[1] == "42.0" and "alice" in act[2]
    # Removed but still in the queue: STOPPED, no actions, destroying again is 405.
    again = env.client.delete("/api/instances/" + inst["id"], headers=jsonh())
    assert again.status_code == 409


def test_admin_destroys_anyones(env):
    inst = launch(env, user="bob").get_json()["instance"]
    assert env.client.delete("/api/instances/" + inst["id"], headers=jsonh("root_")).status_code == 204


def test_destroy_by_post_forms(env):
    first = launch(env).get_json()["instance"]
    second = launch(env).get_json()["instance"]
    r = env.client.post("/api/instances/%s/destroy" % first["id"], headers=html())
    assert r.status_code == 303 and r.headers["Location"].endswith("/api/instances")
    r = env.client.post("/api/instances/" + second["id"], data={"_method": "delete"}, headers=jsonh())
    assert r.status_code == 204
    assert [a[1] for a in env.schedd.acts] == ["42.0", "43.0"]


def test_unknown_instance(env):
    assert env.client.get("/api/instances/nonsense", headers=xml()).status_code == 404
    assert env.client.get("/api/instances/master_9.0_1", headers=xml()).status_code == 404
    assert env.client.delete("/api/instances/master_9.0_1", headers=xml()).status_code == 404
    assert env.client.post("/api/instances/master_9.0_1/stop", headers=xml()).status_code == 403


def test_unsupported_actions_412(env):
    inst = launch(env).get_json()["instance"]
    for action in ("start", "stop", "reboot"):
        r = env.client.post("/api/instances/%s/%s" % (inst["id"], action), headers=xml())
        assert r.status_code == 412
        assert ET.fromstring(r.data).find("code").text == "412"
    assert env.client.post("/api/instances/%s/fly" % inst["id"], headers=xml()).status_code == 404


def test_schedd_down_is_502(env):
    env.schedd.down = True
    r = env.client.get("/api/instances", headers=xml())
    assert r.status_code == 502
    err = ET.fromstring(r.data)
    assert err.find("code").text == "502" and "schedd" in err.find("message").text
    assert launch(env).status_code == 502


@pytest.mark.parametrize("error", ["HTCondorException", "RuntimeError", "OSError"])
def test_schedd_not_located_is_502(env, error):
    """HTCondor 24+ raises htcondor2.HTCondorException; 23.x (Fedora 42's 23.9.6) raises RuntimeError, or IOError
    (OSError) when a query or connection fails."""
    import builtins

    import htcondor2

    cls = getattr(htcondor2, error, None) or getattr(builtins, error)
    env.factory.side_effect = cls("Unable to locate local daemon")
    assert env.client.get("/api/instances", headers=jsonh()).status_code == 502


def test_hand_submitted_vm_job_visible_to_admin_only(env):
    import classad2

    env.schedd.jobs.append(classad2.ClassAd({
        "ClusterId": 7, "ProcId": 0, "JobUniverse": 13, "JobStatus": 2, "Owner": "carol",
        "GlobalJobId": "master.example.org#7.0#1690000000", "VMPARAM_vm_Disk": "other.img:vda:w", "Cmd": "mine",
        "JobVMMemory": 256}))
    assert env.client.get("/api/instances", headers=jsonh()).get_json()["instances"] == []
    (inst,) = env.client.get("/api/instances", headers=jsonh("root_")).get_json()["instances"]
    assert inst["owner"] == "carol" and inst["state"] == "RUNNING" and inst["name"] == "mine"
    assert inst["image"]["id"] == image_id("other.img")


def test_console_of_a_running_instance_is_clean_plain_text(env, mocker):
    inst = launch(env).get_json()["instance"]
    tail = mocker.patch("condor_cloud.master.console.tail", return_value="\x1b[1mBooting\x1b[0m\r\n<script>x</script>\n")
    assert env.client.get("/api/instances/%s/console" % inst["id"], headers=jsonh()).status_code == 409
    assert tail.call_count == 0                                        # PENDING: not read
    env.schedd.set_status(42, 2)
    r = env.client.get("/api/instances/%s/console?bytes=2048" % inst["id"], headers=html())
    assert r.status_code == 200 and r.data == b"Booting\n<script>x</script>\n"
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert r.headers["X-Content-Type-Options"] == "nosniff" and "sandbox" in r.headers["Content-Security-Policy"]
    tail.assert_called_once_with(42, 0, 2048, timeout=5)
    page = env.client.get("/api/instances/" + inst["id"], headers=html()).data.decode()
    assert 'href="http://localhost/api/instances/%s/console"' % inst["id"] in page


def test_console_is_for_the_owner_only_and_reports_condor_tail_errors(env, mocker):
    from condor_cloud.core.errors import CloudError

    inst = launch(env).get_json()["instance"]
    env.schedd.set_status(42, 2)
    tail = mocker.patch("condor_cloud.master.console.tail", side_effect=CloudError("cannot read the console of job "
                                                                              "42.0: 'Job not running'"))
    assert env.client.get("/api/instances/%s/console" % inst["id"], headers=jsonh("bob")).status_code == 404
    assert env.client.get("/api/instances/%s/console" % inst["id"]).status_code == 401
    assert tail.call_count == 0
    for bad in ("0", "x", str((1 << 20) + 1)):
        assert env.client.get("/api/instances/%s/console?bytes=%s" % (inst["id"], bad),
                              headers=jsonh()).status_code == 400
    r = env.client.get("/api/instances/%s/console" % inst["id"], headers=jsonh())
    assert r.status_code == 502 and "Job not running" in r.get_json()["message"]


def test_state_errors_are_409_conflict(env, mocker):
    from condor_cloud.master.jobs import InstanceStateError

    inst = launch(env).get_json()["instance"]
    mocker.patch.object(env.jobs, "remove", side_effect=InstanceStateError("instance x is already being destroyed"))
    for r in (env.client.delete("/api/instances/" + inst["id"], headers=jsonh()),
              env.client.post("/api/instances/%s/destroy" % inst["id"], headers=xml()),
              env.client.post("/api/instances/" + inst["id"], data={"_method": "delete"}, headers=jsonh())):
        assert r.status_code == 409, r.data
    r = env.client.delete("/api/instances/" + inst["id"], headers=xml())
    assert ET.fromstring(r.data).find("code").text == "409" and "already being destroyed" in r.data.decode()


def test_console_answers_text_plain_and_never_waits_long_for_a_busy_node(env, mocker):
    """Issue 13: Accept: text/plain got 406, and a read while the starter slept held a server worker for 48 s."""
    from condor_cloud.core import errors
    from condor_cloud.core.errors import CloudError

    inst = launch(env).get_json()["instance"]
    env.schedd.set_status(42, 2)
    tail = mocker.patch("condor_cloud.master.console.tail", return_value="login: ")
    r = env.client.get("/api/instances/%s/console" % inst["id"], headers=dict(jsonh(), Accept="text/plain"))
    assert r.status_code == 200 and r.data == b"login: "
    assert tail.call_args.kwargs["timeout"] <= 5  # the worker is free again within seconds
    tail.side_effect = CloudError("condor_tail did not answer within 5 s", errors.TIMEOUT)
    r = env.client.get("/api/instances/%s/console" % inst["id"], headers=dict(jsonh(), Accept="text/plain"))
    assert r.status_code == 503 and r.headers["Retry-After"] == "5"
    assert b"try again in 5 s" in r.data
