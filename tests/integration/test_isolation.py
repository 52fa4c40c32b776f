"""Tenant isolation on the real pool (issue 11): alice launches through the API with user data and an SSH key;
bob, another user of the same schedd, tries what the review found:
- a by-hand job that names alice's instance (CloudInstanceId) or claims her (CloudOwner): the schedd refuses it
  with a reason; a condor_qedit of CloudOwner on his own job is refused too;
- his job that cannot start (missing image) is held, and its exit hook runs on the node: alice's instance keeps
  running with its overlay intact;
- `condor_q -l` of alice's job shows bob neither her user data nor her key (they travel as spooled input files),
  while her guest really gets them (the `dhcp` test image prints its seed to its console and keeps running).

Needs root, the sandbox and the `dhcp` test image (tests/integration/conftest.py)."""

import base64
import glob
import json
import os
import time

import pytest

from helpers import http, start_api, stop_api, wait_state
from public_keys import ED25519
from wait import wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox needs root")

KEY = ED25519
SECRET = b"#cloud-config\n# alice-secret-token-7f3a9c\n"


@pytest.fixture(scope="module")
def pool(sandbox, test_images):
    sandbox.put_image("live.qcow2", test_images["dhcp"])
    start_api(sandbox)
    yield sandbox
    stop_api(sandbox)


@pytest.fixture(scope="module")
def alices(pool):
    """alice's instance, launched through the API with user data and a key; running when the tests start."""
    status, _, body = http(pool, "POST", "/api/keys", "alice", data={"name": "isolation-laptop", "public_key": KEY})
    assert status in (201, 200), body
    images = json.loads(http(pool, "GET", "/api/images", "alice")[2])["images"]
    (image,) = [i for i in images if i["name"] == "live.qcow2"]
    status, _, body = http(pool, "POST", "/api/instances", "alice",
                           data={"image_id": image["id"], "name": "victim", "keyname": "isolation-laptop",
                                 "user_data": base64.b64encode(SECRET).decode()})
    assert status == 201, body
    inst = json.loads(body)["instance"]
    inst["cluster"] = int(inst["id"].split("_")[-2].split(".")[0])
    assert wait_state(pool, "alice", inst["id"], ("RUNNING",)) == "RUNNING"
    found = wait_for("alice's instance directory on the node",
                     lambda: glob.glob(pool.path("/var/lib/condor-cloud/instances/%d.0-*" % inst["cluster"])),
                     240, explain=lambda: pool.diagnose(inst["cluster"]))
    inst["node_dir"] = found[0]
    inst["instance_id"] = os.path.basename(found[0])
    yield inst
    assert http(pool, "DELETE", "/api/instances/" + inst["id"], "alice")[0] == 204
    http(pool, "DELETE", "/api/keys/isolation-laptop", "alice")
    wait_state(pool, "alice", inst["id"], ("gone",), timeout=180)


def refused(pool, user, lines):
    text = ("universe = vm\nvm_type = kvm\nexecutable = probe\nvm_memory = 256\nvm_disk = missing.qcow2:vda:w\n"
            "vm_no_output_vm = true\n%s\nqueue\n" % "\n".join(lines))
    p = pool.run(["condor_submit", "-terse"], user=user, input=text, check=False)
    return p.returncode != 0, p.stdout + p.stderr


def test_the_schedd_refuses_our_namespace_from_users(pool, alices):
    for line in ('+CloudInstanceId = "%s"' % alices["instance_id"], '+CloudOwner = "alice"',
                 '+ChirpCloudAddresses = "192.0.2.66"', '+CloudUserData = "I2Nsb3VkLWNvbmZpZwo="'):
        was_refused, output = refused(pool, "bob", [line])
        assert was_refused, "accepted: %s\n%s" % (line, output)
        assert "Condor Cloud sets Cloud* and ChirpCloud* job attributes itself" in output, output
    assert "alice" not in json.dumps([i["owner"] for i in
                                      json.loads(http(pool, "GET", "/api/instances", "bob")[2])["instances"]])


def test_a_held_job_of_another_user_leaves_the_instance_running(pool, alices):
    overlay = os.path.join(alices["node_dir"], "vda.qcow2")
    cluster = pool.submit("universe = vm\nvm_type = kvm\nexecutable = probe\nvm_memory = 256\n"
                          "vm_disk = missing.qcow2:vda:w\nvm_no_output_vm = true\nqueue\n", user="bob")
    pool.wait_job(cluster, ("held",), timeout=180)
    assert "missing.qcow2" in pool.hold_reason(cluster)
    # bob cannot claim it afterwards either
    p = pool.run(["condor_qedit", str(cluster), "CloudOwner", '"alice"'], user="bob", check=False)
    assert p.returncode != 0, p.stdout + p.stderr
    assert pool.run(["condor_q", str(cluster), "-af", "CloudOwner"]).stdout.strip() == "undefined"
    time.sleep(3)  # the held job's exit hook has run on the node by now
    assert os.path.exists(overlay) and os.path.exists(os.path.join(alices["node_dir"], "instance.json"))
    pool.run(["condor_rm", str(cluster)], user="bob")


def test_other_users_cannot_read_user_data_or_keys(pool, alices):
    for user in ("bob", "alice"):
        shown = pool.run(["condor_q", "-l", str(alices["cluster"])], user=user).stdout
        assert "Owner" in shown  # the ad is there ...
        assert "alice-secret-token" not in shown and base64.b64encode(SECRET).decode() not in shown
        assert KEY.split()[1] not in shown  # ... but not the secrets
    # and yet the guest got them: it prints its seed to its console
    log = pool.path("/var/log/condor-cloud/consoles/%s.log" % alices["instance_id"])
    seen = wait_for("the guest's seed on its console",
                    lambda: "CONDOR-CLOUD-SEED-META-DATA-END" in open(log, errors="replace").read()
                    and open(log, errors="replace").read(), 240, explain=lambda: pool.diagnose(alices["cluster"]))
    assert "alice-secret-token-7f3a9c" in seen, seen
    assert KEY.split()[1] in seen, seen
    assert http(pool, "GET", "/api/instances/" + alices["id"], "bob")[0] == 404
    assert wait_state(pool, "alice", alices["id"], ("RUNNING",), timeout=5) == "RUNNING"
