"""One sandbox run on the host: its run directory, root and network namespace, the record of everything made for it
(RUNDIR/state.json), running commands and daemons chrooted in it, and undoing it all.

Every mount, PID and the namespace is recorded as it is made, so teardown() -- also from a later process after a
crash (`sandbox.py down`, or any Sandbox(name).stop()) -- undoes exactly them.  Processes are found by PID: the
recorded ones plus every process whose root directory is the sandbox root (QEMU, vm-gahp, starters, dnsmasq)."""
import json
import os
import re
import shutil
import subprocess

from host import SandboxError, kill, mounts_under, pids_in_root, sh

CACHE = os.environ.get("CLOUD_SANDBOX_CACHE", "/var/tmp/condor-cloud-sandbox")
ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}
LOG_DIRS = ("/var/log/condor", "/var/log/libvirt", "/var/log/condor-cloud")


class Chroot:
    """The run `name` under cache/runs/name: root (the sandbox's /), statefile, netns `ccsb-<name>`."""

    def __init__(self, name="default", cache=CACHE):
        if not re.match(r"^[a-z0-9][a-z0-9-]{0,20}$", name):
            raise SandboxError("bad sandbox name %r" % name)
        self.name = name
        self.cache = cache
        self.rundir = os.path.join(cache, "runs", name)
        self.root = os.path.join(self.rundir, "root")
        self.statefile = os.path.join(self.rundir, "state.json")
        self.netns = "ccsb-" + name
        self.state = self._empty_state()

    def _empty_state(self):
        return {"root": self.root, "mounts": [], "pids": {}, "netns": None, "copy": False}

    # -- the record ------------------------------------------------------------------------------------------
    def save(self):
        """Write the state record (atomically: a crash leaves the old or the new one)."""
        tmp = self.statefile + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.state, f, indent=1)
        os.rename(tmp, self.statefile)

    def load(self):
        """Read the state record of a running (or crashed) run of this name."""
        with open(self.statefile) as f:
            self.state = json.load(f)

    def mount(self, *args):
        """mount(8) with args (the last one is the target), recorded."""
        sh(["mount"] + list(args))
        self.state["mounts"].append(args[-1])
        self.save()

    # -- inside --------------------------------------------------------------------------------------------
    def path(self, p):
        """Host path of a path inside the sandbox root."""
        return self.root + "/" + p.lstrip("/")

    def prefix(self):
        """The command prefix that enters the run's network namespace (none without one)."""
        return ["nsenter", "--net=/run/netns/" + self.netns] if self.state.get("netns") else []

    def run(self, cmd, user=None, check=True, input=None, timeout=120):
        """Run cmd (list, or str for sh -c) chrooted in the sandbox (in its netns), optionally as user.
        Returns CompletedProcess with text stdout/stderr."""
        if isinstance(cmd, str):
            cmd = ["sh", "-c", cmd]
        if user:
            cmd = ["runuser", "-u", user, "--", "sh", "-c", 'cd "$HOME" && exec "$@"', "sh"] + cmd
        p = subprocess.run(self.prefix() + ["chroot", self.root] + cmd, input=input, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True, env=ENV, timeout=timeout)
        if check and p.returncode != 0:
            raise SandboxError("%s failed (%d):\n%s%s" % (cmd, p.returncode, p.stdout, p.stderr))
        return p

    def start(self, key, argv, env=None):
        """Start a daemon chrooted in the sandbox, in the foreground of its own session, its output in
        RUNDIR/<key>.out; its PID is recorded under key.  Returns the Popen."""
        logf = open(self.out_file(key), "ab")
        e = dict(ENV)
        e.update(env or {})
        p = subprocess.Popen(self.prefix() + ["chroot", self.root] + argv, stdin=subprocess.DEVNULL,
                             stdout=logf, stderr=subprocess.STDOUT, env=e, start_new_session=True, cwd="/")
        logf.close()
        self.state["pids"][key] = p.pid   # nsenter and chroot exec: this is the daemon's own PID
        self.save()
        return p

    def out_file(self, key):
        """Host path of the output of the daemon started under key."""
        return os.path.join(self.rundir, key + ".out")

    def out_tail(self, key, chars=3000):
        with open(self.out_file(key), errors="replace") as f:
            return f.read()[-chars:]

    # -- undo ----------------------------------------------------------------------------------------------
    def teardown(self, keep_logs=None):
        """Stop everything by PID, undo every mount, delete the netns and the run directory.  Idempotent; works
        from the state record of a crashed earlier run too.  keep_logs: a host directory to copy the logs to
        first."""
        state = self.state
        if os.path.exists(self.statefile):
            with open(self.statefile) as f:
                state = json.load(f)
        root = state.get("root", self.root)
        if not os.path.isdir(self.rundir):
            return
        if keep_logs:
            self._keep_logs(keep_logs)
        pids = state.get("pids", {})
        # condor_master first: it stops the startd, which vacates the VMs.
        master = pids.get("condor_master")
        if master and master in pids_in_root(root):   # PID still ours (not reused)
            kill([master], 30)
        # Everything else whose root is the sandbox (starters, vm-gahp, QEMU, libvirtd, virtlogd).
        for _ in range(3):
            rest = pids_in_root(root)
            if not rest:
                break
            # libvirt last: it cleans up after its QEMUs
            first = [p for p in rest if p not in (pids.get("libvirtd"), pids.get("virtlogd"))]
            kill(first, 10)
            kill([p for p in rest if p not in first], 10)
        for mp in mounts_under(root):
            if subprocess.call(["umount", mp], stderr=subprocess.DEVNULL) != 0:
                subprocess.call(["umount", "-l", mp])
        if state.get("netns") and os.path.exists("/run/netns/" + state["netns"]):
            subprocess.call(["ip", "netns", "del", state["netns"]])
        left = mounts_under(self.rundir)
        if left:
            raise SandboxError("mounts left under %s: %s" % (self.rundir, left))
        shutil.rmtree(self.rundir, ignore_errors=True)
        self.state = self._empty_state()

    def _keep_logs(self, dest):
        os.makedirs(dest, exist_ok=True)
        for src in LOG_DIRS:
            if os.path.isdir(self.path(src)):
                shutil.copytree(self.path(src), os.path.join(dest, src.strip("/").replace("/", "_")),
                                dirs_exist_ok=True)
        for f in os.listdir(self.rundir):
            if f.endswith(".out"):
                shutil.copy(os.path.join(self.rundir, f), dest)
