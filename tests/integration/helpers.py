"""Helpers shared by the integration tests: reading a guest's console on its node, waiting for a condition with
the pool's logs on timeout, and talking to the API from inside a sandbox's network namespace."""

import base64
import ctypes
import glob
import json
import os
import threading
import time
import urllib.error
import urllib.request

CONSOLES = "/var/log/condor-cloud/consoles"
BOOTED = "CONDOR-CLOUD-GUEST-BOOTED"
PORT = 3002
BASE = "http://127.0.0.1:%d" % PORT
PASSWORDS = {"alice": "alice-api-password", "bob": "bob-api-password", "ops": "ops-api-password"}
CLONE_NEWNET = 0x40000000


def console(sb, cluster, proc=0):
    """The serial console log(s) of a job's instance on its node (CLOUD_CONSOLE_DIR; they outlive the instance)."""
    text = ""
    for path in sorted(glob.glob(sb.path("%s/%d.%d-*.log" % (CONSOLES, cluster, proc)))):
        with open(path, errors="replace") as f:
            text += f.read()
    return text


def wait_for(what, predicate, timeout, sb=None, cluster=None, interval=0.5):
    """predicate()'s first true value within timeout seconds; else AssertionError with the job's hold reason and
    the StarterLogs."""
    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    detail = ""
    if sb is not None:
        detail = "\nHoldReason=%s\n%s" % (sb.hold_reason(cluster) if cluster else "", sb.starter_log())
    raise AssertionError("timed out after %ss waiting for %s%s" % (timeout, what, detail))


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


def http(sb, method, path, user=None, data=None, accept="application/json", password=None):
    """(status, headers, body bytes) of one request made from inside the namespace with urllib."""
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
        req = urllib.request.Request(BASE + path, data=body, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    return in_netns(sb, call)


def wait_state(sb, user, instance_id, states, timeout=240):
    """Poll the API until the instance's state is one of states ('gone' = 404); return it."""
    end = time.time() + timeout
    last = None
    while time.time() < end:
        status, _, body = http(sb, "GET", "/api/instances/" + instance_id, user)
        if status == 404:
            last = "gone"
        else:
            assert status == 200, body
            last = json.loads(body)["instance"]["state"]
        if last in states:
            return last
        time.sleep(2)
    raise AssertionError("instance %s is %s, not %s, after %ss\n%s" % (instance_id, last, states, timeout,
                                                                       sb.starter_log()))


def start_api(sb):
    """Start the API in the sandbox (as condor-cloud-api, PID recorded so stop() kills it) with the users of
    PASSWORDS (ops is an admin); wait until it answers."""
    if sb.run(["getent", "passwd", "condor-cloud-api"], check=False).returncode != 0:
        sb.run(["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin",
                "condor-cloud-api"])
    sb.run(["mkdir", "-p", "/etc/condor-cloud", "/var/lib/condor-cloud/keys"])
    sb.run(["chown", "condor-cloud-api:condor-cloud-api", "/var/lib/condor-cloud/keys"])
    for name, password in PASSWORDS.items():
        args = ["python3", "-m", "condor_cloud.cli", "user", "add", name, "--password-stdin"]
        if name == "ops":
            args.append("--admin")
        sb.run(args, input=password + "\n")
    sb.run(["chgrp", "condor-cloud-api", "/etc/condor-cloud/users"])
    sb._start("condor-cloud-api", ["runuser", "-u", "condor-cloud-api", "--", "python3", "-m",
                                   "condor_cloud.api.server"],
              env={"_CONDOR_CLOUD_API_LISTEN": "127.0.0.1:%d" % PORT})
    end = time.time() + 60
    while time.time() < end:
        try:
            if http(sb, "GET", "/api")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError("the API did not start:\n" + open(os.path.join(sb.rundir, "condor-cloud-api.out")).read())


def stop_api(sb):
    pid = sb.state["pids"].get("condor-cloud-api")
    if pid:
        try:
            os.kill(pid, 15)
        except ProcessLookupError:
            pass
