"""Host-side primitives of the sandbox: running a host command, and finding and ending the sandbox's processes and
mounts.  Processes are found by PID and by their root directory (/proc/PID/root), never by name: other pools (and
other people's processes) run on the same machine."""
import os
import signal
import subprocess

from errors import SandboxError, WaitTimeout
from wait import wait_for


def sh(cmd, check=True, **kw):
    """Run a host command (list), capture text output."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, **kw)
    if check and p.returncode != 0:
        # both streams: make prints the failing recipe's output on stdout and only "Error 1" on stderr
        raise SandboxError("%s failed (%d):\n%s" % (" ".join(cmd), p.returncode,
                                                    (p.stdout[-3000:] + p.stderr[-3000:]).strip()))
    return p


def mounts_under(path):
    """Mount points at or below path, deepest first (from /proc/self/mounts)."""
    found = []
    with open("/proc/self/mounts") as f:
        for line in f:
            mp = line.split()[1].replace("\\040", " ")
            if mp == path or mp.startswith(path + "/"):
                found.append(mp)
    return sorted(set(found), key=lambda m: m.count("/"), reverse=True)


def pids_in_root(root):
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


def alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[-1][0] != "Z"
    except OSError:
        return False


def kill(pids, timeout):
    """TERM the PIDs, wait up to timeout seconds for them to end, KILL the rest."""
    pids = [p for p in pids if alive(p)]
    for p in pids:
        _signal(p, signal.SIGTERM)
    try:
        wait_for("PIDs %s to end after SIGTERM" % pids, lambda: not any(alive(p) for p in pids), timeout,
                 interval=0.2)
    except WaitTimeout:
        for p in pids:
            if alive(p):
                _signal(p, signal.SIGKILL)


def _signal(pid, sig):
    try:
        os.kill(pid, sig)
    except OSError:
        pass
