"""Per-instance directories: CLOUD_INSTANCE_DIR/<id>/ holds the overlays, the cloud-init seed and instance.json.

instance.json names the starter process that owns the instance (pid + kernel start time, so a reused pid is not
mistaken for it, and the starter's scratch directory), the cache entries it uses and the libvirt domain's UUID.
An instance whose starter is gone is an orphan: the cleanup destroys its domain and removes its directory.

Binding (why it exists: docs/DESIGN.txt, "Threat model"): a hook never takes an instance's identity from the job
ad, which the job's owner controls. It finds "its" instance by what the node itself recorded when the prepare hook
made it: the starter that runs the hook (its pid and kernel start time: the hook's parent, or for the root-run XML
script an ancestor) and that starter's scratch directory. See Starter, find_bound and find_for_xml_script.
"""

import contextlib
import errno
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from typing import Optional

from condor_cloud.core import errors
from condor_cloud.core.errors import CloudError
from condor_cloud.core.processes import ancestors, process_start_time

META = "instance.json"
TMP_META = ".%s.tmp" % META   # Instance.save writes this, then renames it to META
_ID_RE = re.compile(r"[0-9]{1,10}\.[0-9]{1,10}-[0-9a-f]{8}")


def check_instance_id(instance_id):
    if not isinstance(instance_id, str) or not _ID_RE.fullmatch(instance_id):
        raise CloudError("bad instance id %r" % (instance_id,), errors.BAD_REQUEST)
    return instance_id


def new_instance_id(cluster, proc):
    return "%d.%d-%s" % (cluster, proc, os.urandom(4).hex())


def new_uuid():
    """A random (version 4) UUID string, without importing uuid (a per-job hook pays for every import)."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])


def scratch_dir():
    """The job's scratch directory as HTCondor gives it to hooks (_CONDOR_SCRATCH_DIR, else the cwd), resolved."""
    return os.path.realpath(os.environ.get("_CONDOR_SCRATCH_DIR") or os.getcwd())


@dataclass(frozen=True)
class Starter:
    """The condor_starter a hook runs for, as the node sees it: pid, kernel start time, scratch directory."""
    pid: int
    start_time: Optional[int]
    scratch: str

    @classmethod
    def of(cls, pid, scratch=None):
        """The starter with this pid (a hook's parent) and scratch directory (default: scratch_dir())."""
        return cls(pid, process_start_time(pid), os.path.realpath(scratch) if scratch else scratch_dir())

    def record(self):
        return {"pid": self.pid, "start_time": self.start_time, "scratch": self.scratch}


class Instance:
    def __init__(self, root, instance_id, meta):
        self.root = root
        self.id = instance_id
        self.path = os.path.join(root, instance_id)
        self.meta = meta

    def overlay_path(self, device):
        return os.path.join(self.path, "%s.qcow2" % device)

    def save(self):
        """Replace instance.json atomically; on failure (a full disk) the old one stays and no temp file does."""
        tmp = os.path.join(self.path, TMP_META)
        try:
            with open(tmp, "w") as f:
                json.dump(self.meta, f, indent=1, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, os.path.join(self.path, META))
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise write_error(exc, "cannot write %s of instance %s" % (META, self.id)) from None

    def add_base(self, filename):
        self.meta.setdefault("bases", []).append(filename)
        self.save()

    def starter_alive(self):
        starter = self.meta.get("starter") or {}
        pid, started = starter.get("pid"), starter.get("start_time")
        if not isinstance(pid, int) or pid <= 1:
            return False
        if started is None:
            # /proc of the starter was not readable when the instance was made (e.g. hidepid): existence only.
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
            return True
        return process_start_time(pid) == started

    def bound_to(self, starter):
        """True when this instance was made by exactly this starter (pid, start time, scratch directory)."""
        recorded = self.meta.get("starter") or {}
        return (isinstance(recorded.get("pid"), int) and recorded.get("pid") == starter.pid
                and recorded.get("start_time") == starter.start_time
                and isinstance(recorded.get("scratch"), str) and recorded.get("scratch") == starter.scratch)


def create(root, instance_id, meta, starter):
    """Make the instance directory and its instance.json, bound to starter (a Starter). On any failure nothing
    is left behind (a directory without its instance.json is nobody's to remove: the exit hook cannot tell whose
    it is), and a full filesystem is a CloudError with errors.NO_SPACE."""
    check_instance_id(instance_id)
    path = os.path.join(root, instance_id)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        raise CloudError("instance directory %s exists already" % path, errors.INTERNAL) from None
    except OSError as exc:
        raise write_error(exc, "cannot create instance directory %s" % path) from None
    meta = dict(meta, id=instance_id, created=time.time(), bases=[], starter=starter.record())
    instance = Instance(root, instance_id, meta)
    try:
        # Others may traverse (QEMU must reach its overlay) but not list; the group (the cleanup) may remove.
        os.chmod(path, 0o2771)
        instance.save()
    except BaseException as exc:
        shutil.rmtree(path, ignore_errors=True)
        if isinstance(exc, OSError):
            raise write_error(exc, "cannot create instance directory %s" % path) from None
        raise
    return instance


def load(root, instance_id):
    """Load an instance; raises CloudError if the id is bad or the directory is not one of ours."""
    check_instance_id(instance_id)
    path = os.path.join(root, instance_id, META)
    try:
        with open(path) as f:
            meta = json.load(f)
    except FileNotFoundError:
        raise CloudError("instance %s has no %s" % (instance_id, META), errors.INTERNAL) from None
    except ValueError:
        raise CloudError("instance %s has a damaged %s" % (instance_id, META), errors.INTERNAL) from None
    except OSError as exc:
        raise CloudError("instance %s has an unreadable %s: %s" % (instance_id, META, exc.strerror or exc),
                         errors.INTERNAL) from None
    if not isinstance(meta, dict):
        raise CloudError("instance %s has a damaged %s (not an object)" % (instance_id, META), errors.INTERNAL)
    return Instance(root, instance_id, meta)


def list_ids(root):
    try:
        return sorted(n for n in os.listdir(root) if _ID_RE.fullmatch(n))
    except FileNotFoundError:
        return []


def scan(root):
    """(instance id, Instance or the CloudError that loading it raised) for every instance directory, in id order.

    The one walk over CLOUD_INSTANCE_DIR: each caller decides what an unreadable instance.json means to it."""
    for instance_id in list_ids(root):
        try:
            yield instance_id, load(root, instance_id)
        except CloudError as exc:
            yield instance_id, exc


def find_bound(root, starter):
    """The instances made by this starter (normally one; none after a failed or skipped prepare)."""
    return [inst for _, inst in scan(root) if isinstance(inst, Instance) and inst.bound_to(starter)]


def find_for_xml_script(root, scratch, lineage=None):
    """The instance whose recorded scratch directory is scratch and whose recorded starter is this process or one
    of its ancestors (the XML script runs under vm-gahp, under the starter), still the same process (start time).
    Raises CloudError when there is none: the prepare hook did not run for this job on this node."""
    lineage = ancestors() if lineage is None else lineage
    scratch = os.path.realpath(scratch)
    for _, inst in scan(root):
        if not isinstance(inst, Instance):
            continue
        recorded = inst.meta.get("starter") or {}
        pid = recorded.get("pid")
        if (recorded.get("scratch") == scratch and isinstance(pid, int) and pid in lineage
                and inst.starter_alive()):
            return inst
    raise CloudError("no instance on this node was prepared for the job in %s: the condor-cloud prepare hook did "
                     "not run for it (is STARTER_JOB_HOOK_KEYWORD = CLOUD set on this node?)" % scratch,
                     errors.BAD_REQUEST)


def referenced_bases(root):
    """Cache entry file names used by any instance directory present (live or orphaned)."""
    used = set()
    for _, inst in scan(root):
        if isinstance(inst, Instance):
            used.update(inst.meta.get("bases", []))
    return used


def remove(root, instance_id):
    """Remove an instance directory and everything in it (missing is fine)."""
    check_instance_id(instance_id)
    path = os.path.join(root, instance_id)
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise CloudError("cannot remove instance directory %s: %s" % (path, exc.strerror or exc),
                         errors.INTERNAL) from None


def write_error(exc, what):
    """The CloudError for an OSError of a write: NO_SPACE (its own hold code) when the filesystem is full."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return CloudError("%s: no space left on the node's instance filesystem (%s)" % (what, exc.strerror),
                          errors.NO_SPACE)
    return CloudError("%s: %s" % (what, exc.strerror or exc), errors.INTERNAL)
