"""The periodic cleanup (a STARTD_CRON job): reclaim orphaned instances, keep the cache under
CLOUD_CACHE_MAX_SIZE, and advertise the cached images in the machine ad for cache-aware placement.

Old console logs are pruned by the prepare hook (consoles.prepare, as condor-cloud): the console directory is
writable by that account alone (virtlogd, as root, follows whatever is at a log's name)."""

import os
import sys
import time

from . import config, instances, jobad
from .cache import FILL_PREFIX, ImageCache
from .errors import CloudError


class Libvirt:
    """Destroys domains by UUID; a thin seam so unit tests can replace it (integration tests use the real one)."""

    def __init__(self, uri):
        self.uri = uri
        self._conn = None

    def _connect(self):
        import libvirt

        if self._conn is None:
            self._conn = libvirt.open(self.uri)
        return self._conn

    def uuid_of(self, name):
        """UUID of the domain called name, or None if there is none."""
        import libvirt

        try:
            return self._connect().lookupByName(name).UUIDString()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise

    def destroy(self, domain_uuid):
        """Destroy the domain if it exists; return True if it is gone (or never existed)."""
        import libvirt

        try:
            dom = self._connect().lookupByUUIDString(domain_uuid)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return True
            raise
        try:
            dom.destroy()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() not in (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_OPERATION_INVALID):
                raise
        return True


def reclaim_orphans(settings, hypervisor, now=None, log=sys.stderr):
    """Remove instance directories whose starter is gone (after destroying their domain). Returns removed ids."""
    now = time.time() if now is None else now
    removed = []
    for instance_id, instance in instances.scan(settings.instance_dir):
        path = os.path.join(settings.instance_dir, instance_id)
        if isinstance(instance, CloudError):
            # No readable instance.json: a prepare that died at once, or damage. Leave it a grace period.
            try:
                age = now - os.stat(path).st_mtime
            except FileNotFoundError:
                continue
            if age > settings.orphan_grace:
                instances.remove(settings.instance_dir, instance_id)
                removed.append(instance_id)
            continue
        if instance.starter_alive():
            continue
        try:
            hypervisor.destroy(instance.meta["uuid"])
        except Exception as exc:  # libvirt unreachable: keep the directory, its domain may still run
            log.write("condor-cloud cleanup: cannot destroy domain of orphan %s: %s\n" % (instance_id, exc))
            continue
        instances.remove(settings.instance_dir, instance_id)
        removed.append(instance_id)
    return removed


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
        alive = pid.isdigit() and instances.process_start_time(int(pid)) is not None
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


def machine_attrs(settings, cache):
    entries = cache.entries()
    names = sorted({e.image for e in entries})
    return {
        "CloudCachedImages": ",".join(names),
        "CloudCacheBytes": sum(e.allocated for e in entries),
        "CloudInstances": len(instances.list_ids(settings.instance_dir)),
    }


def main(argv=None, stdin=None, stdout=None, hypervisor=None):
    """No arguments; prints machine ad attributes and `- update:true`; exit 0, or 1 on a configuration error."""
    stdout = stdout or sys.stdout
    try:
        settings = config.load_settings()
        hypervisor = hypervisor or Libvirt(settings.libvirt_uri)
        reclaim_orphans(settings, hypervisor)
        cache = ImageCache(settings.image_cache, settings.qemu_img)
        if os.path.isdir(cache.root):
            remove_dead_fills(cache.root, time.time(), settings.orphan_grace)
            cache.evict(settings.cache_max_size, lambda: instances.referenced_bases(settings.instance_dir))
        stdout.write(jobad.format_attrs(machine_attrs(settings, cache)))
        stdout.write("- update:true\n")
        return 0
    except CloudError as exc:
        sys.stderr.write("condor-cloud cleanup: %s\n" % exc.message)
        return 1
