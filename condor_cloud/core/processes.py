"""Processes as the kernel records them (/proc): start times and parents, so that a pid recorded earlier can be
recognised as the same process (a pid alone can be reused)."""

import os


def _stat_fields(pid):
    """The fields of /proc/<pid>/stat after the command name (field 3 onwards), or None if there is no such
    process. The command name (field 2) may contain spaces and parentheses, so the split is after its last ')'."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return data[data.rindex(b")") + 2:].split()


def process_start_time(pid):
    """The kernel's start time of pid (clock ticks since boot, field 22), or None if there is no such process."""
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[19])


def parent_pid(pid):
    """The parent pid of pid (field 4), or None if there is no such process."""
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[1])


def ancestors(pid=None):
    """pid (default: this process) and its ancestors up to, not including, pid 1, nearest first."""
    pid = os.getpid() if pid is None else pid
    found = []
    while pid and pid > 1 and pid not in found and len(found) < 64:
        found.append(pid)
        pid = parent_pid(pid)
    return found
