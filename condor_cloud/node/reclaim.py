"""What may be reclaimed on a node, for the periodic cleanup (node/as_condor/cleanup.py) and the prepare hook:
orphaned instances, dead cache fills, cache entries no instance uses.

Nothing is removed or evicted while something uses it, whatever state the bookkeeping files are in: what is in
use comes from what the system says (libvirt's running domains and the files of their disks' chains, the
recorded starter's pid and start time, the lock a running prepare hook holds on its instance directory, the
image locks of the cache), and an instance.json that cannot be read means "keep it and log it", never "remove".

An orphan's console log goes with it; other old console logs are pruned by the prepare hook (console_log.prune,
as condor-cloud)."""

import fcntl
import functools
import os
import struct
import sys
import time

from condor_cloud.core import processes
from condor_cloud.node import console_log, instance_dirs
from condor_cloud.node.cache import FILL_PREFIX
from condor_cloud.core.errors import CloudError

LOG_PREFIX = "condor-cloud cleanup: "


def running_domains(hypervisor, log=sys.stderr):
    """hypervisor.running_domains(), or None (logged) when libvirt does not answer: then nothing that holds a
    disk is removed and nothing is evicted."""
    try:
        return list(hypervisor.running_domains())
    except Exception as exc:  # libvirt down, connection refused, ...: what runs is unknown
        log.write(LOG_PREFIX + "cannot list libvirt's running domains (%s): no instance directory holding disks is "
                  "removed and no cache entry evicted until libvirt answers\n" % exc)
        return None


def _forms(path):
    """A path as written and resolved (an instance records paths through CLOUD_* settings, which may name a
    symlinked directory; libvirt reports what the domain XML said)."""
    return {os.path.normpath(path), os.path.realpath(path)}


@functools.lru_cache(maxsize=1024)
def _domain_files(domain):
    """Every file of a domain, as reported and resolved (cached: one cleanup run asks for every directory)."""
    found = set()
    for f in domain.files:
        found |= _forms(f)
    return found


def domains_using_dir(domains, directory):
    """The domains with a disk file (or backing file) inside directory."""
    roots = {d.rstrip("/") + "/" for d in _forms(directory)}
    return [d for d in domains if any(f.startswith(r) for f in _domain_files(d) for r in roots)]


# -- the prepare hook's lock on its instance directory -------------------------------------------------------
def hold_prepare_lock(path):
    """Lock the instance directory at path for as long as the returned descriptor stays open (the prepare hook
    keeps it until it exits): prepare_running(path) is then True."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd


def prepare_running(path):
    """True when a prepare hook still holds the lock of the instance directory at path (or it cannot be told)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also releases the lock just taken
    return False


# -- what an instance directory says about itself ---------------------------------------------------------
def _binding(instance):
    """True when instance (an Instance or the CloudError of loading it) records whom it belongs to: a starter
    pid and the domain's UUID (a readable instance.json can still lack them)."""
    if not isinstance(instance, instance_dirs.Instance):
        return False
    meta = instance.meta
    starter = meta.get("starter")
    return (isinstance(starter, dict) and isinstance(starter.get("pid"), int) and 1 < starter["pid"] < 1 << 31
            and isinstance(meta.get("uuid"), str) and isinstance(meta.get("bases", []), list))


def _only_bookkeeping(path):
    """True when the directory holds nothing but instance.json or its temporary file: no disk any domain could
    use (a prepare killed before it made one)."""
    try:
        return set(os.listdir(path)) <= {instance_dirs.META, instance_dirs.TMP_META}
    except FileNotFoundError:
        return True
    except OSError:
        return False


def _why(instance, what="starter or domain"):
    return instance.message if isinstance(instance, CloudError) else "its %s names no %s" % (instance_dirs.META, what)


def _age(path, now):
    try:
        return now - os.stat(path).st_mtime
    except FileNotFoundError:
        return None


def reclaim_orphans(settings, hypervisor, now=None, log=sys.stderr):
    """Remove the instance directories nothing uses any more; returns the removed ids.

    Kept: a directory with a file that a running domain uses, one whose prepare hook still runs, one whose
    recorded starter (pid + start time) runs. Reclaimed: an orphan, whose starter is gone (its domain destroyed
    first), and after CLOUD_ORPHAN_GRACE a directory holding nothing but bookkeeping (a prepare killed before it
    made a disk). A directory whose instance.json cannot be read and that holds disks is kept and logged: nothing
    tells whose it is, so only the administrator may remove it."""
    now = time.time() if now is None else now
    domains = running_domains(hypervisor, log)
    removed = []
    for instance_id, instance in instance_dirs.scan(settings.instance_dir):
        try:
            if _reclaim(settings, hypervisor, instance_id, instance, domains, now, log):
                removed.append(instance_id)
        except CloudError as exc:  # e.g. a directory that cannot be removed: the next run tries again
            log.write(LOG_PREFIX + "%s\n" % exc.message)
    return removed


def _reclaim(settings, hypervisor, instance_id, instance, domains, now, log):
    """Reclaim one instance directory if nothing uses it; True when it was removed."""
    path = os.path.join(settings.instance_dir, instance_id)
    users = domains_using_dir(domains or [], path)
    if not _binding(instance):
        if prepare_running(path):
            return False
        if users or not _only_bookkeeping(path):
            log.write(LOG_PREFIX + "instance directory %s is kept: %s, and it holds disks%s; remove it by hand once "
                      "no domain uses them\n" % (path, _why(instance), " that domain %s (%s) uses"
                                                  % (users[0].name, users[0].uuid) if users else ""))
            return False
        age = _age(path, now)
        if age is None or age <= settings.orphan_grace:
            return False
        instance_dirs.remove(settings.instance_dir, instance_id)
        return True
    if instance.starter_alive():
        return False
    if domains is None:
        return False  # running_domains logged why
    if prepare_running(path):
        return False  # its starter was killed, its prepare hook still runs (CLOUD_PREPARE_TIMEOUT bounds it)
    domain_uuid = instance.meta["uuid"]
    try:
        hypervisor.destroy(domain_uuid)
    except Exception as exc:  # libvirt unreachable: keep the directory, its domain may still run
        log.write(LOG_PREFIX + "cannot destroy domain of orphan %s: %s\n" % (instance_id, exc))
        return False
    others = [d for d in users if d.uuid != domain_uuid]
    if others:
        log.write(LOG_PREFIX + "orphan %s is kept: domain %s (%s) still uses its disks\n"
                  % (instance_id, others[0].name, others[0].uuid))
        return False
    instance_dirs.remove(settings.instance_dir, instance_id)
    # Its console log too: the node cannot tell an instance destroyed while it was down from one lost in a crash,
    # and a destroyed instance leaves nothing (a restarted one gets a new id and a new log).
    console_log.remove(settings.console_dir, instance_id)
    return True


# -- the cache entries in use ----------------------------------------------------------------------------
class _Everything:
    """What eviction is told when what is in use cannot be known: every entry (nothing is evicted)."""

    def __contains__(self, filename):
        return True


EVERYTHING = _Everything()
_QCOW2_MAGIC = b"QFI\xfb"


def overlay_backing(path):
    """The backing file a qcow2 overlay's header names ('' when none). Raises OSError or ValueError when the
    header cannot be read."""
    with open(path, "rb") as f:
        head = f.read(20)
        if len(head) < 20 or head[:4] != _QCOW2_MAGIC:
            raise ValueError("%s is not a qcow2 image" % path)
        offset, size = struct.unpack(">QI", head[8:20])
        if not offset:
            return ""
        if size > 1023:
            raise ValueError("%s names a backing file longer than qcow2 allows" % path)
        f.seek(offset)
        name = f.read(size)
    if len(name) != size:
        raise ValueError("%s has a truncated header" % path)
    return os.fsdecode(name)


def entries_in_use(instance_dir, cache_root, domains=(), log=sys.stderr):
    """The cache entry file names in use: those every instance directory records (instance.json "bases"; when
    it cannot be read, the backing files its overlays' headers name) and those in running domains' disk chains.
    EVERYTHING when an instance directory tells neither: then nothing is evicted."""
    used = set()
    cache_dirs = _forms(cache_root)
    for domain in domains:
        for f in _domain_files(domain):
            if os.path.dirname(f) in cache_dirs:
                used.add(os.path.basename(f))
    for instance_id, instance in instance_dirs.scan(instance_dir):
        bases = instance.meta.get("bases") if isinstance(instance, instance_dirs.Instance) else None
        if isinstance(bases, list):  # recorded under the image's lock before the overlay is made
            used.update(b for b in bases if isinstance(b, str))
            continue
        path = os.path.join(instance_dir, instance_id)
        try:
            names = os.listdir(path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.write(LOG_PREFIX + "evicting nothing: cannot list %s (%s)\n" % (path, exc.strerror))
            return EVERYTHING
        for name in names:
            if not name.endswith(".qcow2"):
                continue
            try:
                backing = overlay_backing(os.path.join(path, name))
            except FileNotFoundError:
                continue
            except (OSError, ValueError) as exc:
                log.write(LOG_PREFIX + "evicting nothing: %s (%s), and the base of overlay %s cannot be read (%s)\n"
                          % (path, _why(instance, "bases"), name, getattr(exc, "strerror", None) or exc))
                return EVERYTHING
            if backing:
                used.add(os.path.basename(backing))
    return used


def remove_dead_fills(cache_root, now, grace):
    """Remove temporary fill files left by a killed process (their pid is gone and they are old)."""
    try:
        names = os.listdir(cache_root)
    except FileNotFoundError:
        return []
    removed = []
    for name in names:
        if not name.startswith(FILL_PREFIX):
            continue
        pid = name.rpartition(".")[2]
        alive = pid.isdigit() and processes.process_start_time(int(pid)) is not None
        path = os.path.join(cache_root, name)
        try:
            old = now - os.stat(path).st_mtime > grace
        except FileNotFoundError:
            continue
        if not alive and old:
            try:
                os.unlink(path)
                removed.append(name)
            except FileNotFoundError:
                pass
    return removed


