"""The product's servers in the sandbox, as installed: the Deltacloud API and the EC2 Query API (gunicorn, HTTPS with
the certificate `condor-cloud api-cert create` makes), run as the account condor-cloud-api; and the accounts and
keys they serve.  Functions of a chroot.Chroot (or Sandbox)."""
import json
import os
import shutil

from errors import SandboxError
from wait import wait_for

CLI = ["condor-cloud"]   # the installed command, as an administrator runs it


def start_api(run, passwords, admins=(), port=3002, timeout=60):
    """Start the API (condor_cloud.master.api.server under gunicorn) in the sandbox as the account condor-cloud-api,
    on 127.0.0.1:port of the sandbox's namespace, with the users of passwords ({name: password}; those in
    admins get the admin role); its PID is recorded, so Sandbox.stop() kills it. Waits until it answers.

    It serves HTTPS, as installed, with the certificate the product's own `condor-cloud api-cert create`
    makes for this host (names: the host's, localhost, 127.0.0.1, ::1). Records state["api"]: "url"
    (https://127.0.0.1:port), "cafile" (a host copy of the certificate, for curl --cacert, urllib, requests),
    "sha256" (its fingerprint) and "spki" (base64 SHA-256 of its public key, for Chromium's
    --ignore-certificate-errors-spki-list); returns the server's PID."""
    if run.run(["getent", "passwd", "condor-cloud-api"], check=False).returncode != 0:
        run.run(["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin",
                 "condor-cloud-api"])
    run.run(["mkdir", "-p", "/etc/condor-cloud", "/var/lib/condor-cloud/keys"])
    run.run(["chown", "condor-cloud-api:condor-cloud-api", "/var/lib/condor-cloud/keys"])
    # Every test module of a session shares this sandbox and starts the API: users made by an earlier start
    # get their password set again instead.
    listed = run.run(CLI + ["user", "list", "--json"], check=False)
    existing = [u["name"] for u in json.loads(listed.stdout)] if listed.returncode == 0 else []
    for name, password in passwords.items():
        if name in existing:
            run.run(CLI + ["user", "passwd", name, "--password-stdin"], input=password + "\n")
            continue
        run.run(CLI + ["user", "add", name, "--password-stdin"] + (["--admin"] if name in admins else []),
                input=password + "\n")
    run.run(["chgrp", "condor-cloud-api", "/etc/condor-cloud/users"])
    # What the unit's ExecStartPre runs (kept if an earlier start_api made it).
    cert = json.loads(run.run(CLI + ["api-cert", "create", "--if-missing", "--json"]).stdout)
    cafile = os.path.join(run.rundir, "api.crt")
    shutil.copyfile(run.path(cert["certificate"]), cafile)
    os.chmod(cafile, 0o644)
    p = run.start("condor-cloud-api", ["runuser", "-u", "condor-cloud-api", "--", "python3", "-m",
                                       "condor_cloud.master.api.server"],
                  env={"_CONDOR_CLOUD_API_LISTEN": "127.0.0.1:%d" % port})
    probe = ("import ssl, urllib.request as u; u.urlopen('https://127.0.0.1:%d/api', timeout=5, "
             "context=ssl.create_default_context(cafile=%r))" % (port, cert["certificate"]))
    wait_for("the API on port %d" % port, lambda: p.poll() is not None or run.run(
        ["python3", "-c", probe], check=False).returncode == 0, timeout, interval=0.3)
    if p.poll() is not None:
        raise SandboxError("the API exited (%s):\n%s" % (p.returncode, run.out_tail("condor-cloud-api")))
    run.state["api"] = {"url": "https://127.0.0.1:%d" % port, "cafile": cafile,
                        "sha256": cert["sha256_fingerprint"], "spki": cert["public_key_pin"][len("sha256//"):]}
    run.save()
    return p.pid


def start_ec2(run, port=8773, timeout=60):
    """Start the EC2 Query API (condor_cloud.master.ec2.server under gunicorn) as condor-cloud-api on 127.0.0.1:port,
    serving HTTPS with the certificate start_api made (call start_api first: users, certificate); its PID is
    recorded, so Sandbox.stop() kills it. Records state["ec2"] = {"url", "cafile"}; returns the server's PID.
    Access keys: ec2_access_key(user)."""
    if "api" not in run.state:
        raise SandboxError("start_api first: the EC2 API uses its users and its certificate")
    run.run(["install", "-d", "-m", "0750", "-o", "condor-cloud-api", "-g", "condor-cloud-api",
             "/var/lib/condor-cloud/ec2"])
    p = run.start("condor-cloud-ec2", ["runuser", "-u", "condor-cloud-api", "--", "python3", "-m",
                                       "condor_cloud.master.ec2.server"],
                  env={"_CONDOR_CLOUD_EC2_LISTEN": "127.0.0.1:%d" % port})
    # An unsigned request answers 401 (AuthFailure) once the server is up.
    probe = ("import ssl, urllib.request as u, urllib.error as e\ntry:\n u.urlopen('https://127.0.0.1:%d/', "
             "timeout=5, context=ssl.create_default_context(cafile='/etc/condor-cloud/tls/api.crt'))\n"
             "except e.HTTPError as x:\n raise SystemExit(0 if x.code == 401 else 1)\nraise SystemExit(1)" % port)
    wait_for("the EC2 API on port %d" % port, lambda: p.poll() is not None or run.run(
        ["python3", "-c", probe], check=False).returncode == 0, timeout, interval=0.3)
    if p.poll() is not None:
        raise SandboxError("the EC2 API exited (%s):\n%s" % (p.returncode, run.out_tail("condor-cloud-ec2")))
    run.state["ec2"] = {"url": "https://127.0.0.1:%d" % port, "cafile": run.state["api"]["cafile"]}
    run.save()
    return p.pid


def stop(run, key):
    """SIGTERM to the server started under key ("condor-cloud-api", "condor-cloud-ec2"), by its recorded PID; a
    server already gone is fine (the sandbox's teardown kills whatever is left in its root)."""
    pid = run.state["pids"].get(key)
    if pid:
        try:
            os.kill(pid, 15)
        except ProcessLookupError:
            pass


def ec2_access_key(run, user):
    """A new EC2 access key of user, made with `condor-cloud user access-key create`: {"id", "secret", ...}."""
    return json.loads(run.run(CLI + ["user", "access-key", "create", user, "--json"]).stdout)
