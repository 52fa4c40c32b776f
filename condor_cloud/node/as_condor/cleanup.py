"""The periodic cleanup (STARTD_CRON job CLOUDCLEANUP, hooks/cleanup, run as condor): reclaim orphaned instances,
keep the cache under CLOUD_CACHE_MAX_SIZE, and advertise the cached images in the machine ad for cache-aware
placement. What may be removed is decided in condor_cloud/node/reclaim.py."""

import os
import sys
import time

from condor_cloud.core import config
from condor_cloud.core.errors import CloudError
from condor_cloud.node import instance_dirs, jobad
from condor_cloud.node.cache import ImageCache
from condor_cloud.node.libvirt_conn import Libvirt
from condor_cloud.node.reclaim import LOG_PREFIX, entries_in_use, reclaim_orphans, remove_dead_fills, running_domains


def machine_attrs(settings, cache):
    entries = cache.entries()
    names = sorted({e.image for e in entries})
    return {
        "CloudCachedImages": ",".join(names),
        "CloudCacheBytes": sum(e.allocated for e in entries),
        "CloudInstances": len(instance_dirs.list_ids(settings.instance_dir)),
    }


def main(argv=None, stdin=None, stdout=None, hypervisor=None, log=None):
    """No arguments; prints machine ad attributes and `- update:true`; exit 0, or 1 on a configuration error."""
    stdout = stdout or sys.stdout
    log = log or sys.stderr
    try:
        settings = config.load_settings()
        hypervisor = hypervisor or Libvirt(settings.libvirt_uri)
        reclaim_orphans(settings, hypervisor, log=log)
        cache = ImageCache(settings.image_cache, settings.qemu_img)
        if os.path.isdir(cache.root):
            remove_dead_fills(cache.root, time.time(), settings.orphan_grace)
            domains = running_domains(hypervisor, log)
            if domains is not None:
                cache.evict(settings.cache_max_size,
                            lambda: entries_in_use(settings.instance_dir, cache.root, domains, log))
        stdout.write(jobad.format_attrs(machine_attrs(settings, cache)))
        stdout.write("- update:true\n")
        return 0
    except CloudError as exc:
        log.write(LOG_PREFIX + "%s\n" % exc.message)
        return 1
