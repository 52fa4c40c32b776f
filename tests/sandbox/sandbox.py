#!/usr/bin/env python3
"""A real single-host HTCondor VM pool (HTCondor 23.9.6 + libvirt + QEMU/TCG) in a throw-away root.

arguments:        up [--name N] [--no-project] [--no-netns] | down [--name N] | status [--name N]
                  | shell [--name N] [--user U]
standard input:   not read (shell: the interactive shell's)
standard output:  up: the sandbox root path; status: the state file and condor_status; down: nothing
user:             root (mounts, chroot, network namespace)
exit status:      0 done; 1 failure (message on standard error); 2 usage

As a module (host Python 3.9+, no third-party imports): `Sandbox(...).up()` ... `.stop()`; see the class.

How it works (why, see shared/docs/real-pool-notes.md):
- tests/sandbox/build-root gives a cached Debian 13 root; each run gets a writable copy of it: an overlayfs
  (lower = cached root, upper under the run dir) or, where overlayfs cannot be mounted, `cp -a --reflink=auto`.
- The run root gets its own /dev (tmpfs with the few device nodes QEMU needs, /dev/kvm as root:kvm 0660 so
  libvirt keeps its QEMU capability cache), /dev/pts (new instance), /proc and /sys.  The host's /dev is
  never written.
- Every daemon runs chrooted inside a network namespace `ccsb-<name>` that the sandbox creates (nsenter --net,
  so daemons share our mount namespace and every mount is visible to stop()); the pool lives on that
  namespace's 127.0.0.1, and any libvirt bridge would live and die with the namespace.
- Every mount, PID and the namespace are recorded in RUNDIR/state.json as they are made, so stop() -- also from
  a later process after a crash (`sandbox.py down`, or any Sandbox(name).stop()) -- undoes exactly them.
  Processes are found by PID: the recorded ones plus every process whose root directory is the sandbox root
  (QEMU, vm-gahp, starters), never by name.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CACHE = os.environ.get("CLOUD_SANDBOX_CACHE", "/var/tmp/condor-cloud-sandbox")
STORE = "/var/lib/condor-cloud/shared_images"
JOB_STATUS = {1: "idle", 2: "running", 3: "removed", 4: "completed", 5: "held", 6: "transferring", 7: "suspended"}
ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}

# Test-only overlay on top of the project's config.d: a loopback pool, fast cycles, TCG, no network.
SANDBOX_CONFIG = """\
# tests/sandbox: test-only settings (written by sandbox.py; never shipped)
CONDOR_HOST = 127.0.0.1
NETWORK_INTERFACE = 127.0.0.1
ENABLE_IPV6 = FALSE
ALLOW_READ = 127.0.0.1
ALLOW_WRITE = 127.0.0.1
ALLOW_DAEMON = 127.0.0.1
ALLOW_NEGOTIATOR = 127.0.0.1
ALLOW_ADMINISTRATOR = 127.0.0.1
ALLOW_CONFIG = 127.0.0.1
SEC_DEFAULT_AUTHENTICATION_METHODS = FS, CLAIMTOBE
SEC_CLIENT_AUTHENTICATION_METHODS = FS, CLAIMTOBE
SEC_DAEMON_AUTHENTICATION_METHODS = FS, CLAIMTOBE
SEC_READ_AUTHENTICATION_METHODS = FS, CLAIMTOBE
SEC_WRITE_AUTHENTICATION_METHODS = FS, CLAIMTOBE
SEC_NEGOTIATOR_AUTHENTICATION_METHODS = FS, CLAIMTOBE
SEC_ADMINISTRATOR_AUTHENTICATION_METHODS = FS, CLAIMTOBE
# The shipped cycle knobs (NEGOTIATOR_CYCLE_DELAY 2, NEGOTIATOR_MIN_INTERVAL 0, SCHEDD_MIN_INTERVAL 0) apply;
# only the periodic safety-net cycle is faster than the shipped 20 s, for idle jobs no submit announces.
NEGOTIATOR_INTERVAL = 2
UPDATE_INTERVAL = 5
MASTER_UPDATE_INTERVAL = 5
SCHEDD_INTERVAL = 5
STARTER_UPDATE_INTERVAL = 5
CLOUD_DOMAIN_TYPE = qemu
CLOUD_NETWORK = none
CLOUD_CLEANUP_PERIOD = 10s
STARTD_CRON_CLOUDCLEANUP_PERIOD = 10s
VM_STATUS_INTERVAL = 30
VM_MEMORY = 4096
# 2 real cores: over-provision so 8 small 1-vCPU VMs fit at once
NUM_CPUS = 8
"""

# Only when the project is NOT installed: a plain HTCondor VM pool (proves the sandbox without our hooks).
PLAIN_VM_CONFIG = """\
use ROLE : Personal
VM_TYPE = kvm
VM_GAHP_SERVER = $(SBIN)/condor_vm-gahp
VM_NETWORKING = false
LIBVIRT_XML_SCRIPT = /usr/local/libexec/sandbox-qemu-xml
NUM_SLOTS = 1
NUM_SLOTS_TYPE_1 = 1
SLOT_TYPE_1 = 100%
SLOT_TYPE_1_PARTITIONABLE = true
"""


class SandboxError(Exception):
    pass


def _sh(cmd, check=True, **kw):
    """Run a host command (list), capture text output."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, **kw)
    if check and p.returncode != 0:
        raise SandboxError("%s failed (%d): %s" % (" ".join(cmd), p.returncode, p.stderr.strip() or p.stdout.strip()))
    return p


def _mounts_under(path):
    """Mount points at or below path, deepest first (from /proc/self/mounts)."""
    found = []
    with open("/proc/self/mounts") as f:
        for line in f:
            mp = line.split()[1].replace("\\040", " ")
            if mp == path or mp.startswith(path + "/"):
                found.append(mp)
    return sorted(set(found), key=lambda m: m.count("/"), reverse=True)


def _pids_in_root(root):
    """PIDs of processes whose root directory is the sandbox root (or below it)."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            r = os.readlink("/proc/%s/root" % d)
        except OSError:
            continue
        if r == root or r.startswith(root + "/"):
            pids.append(int(d))
    return pids


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[-1][0] != "Z"
    except OSError:
        return False


def _kill(pids, timeout):
    """TERM the PIDs, wait up to timeout, KILL the rest."""
    pids = [p for p in pids if _alive(p)]
    for p in pids:
        try:
            os.kill(p, signal.SIGTERM)
        except OSError:
            pass
    end = time.time() + timeout
    while time.time() < end and any(_alive(p) for p in pids):
        time.sleep(0.2)
    for p in pids:
        if _alive(p):
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass


class Sandbox:
    """One sandbox pool.  Sandbox(name).up() starts it; .stop() (idempotent, also for a crashed earlier run of
    the same name) stops every daemon by PID, undoes every mount, deletes the netns and the run root.

    install_project: install the repo into the root (make install-node install-master if the Makefile has them,
        else copy the same layout by hand); False gives a plain HTCondor VM pool with a test XML script.
    netns: run the pool in its own network namespace (default); False uses the host's loopback.
    extra_config: appended to /etc/condor/config.d/99sandbox.config.
    master_env: extra environment for condor_master (e.g. {"_CONDOR_FOO": "1"}).
    """

    def __init__(self, name="default", repo=REPO, cache=CACHE, install_project=True, netns=True,
                 extra_config="", master_env=None, users=("alice", "bob")):
        if not re.match(r"^[a-z0-9][a-z0-9-]{0,20}$", name):
            raise SandboxError("bad sandbox name %r" % name)
        self.name = name
        self.repo = repo
        self.cache = cache
        self.install_project = install_project
        self.use_netns = netns
        self.extra_config = extra_config
        self.master_env = dict(master_env or {})
        self.users = users
        self.rundir = os.path.join(cache, "runs", name)
        self.root = os.path.join(self.rundir, "root")
        self.statefile = os.path.join(self.rundir, "state.json")
        self.netns = "ccsb-" + name
        self.state = {"root": self.root, "mounts": [], "pids": {}, "netns": None, "copy": False}
        self.timings = {}

    # ------------------------------------------------------------------ state
    def _save(self):
        tmp = self.statefile + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.state, f, indent=1)
        os.rename(tmp, self.statefile)

    def _mount(self, *args):
        target = args[-1]
        _sh(["mount"] + list(args))
        self.state["mounts"].append(target)
        self._save()

    # ------------------------------------------------------------------ up
    def up(self, timeout=180):
        """Build/reuse the root, mount, install, configure, start the daemons, wait for HasVM."""
        self.stop()  # a crashed earlier run of the same name
        t0 = time.time()
        try:
            root_src = _sh([os.path.join(HERE, "build-root")]).stdout.strip()
            self.timings["build-root"] = round(time.time() - t0, 1)
            os.makedirs(self.rundir)
            self._save()
            self._make_root(root_src)
            self._make_netns()
            self._mount_filesystems()
            self._prepare_root()
            self._install()
            self._write_config()
            t1 = time.time()
            self.timings["prepare"] = round(t1 - t0, 1)
            self._start_daemons()
            self.wait_ready(timeout)
            self.timings["daemons-ready"] = round(time.time() - t1, 1)
        except BaseException:
            self.stop(keep_logs=os.environ.get("CLOUD_SANDBOX_KEEP_LOGS"))
            raise
        return self

    def __enter__(self):
        return self.up()

    def __exit__(self, *exc):
        self.stop(keep_logs=os.environ.get("CLOUD_SANDBOX_KEEP_LOGS"))

    def _make_root(self, root_src):
        os.makedirs(self.root)
        upper, work = os.path.join(self.rundir, "upper"), os.path.join(self.rundir, "work")
        os.makedirs(upper)
        os.makedirs(work)
        try:
            self._mount("-t", "overlay", "overlay", "-o",
                        "lowerdir=%s,upperdir=%s,workdir=%s" % (root_src, upper, work), self.root)
        except SandboxError:
            # No overlayfs here (e.g. inside some containers): a full copy, reflinked where the fs can.
            self.state["copy"] = True
            self._save()
            _sh(["cp", "-a", "--reflink=auto", root_src + "/.", self.root])

    def _make_netns(self):
        if not self.use_netns:
            return
        _sh(["ip", "netns", "add", self.netns])
        self.state["netns"] = self.netns
        self._save()
        _sh(["ip", "-n", self.netns, "link", "set", "lo", "up"])

    def _prefix(self):
        return ["nsenter", "--net=/run/netns/" + self.netns] if self.state.get("netns") else []

    def _mount_filesystems(self):
        r = self.root
        # Private /dev: only what QEMU/libvirt/HTCondor need; /dev/kvm mirrors the host's owner and mode
        # (the root's kvm group has the host's GID, see build-root).
        self._mount("-t", "tmpfs", "-o", "mode=755,nosuid", "sandbox-dev", r + "/dev")
        nodes = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8), "urandom": (1, 9),
                 "tty": (5, 0)}
        for n, (ma, mi) in nodes.items():
            os.mknod(r + "/dev/" + n, 0o20666, os.makedev(ma, mi))
            os.chmod(r + "/dev/" + n, 0o666)
        if os.path.exists("/dev/kvm"):
            # root:kvm 0660 whatever the host has (here root:root 0600): libvirt probes QEMU's capabilities
            # as root and finds KVM, then checks /dev/kvm as the QEMU user (libvirt-qemu, group kvm); if that
            # user cannot open it, libvirt discards its capability cache and re-probes on EVERY domain start
            # ("KVM was enabled when probing ..., but it is not available now": 48 s instead of 0.4 s).
            # Domains still use TCG (type='qemu'); KVM itself does not work on these machines.
            kvm_gid = int(self.run(["getent", "group", "kvm"]).stdout.split(":")[2])
            os.mknod(r + "/dev/kvm", 0o20660, os.stat("/dev/kvm").st_rdev)
            os.chown(r + "/dev/kvm", 0, kvm_gid)
            os.chmod(r + "/dev/kvm", 0o660)
        os.makedirs(r + "/dev/net")
        os.mknod(r + "/dev/net/tun", 0o20666, os.makedev(10, 200))
        for link, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                             ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx")):
            os.symlink(target, r + "/dev/" + link)
        os.makedirs(r + "/dev/pts")
        os.makedirs(r + "/dev/shm")
        self._mount("-t", "devpts", "-o", "newinstance,ptmxmode=0666,mode=620,gid=5", "sandbox-devpts", r + "/dev/pts")
        self._mount("-t", "tmpfs", "-o", "mode=1777,nosuid,nodev", "sandbox-shm", r + "/dev/shm")
        self._mount("-t", "proc", "sandbox-proc", r + "/proc")
        # sysfs mounted from inside the netns so /sys/class/net shows the sandbox's interfaces
        _sh(self._prefix() + ["mount", "-t", "sysfs", "sandbox-sys", r + "/sys"])
        self.state["mounts"].append(r + "/sys")
        self._save()

    def _prepare_root(self):
        host = socket.gethostname()
        fqdn = socket.getfqdn()
        names = " ".join(sorted({host, fqdn}))
        with open(self.path("/etc/hosts"), "w") as f:
            f.write("127.0.0.1\tlocalhost %s\n" % names)
        for u in self.users:
            if self.run(["getent", "passwd", u], check=False).returncode != 0:
                self.run(["useradd", "--create-home", "--shell", "/bin/bash", u])
        os.makedirs(self.path("/var/log/sandbox-console"), exist_ok=True)
        os.chmod(self.path("/var/log/sandbox-console"), 0o1777)
        for d in ("/var/run/condor", "/var/lock/condor", "/var/log/condor", "/var/lib/condor",
                  "/var/lib/condor/spool", "/var/lib/condor/execute", "/var/spool/condor"):
            os.makedirs(self.path(d), exist_ok=True)
            self.run(["chown", "condor:condor", d])
        shutil.copy(os.path.join(HERE, "qemu-xml-script"), self.path("/usr/local/libexec/sandbox-qemu-xml"))

    # ------------------------------------------------------------------ install
    def _make_targets(self):
        mk = os.path.join(self.repo, "Makefile")
        if not os.path.exists(mk):
            return set()
        with open(mk) as f:
            return set(re.findall(r"^([A-Za-z0-9_-]+)\s*:", f.read(), re.M))

    def _install(self):
        if not self.install_project:
            return
        targets = self._make_targets()
        how = os.environ.get("CLOUD_SANDBOX_INSTALL", "rpm")
        if how == "rpm" and "rpm" in targets and shutil.which("rpmbuild"):
            # The product is the RPMs: install their payloads (owners, modes, %config from the headers).
            self._install_rpms()
            self.state["install"] = "rpm"
        elif {"install-node", "install-master"} <= targets:
            _sh(["make", "-C", self.repo, "install-node", "install-master", "DESTDIR=" + self.root,
                 "PREFIX=/usr", "PYTHON=/usr/bin/python3"])
            self.state["install"] = "make"
        else:
            self._install_copy()
            self.state["install"] = "copy (Makefile has no install-node/install-master yet)"
        self._save()
        # Accounts and directories, if the install did not create them (a package's postinst would).
        if self.run(["getent", "passwd", "condor-cloud"], check=False).returncode != 0:
            self.run(["useradd", "--system", "--user-group", "--home-dir", "/var/lib/condor-cloud",
                      "--no-create-home", "--shell", "/usr/sbin/nologin", "condor-cloud"])
        self.run(["usermod", "-a", "-G", "condor-cloud,libvirt", "condor"])
        for d, mode in (("/var/lib/condor-cloud/local_cache", 0o2775), ("/var/lib/condor-cloud/instances", 0o2771)):
            os.makedirs(self.path(d), exist_ok=True)
            self.run(["chown", "condor-cloud:condor-cloud", d])
            os.chmod(self.path(d), mode)
        os.makedirs(self.path(STORE + "/staging"), exist_ok=True)
        os.chmod(self.path(STORE), 0o755)

    def _install_rpms(self):
        build = os.path.join(self.rundir, "build")
        _sh(["make", "-C", self.repo, "--no-print-directory", "rpm", "BUILDDIR=" + build])
        with open(os.path.join(self.repo, "condor-cloud.spec")) as f:
            version = re.search(r"^Version:\s*(\S+)", f.read(), re.M).group(1)
        rpms = sorted(os.path.join(build, "rpm", "RPMS", "noarch", n)
                      for n in os.listdir(os.path.join(build, "rpm", "RPMS", "noarch"))
                      if n.endswith(".noarch.rpm") and "-%s-" % version in n)
        if len(rpms) != 3:
            raise SandboxError("expected 3 RPMs of version %s, found %s" % (version, rpms))
        _sh([os.path.join(self.repo, "packaging", "install-rpm-payload"), self.root] + rpms)
        self.state["rpms"] = [os.path.basename(r) for r in rpms]

    def _install_copy(self):
        """Interim install in the layout of make install-node/install-master, for a Makefile without them."""
        r, repo = self.root, self.repo
        pkg = r + "/usr/lib/python3/dist-packages/condor_cloud"
        shutil.copytree(os.path.join(repo, "condor_cloud"), pkg,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        os.makedirs(r + "/usr/libexec/condor-cloud/hooks", exist_ok=True)
        for h in ("prepare", "exit", "cleanup"):
            shutil.copy(os.path.join(repo, "hooks", h), r + "/usr/libexec/condor-cloud/hooks/" + h)
            os.chmod(r + "/usr/libexec/condor-cloud/hooks/" + h, 0o755)
        shutil.copy(os.path.join(repo, "libexec", "libvirt-xml"), r + "/usr/libexec/condor-cloud/libvirt-xml")
        os.chmod(r + "/usr/libexec/condor-cloud/libvirt-xml", 0o755)
        shutil.copytree(os.path.join(repo, "templates"), r + "/usr/share/condor-cloud/templates", dirs_exist_ok=True)
        for c in ("20condor_cloud_master.config", "30condor_cloud_node.config"):
            shutil.copy(os.path.join(repo, "config.d", c), r + "/etc/condor/config.d/" + c)

    def _write_config(self):
        text = SANDBOX_CONFIG
        if not self.install_project:
            text += PLAIN_VM_CONFIG
        text += self.extra_config
        with open(self.path("/etc/condor/config.d/99sandbox.config"), "w") as f:
            f.write(text)

    # ------------------------------------------------------------------ daemons
    def _start(self, key, argv, env=None):
        logf = open(os.path.join(self.rundir, key + ".out"), "ab")
        e = dict(ENV)
        e.update(env or {})
        p = subprocess.Popen(self._prefix() + ["chroot", self.root] + argv, stdin=subprocess.DEVNULL,
                             stdout=logf, stderr=subprocess.STDOUT, env=e, start_new_session=True, cwd="/")
        logf.close()
        self.state["pids"][key] = p.pid   # nsenter and chroot exec: this is the daemon's own PID
        self._save()
        return p

    def _wait_for(self, what, cond, timeout):
        end = time.time() + timeout
        while time.time() < end:
            if cond():
                return
            time.sleep(0.3)
        raise SandboxError("timed out after %ss waiting for %s" % (timeout, what))

    def _start_daemons(self):
        # virtlogd before libvirtd, else domain start fails (virtlogd-sock missing); foreground, so PID is known.
        self._start("virtlogd", ["/usr/sbin/virtlogd"])
        self._wait_for("virtlogd socket", lambda: os.path.exists(self.path("/run/libvirt/virtlogd-sock")), 30)
        self._start("libvirtd", ["/usr/sbin/libvirtd"])
        self._wait_for("libvirtd socket", lambda: os.path.exists(self.path("/run/libvirt/libvirt-sock")), 30)
        self._start("condor_master", ["/usr/sbin/condor_master", "-f"], env=self.master_env)

    def add_node(self, name, timeout=120, extra_env=None):
        """Start a second execute node in the same root: its own condor_master + startd named `name`, with its
        own log/spool/execute dirs and its own CLOUD_IMAGE_CACHE and CLOUD_INSTANCE_DIR, configured only through
        _CONDOR_* environment variables (the hooks and the cron inherit them from its master; a separate
        CONDOR_CONFIG would be overridden by config.d); extra_env adds more of them (e.g. {"_CONDOR_CLOUD_NETWORK":
        "bridge:br0"}). Returns the node's cache and instance dirs."""
        base = "/var/lib/sandbox-nodes/" + name
        dirs = {k: base + "/" + k for k in ("log", "spool", "execute", "lock", "run")}
        cloud = {"cache": base + "/local_cache", "instances": base + "/instances"}
        for d in dirs.values():
            os.makedirs(self.path(d), exist_ok=True)
            self.run(["chown", "condor:condor", d])
        for key, mode in (("cache", 0o2775), ("instances", 0o2771)):
            os.makedirs(self.path(cloud[key]), exist_ok=True)
            self.run(["chown", "condor-cloud:condor-cloud", cloud[key]])
            os.chmod(self.path(cloud[key]), mode)
        os.chmod(self.path(base), 0o755)
        env = dict(self.master_env or {})
        env.update({
            "_CONDOR_DAEMON_LIST": "MASTER STARTD",
            "_CONDOR_MASTER_NAME": name,
            "_CONDOR_STARTD_NAME": name,
            "_CONDOR_LOG": dirs["log"], "_CONDOR_SPOOL": dirs["spool"], "_CONDOR_EXECUTE": dirs["execute"],
            "_CONDOR_LOCK": dirs["lock"], "_CONDOR_RUN": dirs["run"],
            # Without these the second master's startd updates are refused ("Server rejected our session id").
            "_CONDOR_SEC_USE_FAMILY_SESSION": "FALSE",
            "_CONDOR_USE_SHARED_PORT": "FALSE",
            "_CONDOR_CLOUD_IMAGE_CACHE": cloud["cache"],
            "_CONDOR_CLOUD_INSTANCE_DIR": cloud["instances"],
        })
        env.update(extra_env or {})
        self._start("condor_master_" + name, ["/usr/sbin/condor_master", "-f"], env=env)
        self._wait_for("node %s with HasVM" % name, lambda: re.search(
            r"@%s@\S* true" % re.escape(name),
            self.run(["condor_status", "-af", "Name", "HasVM"], check=False).stdout), timeout)
        return cloud

    def wait_ready(self, timeout=180):
        """Wait until a startd ad with HasVM true is visible to condor_status and the schedd answers."""
        end = time.time() + timeout
        last = ""
        while time.time() < end:
            if not _alive(self.state["pids"].get("condor_master", 0)):
                raise SandboxError("condor_master died:\n" + self.log_tail("MasterLog"))
            p = self.run(["condor_status", "-af", "Name", "HasVM", "VMOfflineReason"], check=False)
            last = p.stdout + p.stderr
            if re.search(r"\btrue\b", p.stdout) and self.run(["condor_q", "-totals"], check=False).returncode == 0:
                return
            time.sleep(1)
        raise SandboxError("pool not ready after %ss; condor_status: %s\nStartLog:\n%s" % (
            timeout, last.strip(), self.log_tail("StartLog")))

    # ------------------------------------------------------------------ stop
    def stop(self, keep_logs=None):
        """Stop everything by PID, undo every mount, delete the netns and the run root.  Idempotent; works from
        the state file of a crashed earlier run too.  keep_logs: a host directory to copy the logs to first."""
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
        if master and master in _pids_in_root(root):   # PID still ours (not reused)
            _kill([master], 30)
        # Everything else whose root is the sandbox (starters, vm-gahp, QEMU, libvirtd, virtlogd).
        for _ in range(3):
            rest = _pids_in_root(root)
            if not rest:
                break
            # libvirt last: it cleans up after its QEMUs
            first = [p for p in rest if p not in (pids.get("libvirtd"), pids.get("virtlogd"))]
            _kill(first, 10)
            _kill([p for p in rest if p not in first], 10)
        for mp in _mounts_under(root):
            if subprocess.call(["umount", mp], stderr=subprocess.DEVNULL) != 0:
                subprocess.call(["umount", "-l", mp])
        if state.get("netns") and os.path.exists("/run/netns/" + state["netns"]):
            subprocess.call(["ip", "netns", "del", state["netns"]])
        left = _mounts_under(self.rundir)
        if left:
            raise SandboxError("mounts left under %s: %s" % (self.rundir, left))
        shutil.rmtree(self.rundir, ignore_errors=True)
        self.state = {"root": self.root, "mounts": [], "pids": {}, "netns": None, "copy": False}

    def _keep_logs(self, dest):
        os.makedirs(dest, exist_ok=True)
        for src in ("/var/log/condor", "/var/log/libvirt", "/var/log/sandbox-console"):
            if os.path.isdir(self.path(src)):
                shutil.copytree(self.path(src), os.path.join(dest, src.strip("/").replace("/", "_")),
                                dirs_exist_ok=True)
        for f in os.listdir(self.rundir):
            if f.endswith(".out"):
                shutil.copy(os.path.join(self.rundir, f), dest)

    # ------------------------------------------------------------------ helpers
    def path(self, p):
        """Host path of a path inside the sandbox root."""
        return self.root + "/" + p.lstrip("/")

    def run(self, cmd, user=None, check=True, input=None, timeout=120):
        """Run cmd (list, or str for sh -c) chrooted in the sandbox (in its netns), optionally as user.
        Returns CompletedProcess with text stdout/stderr."""
        if isinstance(cmd, str):
            cmd = ["sh", "-c", cmd]
        if user:
            cmd = ["runuser", "-u", user, "--", "sh", "-c", 'cd "$HOME" && exec "$@"', "sh"] + cmd
        p = subprocess.run(self._prefix() + ["chroot", self.root] + cmd, input=input, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True, env=ENV, timeout=timeout)
        if check and p.returncode != 0:
            raise SandboxError("%s failed (%d):\n%s%s" % (cmd, p.returncode, p.stdout, p.stderr))
        return p

    def submit(self, text, user="alice"):
        """condor_submit a submit description (text) as user; returns the cluster id."""
        p = self.run(["condor_submit", "-terse"], user=user, input=text)
        return int(p.stdout.strip().split(".")[0])

    def condor_q(self, *args):
        return self.run(["condor_q"] + list(args)).stdout

    def job_ad(self, cluster, proc=0):
        """The job's ad (condor_q, else condor_history) as a dict of raw ClassAd expression strings."""
        jid = "%d.%d" % (cluster, proc)
        text = self.run(["condor_q", jid, "-l"], check=False).stdout
        if not text.strip():
            text = self.run(["condor_history", jid, "-l", "-limit", "1"], check=False).stdout
        ad = {}
        for line in text.splitlines():
            if " = " in line:
                k, v = line.split(" = ", 1)
                ad[k.strip()] = v.strip()
        return ad

    def job_status(self, cluster, proc=0):
        ad = self.job_ad(cluster, proc)
        return JOB_STATUS.get(int(ad["JobStatus"])) if "JobStatus" in ad else None

    def wait_job(self, cluster, states=("completed",), timeout=300, proc=0):
        """Wait until the job's status is one of states (names: idle running removed completed held);
        returns the status name; raises SandboxError with the logs' tails on timeout."""
        if isinstance(states, str):
            states = (states,)
        end = time.time() + timeout
        st = None
        while time.time() < end:
            st = self.job_status(cluster, proc)
            if st in states:
                return st
            time.sleep(1)
        raise SandboxError("job %d.%d is %s, not %s after %ss; HoldReason=%s\nStarterLog:\n%s" % (
            cluster, proc, st, states, timeout, self.hold_reason(cluster, proc), self.starter_log()))

    def hold_reason(self, cluster, proc=0):
        v = self.job_ad(cluster, proc).get("HoldReason")
        return v.strip('"') if v else None

    def virsh(self, *args, check=True):
        return self.run(["virsh", "-c", "qemu:///system"] + list(args), check=check).stdout

    def start_network(self, name="default", bridge="virbr0", prefix="192.168.122", timeout=30):
        """Define and start a libvirt network with DHCP (dnsmasq) INSIDE the sandbox's network namespace: the
        test stand-in for a node's NAT network `default` (CLOUD_NETWORK = network:default).

        Forward mode 'open': libvirt adds no NAT, masquerade or filter rules.  An isolated or NAT network cannot
        start here: with libvirt 11's nftables backend every firewalled network with IPv4 DHCP gets a tc
        `action csum` filter on its bridge (to fix DHCP reply checksums) and this kernel has no act_csum
        ("Failed to apply firewall command 'tc filter add dev virbr0 ... action csum ip and udp'").  The guest
        still reaches nothing: the netns has no uplink (only lo and the bridge), IP forwarding in the netns is
        switched back off after libvirt turned it on, and the test guests only ever talk DHCP.  The bridge, its
        address, dnsmasq and libvirt's (empty) nftables tables live in the sandbox's namespace (libvirtd runs
        there) and die with it; refused without a netns.  dnsmasq's root is the sandbox root, so stop() kills
        it by PID like every other sandbox process.
        Returns {"bridge", "address", "dnsmasq_pid"}."""
        if not self.state.get("netns"):
            raise SandboxError("start_network needs the sandbox's own network namespace (netns=True): a libvirt "
                               "bridge must never appear in the host's namespace")
        if not re.match(r"^[a-z][a-z0-9-]{0,14}$", name) or not re.match(r"^[a-z][a-z0-9]{0,14}$", bridge) \
                or not re.match(r"^\d{1,3}\.\d{1,3}\.\d{1,3}$", prefix):
            raise SandboxError("bad network name, bridge or prefix: %r %r %r" % (name, bridge, prefix))
        xml = ("<network>\n"
               "  <name>%(n)s</name>\n"
               "  <forward mode='open'/>\n"
               "  <bridge name='%(b)s' stp='on' delay='0'/>\n"
               "  <ip address='%(p)s.1' netmask='255.255.255.0'>\n"
               "    <dhcp>\n"
               "      <range start='%(p)s.2' end='%(p)s.254'/>\n"
               "    </dhcp>\n"
               "  </ip>\n"
               "</network>\n") % {"n": name, "b": bridge, "p": prefix}
        path = "/tmp/sandbox-network-%s.xml" % name
        with open(self.path(path), "w") as f:
            f.write(xml)
        self.virsh("net-define", path)
        self.virsh("net-start", name)
        # libvirt switched forwarding on (in this netns only): a guest has nowhere to go anyway, make it explicit.
        self.run(["sysctl", "-q", "-w", "net.ipv4.ip_forward=0"])
        pidfile = self.path("/run/libvirt/network/%s.pid" % name)
        self._wait_for("dnsmasq of network %s" % name, lambda: os.path.exists(pidfile), timeout)
        with open(pidfile) as f:
            pid = int(f.read().strip())
        if pid not in _pids_in_root(self.root):
            raise SandboxError("dnsmasq (PID %d) of network %s does not run in the sandbox root" % (pid, name))
        if os.stat("/proc/%d/ns/net" % pid).st_ino != os.stat("/run/netns/" + self.netns).st_ino:
            raise SandboxError("dnsmasq (PID %d) of network %s is not in netns %s" % (pid, name, self.netns))
        self.state["pids"]["dnsmasq-" + name] = pid
        self._save()
        return {"bridge": bridge, "address": prefix + ".1", "dnsmasq_pid": pid}

    def start_bridge(self, bridge="br0", prefix="10.77.0", timeout=30):
        """A plain Linux bridge with a DHCP server (dnsmasq, not libvirt's) INSIDE the sandbox's network namespace:
        the test stand-in for a site's bridged LAN (CLOUD_NETWORK = bridge:br0, as in docs/fedora_install.txt).
        The node has an address on the bridge, as a node on a bridged LAN does; the netns has no uplink.
        dnsmasq runs in the foreground under the sandbox's PID bookkeeping, so stop() kills it by PID; the
        bridge dies with the namespace.  Returns {"bridge", "address", "dnsmasq_pid", "leases"}."""
        if not self.state.get("netns"):
            raise SandboxError("start_bridge needs the sandbox's own network namespace (netns=True)")
        if not re.match(r"^[a-z][a-z0-9]{0,14}$", bridge) or not re.match(r"^\d{1,3}\.\d{1,3}\.\d{1,3}$", prefix):
            raise SandboxError("bad bridge name or prefix: %r %r" % (bridge, prefix))
        self.run(["ip", "link", "add", bridge, "type", "bridge"])
        self.run(["ip", "addr", "add", prefix + ".1/24", "dev", bridge])
        self.run(["ip", "link", "set", bridge, "up"])
        leases = "/run/sandbox-dnsmasq-%s.leases" % bridge
        p = self._start("dnsmasq-" + bridge, [
            "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0", "--bind-interfaces",
            "--interface=" + bridge, "--except-interface=lo", "--dhcp-authoritative",
            "--dhcp-range=%s.10,%s.99,255.255.255.0,1h" % (prefix, prefix), "--dhcp-leasefile=" + leases,
            "--pid-file="])
        self._wait_for("dnsmasq on %s" % bridge, lambda: p.poll() is not None or ":67 " in self.run(
            ["ss", "-lunp"], check=False).stdout, timeout)
        if p.poll() is not None:
            raise SandboxError("dnsmasq on %s exited (%s):\n%s" % (bridge, p.returncode, open(os.path.join(
                self.rundir, "dnsmasq-%s.out" % bridge)).read()))
        return {"bridge": bridge, "address": prefix + ".1", "dnsmasq_pid": p.pid, "leases": leases}

    def start_api(self, passwords, admins=(), port=3002, timeout=60):
        """Start the API (condor_cloud.master.api.server under gunicorn) in the sandbox as the account condor-cloud-api,
        on 127.0.0.1:port of the sandbox's namespace, with the users of passwords ({name: password}; those in
        admins get the admin role); its PID is recorded, so stop() kills it. Waits until it answers.

        It serves HTTPS, as installed, with the certificate the product's own `condor-cloud api-cert create`
        makes for this host (names: the host's, localhost, 127.0.0.1, ::1). Records state["api"]: "url"
        (https://127.0.0.1:port), "cafile" (a host copy of the certificate, for curl --cacert, urllib, requests),
        "sha256" (its fingerprint) and "spki" (base64 SHA-256 of its public key, for Chromium's
        --ignore-certificate-errors-spki-list); returns the server's PID."""
        if self.run(["getent", "passwd", "condor-cloud-api"], check=False).returncode != 0:
            self.run(["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin",
                      "condor-cloud-api"])
        self.run(["mkdir", "-p", "/etc/condor-cloud", "/var/lib/condor-cloud/keys"])
        self.run(["chown", "condor-cloud-api:condor-cloud-api", "/var/lib/condor-cloud/keys"])
        # Every test module of a session shares this sandbox and starts the API: users made by an earlier start
        # get their password set again instead.
        listed = self.run(["python3", "-m", "condor_cloud.master.cli", "user", "list", "--json"], check=False)
        existing = [u["name"] for u in json.loads(listed.stdout)] if listed.returncode == 0 else []
        for name, password in passwords.items():
            if name in existing:
                self.run(["python3", "-m", "condor_cloud.master.cli", "user", "passwd", name, "--password-stdin"],
                         input=password + "\n")
                continue
            self.run(["python3", "-m", "condor_cloud.master.cli", "user", "add", name, "--password-stdin"]
                     + (["--admin"] if name in admins else []), input=password + "\n")
        self.run(["chgrp", "condor-cloud-api", "/etc/condor-cloud/users"])
        # What the unit's ExecStartPre runs (kept if an earlier start_api made it).
        cert = json.loads(self.run(["python3", "-m", "condor_cloud.master.cli", "api-cert", "create", "--if-missing",
                                    "--json"]).stdout)
        cafile = os.path.join(self.rundir, "api.crt")
        shutil.copyfile(self.path(cert["certificate"]), cafile)
        os.chmod(cafile, 0o644)
        p = self._start("condor-cloud-api", ["runuser", "-u", "condor-cloud-api", "--", "python3", "-m",
                                             "condor_cloud.master.api.server"],
                        env={"_CONDOR_CLOUD_API_LISTEN": "127.0.0.1:%d" % port})
        probe = ("import ssl, urllib.request as u; u.urlopen('https://127.0.0.1:%d/api', timeout=5, "
                 "context=ssl.create_default_context(cafile=%r))" % (port, cert["certificate"]))
        self._wait_for("the API on port %d" % port, lambda: p.poll() is not None or self.run(
            ["python3", "-c", probe], check=False).returncode == 0, timeout)
        if p.poll() is not None:
            raise SandboxError("the API exited (%s):\n%s" % (p.returncode, open(os.path.join(
                self.rundir, "condor-cloud-api.out"), errors="replace").read()[-3000:]))
        self.state["api"] = {"url": "https://127.0.0.1:%d" % port, "cafile": cafile,
                             "sha256": cert["sha256_fingerprint"], "spki": cert["public_key_pin"][len("sha256//"):]}
        self._save()
        return p.pid

    def start_ec2(self, port=8773, timeout=60):
        """Start the EC2 Query API (condor_cloud.master.ec2.server under gunicorn) as condor-cloud-api on 127.0.0.1:port,
        serving HTTPS with the certificate start_api made (call start_api first: users, certificate); its PID is
        recorded, so stop() kills it. Records state["ec2"] = {"url", "cafile"}; returns the server's PID. Access
        keys: ec2_access_key(user)."""
        if "api" not in self.state:
            raise SandboxError("start_api first: the EC2 API uses its users and its certificate")
        self.run(["install", "-d", "-m", "0750", "-o", "condor-cloud-api", "-g", "condor-cloud-api",
                  "/var/lib/condor-cloud/ec2"])
        p = self._start("condor-cloud-ec2", ["runuser", "-u", "condor-cloud-api", "--", "python3", "-m",
                                             "condor_cloud.master.ec2.server"],
                        env={"_CONDOR_CLOUD_EC2_LISTEN": "127.0.0.1:%d" % port})
        # An unsigned request answers 401 (AuthFailure) once the server is up.
        probe = ("import ssl, urllib.request as u, urllib.error as e\ntry:\n u.urlopen('https://127.0.0.1:%d/', "
                 "timeout=5, context=ssl.create_default_context(cafile='/etc/condor-cloud/tls/api.crt'))\n"
                 "except e.HTTPError as x:\n raise SystemExit(0 if x.code == 401 else 1)\nraise SystemExit(1)" % port)
        self._wait_for("the EC2 API on port %d" % port, lambda: p.poll() is not None or self.run(
            ["python3", "-c", probe], check=False).returncode == 0, timeout)
        if p.poll() is not None:
            raise SandboxError("the EC2 API exited (%s):\n%s" % (p.returncode, open(os.path.join(
                self.rundir, "condor-cloud-ec2.out"), errors="replace").read()[-3000:]))
        self.state["ec2"] = {"url": "https://127.0.0.1:%d" % port, "cafile": self.state["api"]["cafile"]}
        self._save()
        return p.pid

    def ec2_access_key(self, user):
        """A new EC2 access key of user, made with `condor-cloud user access-key create`: {"id", "secret", ...}."""
        return json.loads(self.run(["python3", "-m", "condor_cloud.master.cli", "user", "access-key", "create", user,
                                    "--json"]).stdout)

    def network_leases(self, name="default"):
        """DHCP leases of a libvirt network: [{"mac", "ip", "hostname"}] from `virsh net-dhcp-leases`."""
        out = self.virsh("net-dhcp-leases", name)
        leases = []
        for line in out.splitlines():
            m = re.search(r"\s((?:[0-9a-f]{2}:){5}[0-9a-f]{2})\s+ipv4\s+(\d+\.\d+\.\d+\.\d+)/\d+\s+(\S+)", line)
            if m:
                leases.append({"mac": m.group(1), "ip": m.group(2), "hostname": m.group(3)})
        return leases

    def put_image(self, name, src, store=STORE):
        """Copy src (host path) into the image store as name (world-readable, as the store requires)."""
        dest = self.path(store + "/" + name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copyfile(src, dest)
        os.chmod(dest, 0o644)
        return store + "/" + name

    def log_tail(self, name, lines=40):
        p = self.path("/var/log/condor/" + name)
        if not os.path.exists(p):
            return "(no %s)" % name
        with open(p, errors="replace") as f:
            return "".join(f.readlines()[-lines:])

    def starter_log(self, lines=60):
        d = self.path("/var/log/condor")
        names = sorted(n for n in os.listdir(d) if n.startswith("StarterLog")) if os.path.isdir(d) else []
        return "\n".join("== %s\n%s" % (n, self.log_tail(n, lines)) for n in names) or "(no StarterLog)"

    def console(self, vm_name):
        """What the guest printed (serial file of the test XML script)."""
        p = self.path("/var/log/sandbox-console/%s.log" % vm_name)
        return open(p, errors="replace").read() if os.path.exists(p) else ""


def main(argv=None):
    ap = argparse.ArgumentParser(description="condor-cloud test sandbox (a real HTCondor VM pool)")
    ap.add_argument("action", choices=["up", "down", "status", "shell"])
    ap.add_argument("--name", default="default")
    ap.add_argument("--no-project", action="store_true", help="plain HTCondor VM pool, repo not installed")
    ap.add_argument("--no-netns", action="store_true", help="use the host's loopback")
    ap.add_argument("--user", default=None, help="shell: run as this user")
    a = ap.parse_args(argv)
    sb = Sandbox(a.name, install_project=not a.no_project, netns=not a.no_netns)
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
            with open(sb.statefile) as f:
                sb.state = json.load(f)
            print(json.dumps(sb.state, indent=1))
            p = sb.run(["condor_status", "-af", "Name", "HasVM", "CloudCachedImages"], check=False)
            print(p.stdout + p.stderr)
        elif a.action == "shell":
            with open(sb.statefile) as f:
                sb.state = json.load(f)
            cmd = sb._prefix() + ["chroot", sb.root] + (["runuser", "-l", a.user] if a.user else ["/bin/bash", "-l"])
            os.execvpe(cmd[0], cmd, ENV)
    except (SandboxError, OSError) as e:
        print("sandbox: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
