"""Per-instance directories: CLOUD_INSTANCE_DIR/<id>/ holds the overlays, the cloud-init seed and instance.json.

instance.json names the starter process that owns the instance (pid + kernel start time, so a reused pid is not
mistaken for it), the cache entries it uses and the libvirt domain's UUID. An instance whose starter is gone is an
orphan: the cleanup destroys its domain and removes its directory.
"""

import contextlib
import json
import os
import re
import shutil
import time

from . import errors
from .errors import CloudError

META = "instance.json"
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


class Instance:
    def __init__(self, root, instance_id, meta):
        self.root = root
        self.id = instance_id
        self.path = os.path.join(root, instance_id)
        self.meta = meta

    def overlay_path(self, device):
        return os.path.join(self.path, "%s.qcow2" % device)

    def save(self):
        tmp = os.path.join(self.path, ".%s.tmp" % META)
        with open(tmp, "w") as f:
            json.dump(self.meta, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, os.path.join(self.path, META))

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


def create(root, instance_id, meta, starter_pid):
    """Make the instance directory and its instance.json (owner: the starter process starter_pid)."""
    check_instance_id(instance_id)
    path = os.path.join(root, instance_id)
    try:
        os.mkdir(path, 0o700)
        # Others may traverse (QEMU must reach its overlay) but not list; the group (the cleanup) may remove.
        os.chmod(path, 0o2771)
    except FileExistsError:
        raise CloudError("instance directory %s exists already" % path, errors.INTERNAL) from None
    except OSError as exc:
        code = errors.NO_SPACE if exc.errno == 28 else errors.INTERNAL
        raise CloudError("cannot create instance directory %s: %s" % (path, exc.strerror), code) from None
    meta = dict(meta, id=instance_id, created=time.time(), bases=[],
                starter={"pid": starter_pid, "start_time": process_start_time(starter_pid)})
    instance = Instance(root, instance_id, meta)
    instance.save()
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
    return Instance(root, instance_id, meta)


def list_ids(root):
    try:
        return sorted(n for n in os.listdir(root) if _ID_RE.fullmatch(n))
    except FileNotFoundError:
        return []


def referenced_bases(root):
    """Cache entry file names used by any instance directory present (live or orphaned)."""
    used = set()
    for instance_id in list_ids(root):
        try:
            used.update(load(root, instance_id).meta.get("bases", []))
        except CloudError:
            continue
    return used


def remove(root, instance_id):
    """Remove an instance directory and everything in it (missing is fine)."""
    check_instance_id(instance_id)
    path = os.path.join(root, instance_id)
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path)
