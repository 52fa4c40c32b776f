#!/usr/bin/env python3
"""A real single-host HTCondor VM pool (HTCondor 23.9.6 + libvirt + QEMU/TCG) in a throw-away root.

arguments:        up [--name N] [--no-netns] | down [--name N] | status [--name N] | shell [--name N] [--user U]
standard input:   not read (shell: the interactive shell's)
standard output:  up: the sandbox root path; status: the state file and condor_status; down: nothing
user:             root (mounts, chroot, network namespace)
exit status:      0 done; 1 failure (message on standard error); 2 usage

As a module (host Python 3.9+, no third-party imports): `Sandbox(...).up()` ... `.stop()`, the one object the
integration tests, tests/sandbox/demo.py and bench use.  It is a facade over small modules (why each works the way
it does: shared/docs/real-pool-notes.md):
  chroot.py    the run: its root, network namespace `ccsb-<name>`, state record; commands and daemons in it; undo
  root.py      the root filesystem: cached Debian 13 root, /dev, /proc, /sys, accounts, the project installed
  pool.py      HTCondor's configuration and daemons, more execute nodes, the schedd off and on, the logs
  client.py    what a user runs: condor_submit, condor_q, a job's state, virsh
  network.py   guest networks in the namespace: a libvirt network, a bridge with dnsmasq
  services.py  the product's API and EC2 API servers, their users and access keys
  wait.py      the one polling loop (wait_for), used by all of the above and by the tests
  host.py      host commands, the sandbox's processes (by PID and root directory) and mounts
  errors.py    SandboxError, WaitTimeout
Every daemon runs chrooted inside the sandbox's network namespace (nsenter --net, so daemons share our mount
namespace and every mount is visible to stop()); the pool lives on that namespace's 127.0.0.1.
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:   # run as a script, or imported by path
    sys.path.insert(0, HERE)

import client  # noqa: E402
import network  # noqa: E402
import pool  # noqa: E402
import root  # noqa: E402
import services  # noqa: E402
from chroot import CACHE, ENV, Chroot  # noqa: E402
from errors import SandboxError  # noqa: E402
from root import STORE  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))


class Sandbox(Chroot):
    """One sandbox pool.  Sandbox(name).up() starts it; .stop() (idempotent, also for a crashed earlier run of
    the same name) stops every daemon by PID, undoes every mount, deletes the netns and the run root.

    netns: run the pool in its own network namespace (default); False uses the host's loopback.
    extra_config: appended to /etc/condor/config.d/99sandbox.config.
    master_env: extra environment for condor_master (e.g. {"_CONDOR_FOO": "1"}).
    """

    def __init__(self, name="default", repo=REPO, cache=CACHE, netns=True, extra_config="", master_env=None,
                 users=("alice", "bob")):
        super().__init__(name, cache)
        self.repo = repo
        self.use_netns = netns
        self.extra_config = extra_config
        self.master_env = dict(master_env or {})
        self.users = users
        self.timings = {}

    # -- life cycle -------------------------------------------------------------------------------------------
    def up(self, timeout=180):
        """Build/reuse the root, mount, install, configure, start the daemons, wait for HasVM."""
        self.stop()  # a crashed earlier run of the same name
        t0 = time.time()
        try:
            base = root.cached_root()
            self.timings["build-root"] = round(time.time() - t0, 1)
            root.make(self, base, self.use_netns, self.users, self.repo)
            pool.write_config(self, self.extra_config)
            t1 = time.time()
            self.timings["prepare"] = round(t1 - t0, 1)
            pool.start(self, self.master_env, timeout)
            self.timings["daemons-ready"] = round(time.time() - t1, 1)
        except BaseException:
            self.stop(keep_logs=os.environ.get("CLOUD_SANDBOX_KEEP_LOGS"))
            raise
        return self

    def stop(self, keep_logs=None):
        """Stop everything by PID, undo every mount, delete the netns and the run root (chroot.Chroot.teardown)."""
        self.teardown(keep_logs)

    def __enter__(self):
        return self.up()

    def __exit__(self, *exc):
        self.stop(keep_logs=os.environ.get("CLOUD_SANDBOX_KEEP_LOGS"))

    # -- the pool (pool.py) ---------------------------------------------------------------------------------
    def wait_ready(self, timeout=180):
        return pool.wait_ready(self, timeout)

    def add_node(self, name, timeout=120, extra_env=None):
        return pool.add_node(self, name, self.master_env, timeout, extra_env)

    def schedd_off(self, timeout=120):
        return pool.schedd_off(self, timeout)

    def log_tail(self, name, lines=40):
        return pool.log_tail(self, name, lines)

    def starter_log(self, lines=60):
        return pool.starter_log(self, lines)

    def put_image(self, name, src, store=STORE):
        return root.put_image(self, name, src, store)

    # -- as a user (client.py) -------------------------------------------------------------------------------
    def submit(self, text, user="alice"):
        return client.submit(self, text, user)

    def condor_q(self, *args):
        return client.condor_q(self, *args)

    def job_ad(self, cluster, proc=0):
        return client.job_ad(self, cluster, proc)

    def job_status(self, cluster, proc=0):
        return client.job_status(self, cluster, proc)

    def hold_reason(self, cluster, proc=0):
        return client.hold_reason(self, cluster, proc)

    def wait_job(self, cluster, states=("completed",), timeout=300, proc=0):
        return client.wait_job(self, cluster, states, timeout, proc)

    def diagnose(self, cluster=None, proc=0):
        return client.diagnose(self, cluster, proc)

    def virsh(self, *args, check=True):
        return client.virsh(self, *args, check=check)

    # -- guest networks (network.py) -------------------------------------------------------------------------
    def start_network(self, name="default", bridge="virbr0", prefix="192.168.122", timeout=30):
        return network.start_network(self, name, bridge, prefix, timeout)

    def start_bridge(self, bridge="br0", prefix="10.77.0", timeout=30):
        return network.start_bridge(self, bridge, prefix, timeout)

    def network_leases(self, name="default"):
        return network.network_leases(self, name)

    # -- the product's servers (services.py) -----------------------------------------------------------------
    def start_api(self, passwords, admins=(), port=3002, timeout=60):
        return services.start_api(self, passwords, admins, port, timeout)

    def start_ec2(self, port=8773, timeout=60):
        return services.start_ec2(self, port, timeout)

    def stop_service(self, key):
        return services.stop(self, key)

    def ec2_access_key(self, user):
        return services.ec2_access_key(self, user)


def main(argv=None):
    ap = argparse.ArgumentParser(description="condor-cloud test sandbox (a real HTCondor VM pool)")
    ap.add_argument("action", choices=["up", "down", "status", "shell"])
    ap.add_argument("--name", default="default")
    ap.add_argument("--no-netns", action="store_true", help="use the host's loopback")
    ap.add_argument("--user", default=None, help="shell: run as this user")
    a = ap.parse_args(argv)
    sb = Sandbox(a.name, netns=not a.no_netns)
    try:
        if a.action == "up":
            sb.up()
            print(sb.root)
            print("timings: %s" % sb.timings, file=sys.stderr)
        elif a.action == "down":
            sb.stop()
        elif a.action == "status":
            if not os.path.exists(sb.statefile):
                print("no sandbox %s" % a.name)
                return 0
            sb.load()
            print(json.dumps(sb.state, indent=1))
            p = sb.run(["condor_status", "-af", "Name", "HasVM", "CloudCachedImages"], check=False)
            print(p.stdout + p.stderr)
        elif a.action == "shell":
            sb.load()
            cmd = sb.prefix() + ["chroot", sb.root] + (["runuser", "-l", a.user] if a.user else ["/bin/bash", "-l"])
            os.execvpe(cmd[0], cmd, ENV)
    except (SandboxError, OSError) as e:
        print("sandbox: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
