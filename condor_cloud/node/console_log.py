"""Serial console logs on a node: where an instance's console log lives, and who makes and prunes it.

On the node, libvirt's virtlogd writes the serial console to CLOUD_CONSOLE_DIR/<instance id>.log (virtlogd caps
its size). The prepare hook creates that file first, owned by the execute account, and hard-links it into the
job's sandbox as `console.log`. virtlogd runs as root and follows whatever it finds at that name, so the directory
is writable by the execute account and its group only (condor-cloud, mode 2770; the group's one other member is
condor, whose cleanup removes an orphaned instance's log): no user's account can plant a symlink there.
The same account prunes old logs (prune). The owner then reads it from the submit side with `condor_tail <job>`
(HTCondor's STARTER_PEEK: only the job's owner, only the job's output file in its sandbox, which the master's
CloudConsole transform sets to console.log for VM jobs, with TransferOut = false). `condor-cloud instance console` and the
API's console link do exactly that (condor_cloud/master/console.py).
"""

import errno
import os
import re
import time


SANDBOX_NAME = "console.log"


def log_path(console_dir, instance_id):
    """The node's console log of an instance (what the domain XML gives virtlogd)."""
    return os.path.join(console_dir, instance_id + ".log")


def prepare(console_dir, instance_id, scratch_dir, keep=None):
    """Create the instance's console log (mode 0640, owned by the caller) and link it into the job's sandbox as
    console.log; first prune logs not written for keep seconds (None: no pruning). Never raises: a console problem
    must not stop an instance. Returns a short note on what was done, for the StarterLog."""
    if keep is not None:
        prune(console_dir, time.time(), keep)
    path = log_path(console_dir, instance_id)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
        os.close(fd)
    except OSError as exc:
        return _placeholder(scratch_dir, "the node could not create %s (%s)" % (path, exc.strerror))
    if not scratch_dir:
        return "console log %s (no sandbox to link it into)" % path
    try:
        os.link(path, os.path.join(scratch_dir, SANDBOX_NAME))
    except OSError as exc:
        why = ("CLOUD_CONSOLE_DIR is not on the same filesystem as HTCondor's EXECUTE directory"
               if exc.errno == errno.EXDEV else exc.strerror)
        return _placeholder(scratch_dir, "its console log is kept on the node in %s, but could not be linked "
                                         "into the job's sandbox: %s" % (path, why))
    return "console log %s, linked into the sandbox as %s" % (path, SANDBOX_NAME)


_LOG_RE = re.compile(r".+\.log(\.[0-9]{1,3})?")


def prune(console_dir, now, keep):
    """Remove console logs (<id>.log and virtlogd's rotated <id>.log.N) not written for keep seconds (logs outlive
    their instance so that a failed boot can be read afterwards). The execute account prunes, from the prepare
    hook. Returns the removed names; never raises."""
    removed = []
    try:
        names = os.listdir(console_dir)
    except OSError:
        return removed
    for name in names:
        if name.startswith(".") or not _LOG_RE.fullmatch(name):
            continue
        path = os.path.join(console_dir, name)
        try:
            st = os.stat(path, follow_symlinks=False)
            if now - st.st_mtime > keep:
                os.unlink(path)
                removed.append(name)
        except OSError:
            pass
    return removed


def remove(console_dir, instance_id):
    """Remove an instance's console log and virtlogd's rotations of it (a destroyed instance leaves nothing).
    Returns the removed names; never raises."""
    removed = []
    base = os.path.basename(log_path(console_dir, instance_id))
    try:
        names = os.listdir(console_dir)
    except OSError:
        return removed
    for name in names:
        if name == base or (name.startswith(base + ".") and name[len(base) + 1:].isdigit()):
            try:
                os.unlink(os.path.join(console_dir, name))
                removed.append(name)
            except OSError:
                pass
    return removed


def _placeholder(scratch_dir, why):
    """A console.log that says why the real log cannot be read from here (so that condor_tail explains it)."""
    if scratch_dir:
        try:
            with open(os.path.join(scratch_dir, SANDBOX_NAME), "x") as f:
                f.write("condor-cloud: the console of this instance cannot be shown here: %s\n" % why)
        except OSError:
            pass
    return "no readable console: " + why


