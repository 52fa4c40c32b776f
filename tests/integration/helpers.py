"""Helpers shared by the integration tests: reading a guest's console on its node and talking to the API from inside
a sandbox's network namespace.  Waiting is tests/sandbox/wait.py's wait_for (with explain=lambda: sb.diagnose(cluster)
for the job's hold reason and the StarterLogs).

The API serves HTTPS (as installed) with the self-signed certificate Sandbox.start_api made with
`condor-cloud api-cert create`. Clients trust exactly that certificate: urllib through ssl_context(sb), requests
(and the PyPI deltacloud client) through REQUESTS_CA_BUNDLE=ca_file(sb), Chromium through chromium_tls_flags(sb)
(it then accepts that key only, for BASE)."""

import base64
import ctypes
import glob
import hashlib
import json
import os
import re
import ssl
import threading
import urllib.error
import urllib.request

from errors import WaitTimeout
from wait import wait_for

CONSOLES = "/var/log/condor-cloud/consoles"
STORE = "/var/lib/condor-cloud/shared_images"
CACHE = "/var/lib/condor-cloud/local_cache"
INSTANCES = "/var/lib/condor-cloud/instances"
BOOTED = "CONDOR-CLOUD-GUEST-BOOTED"
PORT = 3002
BASE = "https://127.0.0.1:%d" % PORT     # the certificate names 127.0.0.1 (and localhost, the host's names)
PASSWORDS = {"alice": "alice-api-password", "bob": "bob-api-password", "ops": "ops-api-password"}
CLONE_NEWNET = 0x40000000


def by_hand(disk, count=1, extra=()):
    """The by-hand submit description of docs/SUBMIT.txt for image disk, with extra submit lines."""
    return ("universe = vm\nvm_type = kvm\nexecutable = my-instance\nvm_memory = 256\nvm_disk = %s:vda:w\n"
            "vm_no_output_vm = true\n%squeue %d\n" % (disk, "".join(line + "\n" for line in extra), count))


def submit(sb, disk, count=1, user="alice"):
    """Submit the by-hand description of disk (count instances) as user; returns the cluster."""
    return sb.submit(by_hand(disk, count), user=user)


def remove_and_wait(sb, cluster):
    """condor_rm the cluster as alice and wait until it is removed."""
    sb.run(["condor_rm", str(cluster)], user="alice")
    sb.wait_job(cluster, ("removed",), timeout=120)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cache_entries(sb, image=None):
    """The node's cached bases (of image, or all), by entry name."""
    names = [n for n in os.listdir(sb.path(CACHE)) if "@" in n and not n.startswith(".")]
    return sorted(n for n in names if image is None or n.startswith(image + "@"))


def instance_dirs(sb, cluster=None):
    """The node's instance directories (of one job cluster, or all)."""
    names = [n for n in os.listdir(sb.path(INSTANCES)) if re.match(r"\d+\.\d+-[0-9a-f]{8}$", n)]
    return sorted(n for n in names if cluster is None or n.startswith("%d." % cluster))


def console(sb, cluster, proc=0):
    """The serial console log(s) of a job's instance on its node (CLOUD_CONSOLE_DIR; they outlive the instance)."""
    text = ""
    for path in sorted(glob.glob(sb.path("%s/%d.%d-*.log" % (CONSOLES, cluster, proc)))):
        with open(path, errors="replace") as f:
            text += f.read()
    return text


def job_attr(sb, jid, attr):
    """A job attribute as condor_q prints it, or None while it is undefined."""
    value = sb.run(["condor_q", jid, "-af", attr]).stdout.strip()
    return None if value in ("", "undefined") else value


# -- the API, from inside the sandbox's network namespace -------------------------------------------------------
def in_netns(sb, fn, *args, **kwargs):
    """Run fn in a thread that joined the sandbox's network namespace; return its result (or raise its error)."""
    netns = sb.state.get("netns")
    result = {}

    def body():
        try:
            if netns:
                libc = ctypes.CDLL(None, use_errno=True)
                fd = os.open("/run/netns/" + netns, os.O_RDONLY)
                try:
                    if libc.setns(fd, CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), "setns")
                finally:
                    os.close(fd)
            result["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the caller
            result["error"] = exc

    t = threading.Thread(target=body)
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


def ca_file(sb):
    """Host path of the API's certificate: the one CA its clients trust (curl --cacert, REQUESTS_CA_BUNDLE)."""
    return sb.state["api"]["cafile"]


def ssl_context(sb):
    """An ssl context for urllib that trusts the API's certificate and nothing else."""
    return ssl.create_default_context(cafile=ca_file(sb))


def chromium_tls_flags(sb):
    """Chromium options that make it accept the API's certificate, by its public key's SHA-256 (any other
    certificate still fails; checked with Chromium 156 under chromedriver)."""
    return ["--ignore-certificate-errors-spki-list=" + sb.state["api"]["spki"]]


def http(sb, method, path, user=None, data=None, accept="application/json", password=None, base=BASE,
         context=None):
    """(status, headers, body bytes) of one request made from inside the namespace with urllib, over HTTPS that
    trusts the API's certificate (context: another ssl context)."""
    context = context or ssl_context(sb)

    def call():
        body = None
        headers = {"Accept": accept}
        if user:
            token = "%s:%s" % (user, password or PASSWORDS[user])
            headers["Authorization"] = "Basic " + base64.b64encode(token.encode()).decode()
        if data is not None:
            from urllib.parse import urlencode

            body = urlencode(data).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        req = urllib.request.Request(base + path, data=body, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=60, context=context) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    return in_netns(sb, call)


def api_console(sb, user, instance_id, timeout=90):
    """(status, headers, body) of GET /api/instances/:id/console as a patient client reads it: while the node is
    busy (HTCondor's starter sleeps 30 s after starting a domain) the API answers 503 with Retry-After; wait that
    long and ask again, up to timeout seconds (then the last answer)."""
    try:
        return wait_for("the console of %s (not 503)" % instance_id,
                        lambda: http(sb, "GET", "/api/instances/%s/console" % instance_id, user), timeout,
                        accept=lambda answer: answer[0] != 503,
                        interval=lambda answer: min(10, int(answer[1].get("Retry-After", "5"))))
    except WaitTimeout as still_busy:
        return still_busy.last


def api_state(sb, user, instance_id):
    """The instance's state as the API shows it to user ('gone' = 404)."""
    status, _, body = http(sb, "GET", "/api/instances/" + instance_id, user)
    if status == 404:
        return "gone"
    assert status == 200, body
    return json.loads(body)["instance"]["state"]


def wait_state(sb, user, instance_id, states, timeout=240):
    """Poll the API until the instance's state is one of states ('gone' = 404); return it."""
    return wait_for("instance %s to be %s" % (instance_id, " or ".join(states)),
                    lambda: api_state(sb, user, instance_id), timeout, interval=2, accept=lambda st: st in states,
                    explain=sb.starter_log)


def start_api(sb):
    """The API in the sandbox with the users of PASSWORDS (ops is an admin)."""
    sb.start_api(PASSWORDS, admins=("ops",), port=PORT)


def stop_api(sb):
    sb.stop_service("condor-cloud-api")


# -- the EC2 Query API (tests/integration/test_ec2.py) -----------------------------------------------------------
EC2_PORT = 8773
EC2_URL = "https://127.0.0.1:%d" % EC2_PORT
EC2_REGION = "condor-cloud"


def start_ec2(sb):
    """The EC2 API in the sandbox (after start_api: same users, same certificate); returns {user: access key} of
    alice and bob, made with `condor-cloud user access-key create`."""
    sb.start_ec2(port=EC2_PORT)
    return {user: sb.ec2_access_key(user) for user in ("alice", "bob")}


def stop_ec2(sb):
    sb.stop_service("condor-cloud-ec2")


def ec2_env(sb, key):
    """Environment of an EC2 client (aws-cli, boto3, Ansible) signing with key and trusting the API's certificate."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ACCESS_KEY_ID": key["id"], "AWS_SECRET_ACCESS_KEY": key["secret"],
                "AWS_DEFAULT_REGION": EC2_REGION, "AWS_REGION": EC2_REGION, "AWS_CA_BUNDLE": ca_file(sb),
                "AWS_ENDPOINT_URL": EC2_URL, "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
                "AWS_EC2_METADATA_DISABLED": "true"})
    return env


def run_in_netns(sb, argv, env=None, timeout=600, input=None):
    """A host program (e.g. the venv's aws or ansible-playbook) run inside the sandbox's network namespace."""
    import subprocess

    prefix = ["nsenter", "--net=/run/netns/" + sb.state["netns"]] if sb.state.get("netns") else []
    return subprocess.run(prefix + list(argv), env=env, input=input, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout)


def ec2_client(sb, key):
    """A boto3 EC2 client of key for the sandbox's EC2 API; call it only inside in_netns(sb, ...)."""
    import boto3
    from botocore.config import Config

    return boto3.client("ec2", region_name=EC2_REGION, endpoint_url=EC2_URL, verify=ca_file(sb),
                        aws_access_key_id=key["id"], aws_secret_access_key=key["secret"],
                        config=Config(retries={"max_attempts": 2, "mode": "standard"}))
