#!/usr/bin/env python3
"""make demo: a whole single-host Condor Cloud in the sandbox, with one booted instance and the API.

arguments:        up | down
standard input:   not read
standard output:  what was started, the instance's console, condor_q, virsh list, where things are, the API's
                  HTTPS URL, its certificate (a host copy, and its SHA-256 fingerprint), a curl line that trusts
                  it, the demo user's password, an EC2 access key with the aws command that lists the instance,
                  and how to stop it
user:             root (the sandbox mounts, chroots and starts daemons)
exit status:      0 done; 1 failure (message on standard error; everything started is stopped again)

The demo sandbox uses the host's loopback (no network namespace), so the API is at https://127.0.0.1:3002/api
for a browser or curl on this machine, with the self-signed certificate `condor-cloud api-cert create` made in
the sandbox (as the installed service does at its first start); its daemons keep running until `make demo-stop`.
"""
import glob
import os
import secrets
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

from sandbox import Sandbox, SandboxError  # noqa: E402
from wait import wait_for  # noqa: E402

NAME = "demo"
PORT = 3002
EC2_PORT = 8773
SUBMIT = """\
universe = vm
vm_type = kvm
executable = my-instance
vm_memory = 256
vm_disk = demo.qcow2:vda:w
vm_no_output_vm = true
queue
"""


def say(text=""):
    print(text, flush=True)


def up():
    image = subprocess.run([os.path.join(REPO, "tests", "images", "build-image"), "sleep"], check=True,
                           stdout=subprocess.PIPE, universal_newlines=True).stdout.strip()
    sb = Sandbox(NAME, netns=False)
    say("== building/starting the sandbox (Debian 13 root, libvirt, HTCondor pool on 127.0.0.1) ...")
    sb.up()
    try:
        sb.put_image("demo.qcow2", image)
        say("== image store: %s" % ", ".join(sorted(os.listdir(sb.path("/var/lib/condor-cloud/shared_images")))))
        say("== submitting as user alice:\n" + SUBMIT)
        cluster = sb.submit(SUBMIT, user="alice")
        say("== waiting for instance %d.0 to boot (TCG emulation here: about a minute) ..." % cluster)
        log = wait_for("instance %d.0 to boot" % cluster, lambda: booted(sb, cluster), 300,
                       explain=lambda: sb.diagnose(cluster))
        say("== the instance's serial console, as its owner reads it: condor-cloud instance console %d.0"
            % cluster)
        owner_view = sb.run(["condor-cloud", "instance", "console", "%d.0" % cluster], user="alice", check=False)
        say((owner_view.stdout or owner_view.stderr).strip())
        say("   (on the node: %s)" % log[len(sb.root):])
        say("\n== condor_q:\n" + sb.run(["condor_q", "-allusers"]).stdout)
        say("== virsh list:\n" + sb.virsh("list"))
        say("== where things are (inside the sandbox root %s):" % sb.root)
        say("   store    /var/lib/condor-cloud/shared_images   cache /var/lib/condor-cloud/local_cache")
        say("   overlays /var/lib/condor-cloud/instances/<id>/vda.qcow2   consoles /var/log/condor-cloud/consoles")
        say("   logs     /var/log/condor (StarterLog*, VMGahpLog*, StartLog)")
        password = secrets.token_urlsafe(12)
        try:
            # alice too: the EC2 API below lists her (by-hand) instance to her
            sb.start_api({"demo": password, "alice": secrets.token_urlsafe(12)}, port=PORT)
            api = sb.state["api"]
            say("\n== API and browser pages (HTTPS): %s/api   user: demo   password: %s" % (api["url"], password))
            say("   its certificate (self-signed, made by `condor-cloud api-cert create`): %s" % api["cafile"])
            say("   SHA-256 fingerprint: %s" % api["sha256"])
            say("   curl --cacert %s -u demo:%s -H 'Accept: application/json' %s/api/instances"
                % (api["cafile"], password, api["url"]))
            say("   a browser warns about the self-signed certificate: compare its SHA-256 fingerprint with the one "
                "above, or start Chromium with --ignore-certificate-errors-spki-list=%s" % api["spki"])
            ec2_api(sb, api)
        except SandboxError as exc:
            say("\n== the API did not start: %s" % exc)
        say("\n== a shell in the sandbox: python3 tests/sandbox/sandbox.py shell --name %s --no-netns" % NAME)
        say("== stop everything: make demo-stop")
    except BaseException:
        sb.stop()
        raise


def booted(sb, cluster):
    """The console log of the job's instance once it shows the boot marker; SandboxError if the job was held."""
    for path in glob.glob(sb.path("/var/log/condor-cloud/consoles/%d.0-*.log" % cluster)):
        with open(path, errors="replace") as f:
            if "CONDOR-CLOUD-GUEST-BOOTED" in f.read():
                return path
    if sb.job_status(cluster) == "held":
        raise SandboxError("the instance was held: %s" % sb.hold_reason(cluster))
    return None


def ec2_api(sb, api):
    """Start the EC2 Query API and print an access key of alice and the aws command that lists her instance."""
    sb.start_ec2(port=EC2_PORT)
    key = sb.ec2_access_key("alice")
    aws = os.path.join(REPO, ".venv", "bin", "aws")
    say("\n== EC2 Query API (HTTPS): %s   access key of alice (secret shown only now): %s / %s"
        % (sb.state["ec2"]["url"], key["id"], key["secret"]))
    say("   AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s %s --region condor-cloud --endpoint-url %s --ca-bundle %s "
        "ec2 describe-instances" % (key["id"], key["secret"], aws if os.path.exists(aws) else "aws",
                                    sb.state["ec2"]["url"], api["cafile"]))
    say("   (docs/EC2.txt: aws configure, boto3, Ansible)")


def down():
    Sandbox(NAME, netns=False).stop()
    say("demo sandbox stopped; nothing of it is running or mounted")


if __name__ == "__main__":
    try:
        {"up": up, "down": down}[sys.argv[1] if len(sys.argv) > 1 else "up"]()
    except (SandboxError, subprocess.CalledProcessError, OSError) as exc:
        print("demo: %s" % exc, file=sys.stderr)
        sys.exit(1)
