"""Processes as the kernel records them (/proc): start times and parents, so that a pid recorded earlier can be
recognised as the same process (a pid alone can be reused)."""

import os



def process_start_time(pid):
    """The kernel's start time of pid (clock ticks since boot), or None if there is no such process."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # Field 22; the command name (field 2) may contain spaces and parentheses, so split after its last ')'.
    fields = data[data.rindex(b")") + 2:].split()
    return int(fields[19])


def parent_pid(pid):
    """The parent pid of pid (from /proc), or None if there is no such process."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(data[data.rindex(b")") + 2:].split()[1])


def ancestors(pid=None):
    """pid (default: this process) and its ancestors up to, not including, pid 1, nearest first."""
    pid = os.getpid() if pid is None else pid
    found = []
    while pid and pid > 1 and pid not in found and len(found) < 64:
        found.append(pid)
        pid = parent_pid(pid)
    return found
