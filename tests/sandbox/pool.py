"""The HTCondor pool in the sandbox: its test configuration, its daemons (virtlogd, libvirtd, condor_master; more
execute nodes), stopping and restarting one daemon, and its logs.  Functions of a chroot.Chroot (or Sandbox)."""
import contextlib
import os
import re

from errors import SandboxError
from host import alive
from wait import wait_for

# Test-only overlay on top of the project's config.d: a loopback pool, fast cycles, TCG, no network.
SANDBOX_CONFIG = """\
# tests/sandbox: test-only settings (written by tests/sandbox/pool.py; never shipped)
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
CONFIG_FILE = "/etc/condor/config.d/99sandbox.config"


def write_config(run, extra_config=""):
    """SANDBOX_CONFIG plus extra_config as the last file of config.d."""
    with open(run.path(CONFIG_FILE), "w") as f:
        f.write(SANDBOX_CONFIG + extra_config)


def start(run, master_env=None, timeout=180):
    """Start libvirt and the pool's condor_master; wait until the pool is ready (see wait_ready)."""
    # virtlogd before libvirtd, else domain start fails (virtlogd-sock missing); foreground, so PID is known.
    run.start("virtlogd", ["/usr/sbin/virtlogd"])
    wait_for("virtlogd's socket", lambda: os.path.exists(run.path("/run/libvirt/virtlogd-sock")), 30, interval=0.3)
    run.start("libvirtd", ["/usr/sbin/libvirtd"])
    wait_for("libvirtd's socket", lambda: os.path.exists(run.path("/run/libvirt/libvirt-sock")), 30, interval=0.3)
    run.start("condor_master", ["/usr/sbin/condor_master", "-f"], env=master_env)
    wait_ready(run, timeout)


def wait_ready(run, timeout=180):
    """Wait until a startd ad with HasVM true is visible to condor_status and the schedd answers."""
    def ready():
        if not alive(run.state["pids"].get("condor_master", 0)):
            raise SandboxError("condor_master died:\n" + log_tail(run, "MasterLog"))
        p = run.run(["condor_status", "-af", "Name", "HasVM", "VMOfflineReason"], check=False)
        if re.search(r"\btrue\b", p.stdout) and run.run(["condor_q", "-totals"], check=False).returncode == 0:
            return True
        return (p.stdout + p.stderr).strip() or "(condor_status printed nothing)"

    wait_for("the pool (a startd with HasVM true, a schedd that answers)", ready, timeout,
             accept=lambda value: value is True, explain=lambda: "StartLog:\n" + log_tail(run, "StartLog"))


def add_node(run, name, master_env=None, timeout=120, extra_env=None):
    """Start a second execute node in the same root: its own condor_master + startd named `name`, with its own
    log/spool/execute dirs and its own CLOUD_IMAGE_CACHE and CLOUD_INSTANCE_DIR, configured only through _CONDOR_*
    environment variables (the hooks and the cron inherit them from its master; a separate CONDOR_CONFIG would be
    overridden by config.d); extra_env adds more of them (e.g. {"_CONDOR_CLOUD_NETWORK": "bridge:br0"}). Its
    master's PID is recorded as condor_master_<name>. Returns the node's cache and instance dirs."""
    base = "/var/lib/sandbox-nodes/" + name
    dirs = {k: base + "/" + k for k in ("log", "spool", "execute", "lock", "run")}
    cloud = {"cache": base + "/local_cache", "instances": base + "/instances"}
    for d in dirs.values():
        os.makedirs(run.path(d), exist_ok=True)
        run.run(["chown", "condor:condor", d])
    for key, mode in (("cache", 0o2775), ("instances", 0o2771)):
        os.makedirs(run.path(cloud[key]), exist_ok=True)
        run.run(["chown", "condor-cloud:condor-cloud", cloud[key]])
        os.chmod(run.path(cloud[key]), mode)
    os.chmod(run.path(base), 0o755)
    env = dict(master_env or {})
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
    run.start("condor_master_" + name, ["/usr/sbin/condor_master", "-f"], env=env)
    wait_for("node %s with HasVM" % name, lambda: re.search(
        r"@%s@\S* true" % re.escape(name), run.run(["condor_status", "-af", "Name", "HasVM"], check=False).stdout),
        timeout, interval=0.3)
    return cloud


@contextlib.contextmanager
def schedd_off(run, timeout=120):
    """The pool without its schedd for the body of a with statement: `condor_off -daemon schedd` (the master stops
    it gracefully and keeps it off), then `condor_on -daemon schedd` and a wait until it answers again, also when
    the body fails.  The queue survives (the schedd's job log); wait for running jobs to leave first if they must
    not be disturbed."""
    run.run(["condor_off", "-daemon", "schedd"])
    try:
        wait_for("the schedd to stop", lambda: run.run(["condor_q", "-totals"], check=False).returncode != 0,
                 timeout, explain=lambda: log_tail(run, "MasterLog"))
        yield
    finally:
        run.run(["condor_on", "-daemon", "schedd"])
        wait_for("the schedd to answer again", lambda: run.run(["condor_q", "-totals"], check=False).returncode == 0,
                 timeout, explain=lambda: log_tail(run, "MasterLog") + log_tail(run, "SchedLog"))


def log_tail(run, name, lines=40):
    """The last lines of the pool's log name (/var/log/condor/<name>)."""
    p = run.path("/var/log/condor/" + name)
    if not os.path.exists(p):
        return "(no %s)" % name
    with open(p, errors="replace") as f:
        return "".join(f.readlines()[-lines:])


def starter_log(run, lines=60):
    """The last lines of every StarterLog of the pool."""
    d = run.path("/var/log/condor")
    names = sorted(n for n in os.listdir(d) if n.startswith("StarterLog")) if os.path.isdir(d) else []
    return "\n".join("== %s\n%s" % (n, log_tail(run, n, lines)) for n in names) or "(no StarterLog)"
