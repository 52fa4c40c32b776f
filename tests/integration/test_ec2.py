"""The EC2 Query API against the real pool (tests/sandbox), with the real clients: the aws CLI, boto3 (waiters
instance_running and instance_terminated, a paginator) and Ansible's amazon.aws (ec2_key import, ec2_instance
launch with user data, ec2_instance_info, terminate). Each client launches one instance of the `sleep` test image
that really boots (its console, read back through GetConsoleOutput, says CONDOR-CLOUD-GUEST-BOOTED) and terminates
it; two users cannot see or terminate each other's instances or keys; a wrong secret and an old date are refused.

The API runs chrooted in the sandbox as condor-cloud-api, over HTTPS with the certificate start_api made; every
client runs on the host inside the sandbox's network namespace (nsenter, or a thread that joined it), trusting
exactly that certificate. Needs root, the sandbox, and the venv's awscli, boto3, ansible-core and amazon.aws
(tests/setup-host); each client's test skips with a reason when its tool is missing.
"""

import base64
import datetime
import json
import os
import sys
import urllib.error
import urllib.request

import pytest

from helpers import (BOOTED, EC2_REGION, EC2_URL, ec2_client, ec2_env, in_netns, run_in_netns, ssl_context, start_api,
                     start_ec2, stop_api, stop_ec2)
from wait import wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox needs root")
BIN = os.path.dirname(sys.executable)
BOOT_TIMEOUT = 300


@pytest.fixture(scope="module")
def pool(sandbox, test_images):
    """The session's pool with the Deltacloud API (users, certificate) and the EC2 API; keys of alice and bob."""
    sandbox.put_image("sleep.qcow2", test_images["sleep"])
    start_api(sandbox)
    sandbox.ec2_keys = start_ec2(sandbox)
    yield sandbox
    stop_ec2(sandbox)
    stop_api(sandbox)


@pytest.fixture(scope="module")
def ssh_key(tmp_path_factory):
    """A public key line (ed25519) to import."""
    serialization = pytest.importorskip("cryptography.hazmat.primitives.serialization")
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate().public_key()
    line = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    path = tmp_path_factory.mktemp("ssh") / "id_ed25519.pub"
    path.write_text(line + " tester@host\n")
    return str(path)


def tool(name):
    path = os.path.join(BIN, name)
    if not os.access(path, os.X_OK):
        pytest.skip("%s is not installed in the test venv (tests/setup-host installs it)" % name)
    return path


def boto(pool, user="alice"):
    pytest.importorskip("boto3")
    return ec2_client(pool, pool.ec2_keys[user])


def console_says_booted(pool, instance_id, user="alice"):
    """Poll GetConsoleOutput (the API reads it with condor_tail) until the guest's boot message is there."""
    def poll():
        client = boto(pool, user)
        return wait_for("%s in the console of %s" % (BOOTED, instance_id),
                        lambda: client.get_console_output(InstanceId=instance_id).get("Output", ""), 180, interval=3,
                        accept=lambda text: BOOTED in text)

    return in_netns(pool, poll)


def image_id(pool):
    def find():
        images = boto(pool).describe_images(Filters=[{"Name": "name", "Values": ["sleep.qcow2"]}])["Images"]
        return images[0]["ImageId"]

    return in_netns(pool, find)


# -- refusals (no instance) ----------------------------------------------------------------------------------------
def _signed_get(pool, key, secret=None, when=None):
    from unittest import mock

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    req = AWSRequest(method="GET", url=EC2_URL + "/?Action=DescribeInstances&Version=2016-11-15")
    when = when or datetime.datetime.now(datetime.timezone.utc)
    with mock.patch("botocore.auth.get_current_datetime", return_value=when.replace(tzinfo=None)):
        SigV4Auth(Credentials(key["id"], secret or key["secret"]), "ec2", EC2_REGION).add_auth(req)

    def call():
        r = urllib.request.Request(req.url, headers={k: v.decode() if isinstance(v, bytes) else v
                                                     for k, v in req.headers.items()})
        try:
            with urllib.request.urlopen(r, timeout=30, context=ssl_context(pool)) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    return in_netns(pool, call)


def test_a_wrong_secret_or_an_old_date_is_refused(pool):
    pytest.importorskip("botocore")
    key = pool.ec2_keys["alice"]
    status, body = _signed_get(pool, key)
    assert status == 200, body
    status, body = _signed_get(pool, key, secret="x" * 40)
    assert status == 401 and b"<Code>AuthFailure</Code>" in body
    old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=20)
    status, body = _signed_get(pool, key, when=old)
    assert status == 400 and b"<Code>RequestExpired</Code>" in body
    status, body = _signed_get(pool, {"id": "AKCCAAAAAAAAAAAAAAAA", "secret": "y" * 40})
    assert status == 401


# -- aws CLI --------------------------------------------------------------------------------------------------------
def test_aws_cli_launches_reads_the_console_and_terminates(pool, ssh_key):
    aws = tool("aws")
    env = ec2_env(pool, pool.ec2_keys["alice"])

    def cli(*args, timeout=600):
        p = run_in_netns(pool, [aws, "--endpoint-url", EC2_URL, "--ca-bundle", pool.state["api"]["cafile"],
                                "--output", "json", "ec2"] + list(args), env=env, timeout=timeout)
        assert p.returncode == 0, (args, p.stdout, p.stderr)
        return json.loads(p.stdout) if p.stdout.strip() else None

    ami = cli("describe-images", "--filters", "Name=name,Values=sleep.qcow2")["Images"][0]["ImageId"]
    cli("import-key-pair", "--key-name", "cli-key", "--public-key-material", "fileb://" + ssh_key)
    run = cli("run-instances", "--image-id", ami, "--instance-type", "small", "--key-name", "cli-key",
              "--user-data", "#cloud-config\n", "--tag-specifications",
              "ResourceType=instance,Tags=[{Key=Name,Value=cli-vm}]")
    iid = run["Instances"][0]["InstanceId"]
    cli("wait", "instance-running", "--instance-ids", iid, timeout=BOOT_TIMEOUT)
    found = cli("describe-instances", "--filters", "Name=tag:Name,Values=cli-vm")["Reservations"]
    assert [i["InstanceId"] for r in found for i in r["Instances"]] == [iid]
    assert found[0]["Instances"][0]["KeyName"] == "cli-key"
    console_says_booted(pool, iid)
    out = cli("get-console-output", "--instance-id", iid)
    assert BOOTED in out["Output"]
    assert cli("terminate-instances", "--instance-ids", iid)["TerminatingInstances"][0]["CurrentState"]["Name"] in (
        "shutting-down", "terminated")
    cli("wait", "instance-terminated", "--instance-ids", iid, timeout=BOOT_TIMEOUT)
    cli("delete-key-pair", "--key-name", "cli-key")


# -- boto3 ----------------------------------------------------------------------------------------------------------
def test_boto3_waiters_paginator_and_isolation(pool):
    pytest.importorskip("boto3")
    from botocore.exceptions import ClientError

    ami = image_id(pool)

    def launch():
        client = boto(pool)
        client.import_key_pair(KeyName="boto-key", PublicKeyMaterial=b"ssh-ed25519 " + base64.b64encode(
            b"\0\0\0\x0bssh-ed25519\0\0\0\x20" + bytes(range(32))) + b" boto")
        run = client.run_instances(ImageId=ami, InstanceType="small", MinCount=1, MaxCount=1, KeyName="boto-key",
                                   UserData="#cloud-config\nboto: true\n",
                                   TagSpecifications=[{"ResourceType": "instance",
                                                       "Tags": [{"Key": "Name", "Value": "boto-vm"}]}])
        iid = run["Instances"][0]["InstanceId"]
        client.get_waiter("instance_running").wait(InstanceIds=[iid], WaiterConfig={"Delay": 3, "MaxAttempts": 100})
        return iid

    iid = in_netns(pool, launch)
    console_says_booted(pool, iid)

    def check():
        alice, bob = boto(pool, "alice"), boto(pool, "bob")
        pages = list(alice.get_paginator("describe_instances").paginate(PaginationConfig={"PageSize": 5}))
        assert iid in [i["InstanceId"] for p in pages for r in p["Reservations"] for i in r["Instances"]]
        data = alice.describe_instance_attribute(InstanceId=iid, Attribute="userData")["UserData"]["Value"]
        assert base64.b64decode(data) == b"#cloud-config\nboto: true\n"
        # bob sees none of it and cannot touch it
        assert all(iid != i["InstanceId"] for r in bob.describe_instances()["Reservations"] for i in r["Instances"])
        assert bob.describe_key_pairs()["KeyPairs"] == []
        for fn, kw in ((bob.terminate_instances, {"InstanceIds": [iid]}),
                       (bob.get_console_output, {"InstanceId": iid}),
                       (bob.describe_key_pairs, {"KeyNames": ["boto-key"]})):
            with pytest.raises(ClientError) as exc:
                fn(**kw)
            assert exc.value.response["Error"]["Code"] in ("InvalidInstanceID.NotFound", "InvalidKeyPair.NotFound")
        bob.delete_key_pair(KeyName="boto-key")
        assert alice.describe_key_pairs(KeyNames=["boto-key"])["KeyPairs"]
        assert alice.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["State"]["Name"] == \
            "running"
        alice.terminate_instances(InstanceIds=[iid])
        alice.get_waiter("instance_terminated").wait(InstanceIds=[iid], WaiterConfig={"Delay": 3, "MaxAttempts": 100})
        (inst,) = alice.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"]
        assert inst["State"] == {"Code": 48, "Name": "terminated"}
        alice.delete_key_pair(KeyName="boto-key")

    in_netns(pool, check)


# -- Ansible --------------------------------------------------------------------------------------------------------
PLAYBOOK = """\
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  module_defaults:
    group/aws:
      region: %(region)s
      endpoint_url: %(url)s
      aws_ca_bundle: %(ca)s
  tasks:
    - amazon.aws.ec2_key:
        name: ansible-key
        key_material: "{{ lookup('file', '%(pub)s') }}"
    - amazon.aws.ec2_instance:
        name: ansible-vm
        image_id: %(ami)s
        instance_type: small
        key_name: ansible-key
        user_data: "#cloud-config\\nansible: true\\n"
        state: running
        wait: true
        wait_timeout: %(timeout)d
      register: launched
    - amazon.aws.ec2_instance_info:
        instance_ids: "{{ launched.instance_ids }}"
      register: info
    - copy:
        dest: %(out)s
        content: "{{ {'launched': launched.instance_ids, 'state': info.instances[0].state.name,
                      'tags': info.instances[0].tags, 'key': info.instances[0].key_name} | to_json }}"
    - amazon.aws.ec2_instance:
        name: ansible-vm
        image_id: %(ami)s
        instance_type: small
        state: running
      register: again
    - assert:
        that: ["not again.changed", "again.instance_ids == launched.instance_ids"]
    - name: wait for the console (read by the test) before terminating
      wait_for:
        path: %(booted)s
        timeout: 240
    - amazon.aws.ec2_instance:
        instance_ids: "{{ launched.instance_ids }}"
        state: absent
        wait: true
        wait_timeout: %(timeout)d
"""


def test_ansible_imports_a_key_launches_with_user_data_and_terminates(pool, ssh_key, tmp_path):
    playbook_bin = tool("ansible-playbook")
    pytest.importorskip("boto3")
    site = [p for p in sys.path if p.endswith("site-packages")]
    if not any(os.path.exists(os.path.join(p, "ansible_collections", "amazon", "aws")) for p in site):
        pytest.skip("the amazon.aws collection is not installed in the venv (tests/setup-host installs it)")
    out, booted = tmp_path / "result.json", tmp_path / "booted"
    playbook = tmp_path / "ec2.yml"
    playbook.write_text(PLAYBOOK % {"region": EC2_REGION, "url": EC2_URL, "ca": pool.state["api"]["cafile"],
                                    "pub": ssh_key, "ami": image_id(pool), "timeout": BOOT_TIMEOUT, "out": out,
                                    "booted": booted})
    env = ec2_env(pool, pool.ec2_keys["alice"])
    env.update({"ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
                "ANSIBLE_HOME": str(tmp_path / "ansible"), "ANSIBLE_NOCOLOR": "1"})
    import subprocess
    import threading

    prefix = ["nsenter", "--net=/run/netns/" + pool.state["netns"]] if pool.state.get("netns") else []
    proc = subprocess.Popen(prefix + [playbook_bin, "-i", "localhost,", str(playbook)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    output = []
    reader = threading.Thread(target=lambda: output.extend(proc.stdout))
    reader.start()
    try:
        wait_for("the playbook's result", lambda: out.exists() or proc.poll() is not None, BOOT_TIMEOUT + 120,
                 interval=2, explain=lambda: "".join(output))
        assert out.exists(), "".join(output)
        result = json.loads(out.read_text())
        assert result["state"] == "running" and result["tags"] == {"Name": "ansible-vm"}
        assert result["key"] == "ansible-key"
        (iid,) = result["launched"]
        console_says_booted(pool, iid)

        def user_data():
            value = boto(pool).describe_instance_attribute(InstanceId=iid, Attribute="userData")["UserData"]["Value"]
            return base64.b64decode(value)

        assert in_netns(pool, user_data) == b"#cloud-config\nansible: true\n"
        booted.write_text("yes")
        assert proc.wait(timeout=BOOT_TIMEOUT + 120) == 0, "".join(output)
    finally:
        if proc.poll() is None:
            proc.kill()
        reader.join(timeout=10)

    def final():
        (inst,) = boto(pool).describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"]
        return inst["State"]["Name"]

    assert in_netns(pool, final) == "terminated"
