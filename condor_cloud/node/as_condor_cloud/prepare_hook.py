"""The prepare hook (<KW>_HOOK_PREPARE_JOB): turn a VM-universe job into an instance directory with a qcow2
overlay over a cached base, and point the job's VMPARAM_vm_Disk at the overlay.

Failures are reported as HookStatusCode (1-299: the job is held) with a HookStatusMessage a person understands.
Every wait is bounded by CLOUD_PREPARE_TIMEOUT, because HTCondor has no timeout for this hook.
"""

import errno
import os
import signal
import sys

from condor_cloud.node import reclaim, console_log, domain_xml, instance_dirs, jobad, seed
from condor_cloud.core import config, errors, images, qemuimg
from condor_cloud.node.cache import ImageCache
from condor_cloud.node.macs import check_mac, mac_for
from condor_cloud.core.errors import CloudError, shown


class _Deadline(Exception):
    pass


def _on_alarm(signum, frame):
    raise _Deadline()


class Prepare:
    """One run of the hook; `step` says what it is doing, for the timeout message."""

    def __init__(self, settings, ad, starter):
        self.settings = settings
        self.ad = ad
        self.starter = starter
        self.scratch_dir = starter.scratch
        self.step = "starting"
        self.instance = None
        self.dir_lock = None

    def run(self):
        ad = self.ad
        self.step = "reading the job ad"
        cluster = jobad.get(ad, "ClusterId", int)
        proc = jobad.get(ad, "ProcId", int)
        if cluster is None or proc is None:
            raise CloudError("the job ad has no ClusterId/ProcId", errors.BAD_REQUEST)
        disks = jobad.parse_vm_disk(jobad.get(ad, "VMPARAM_vm_Disk", str, ""))
        for disk in disks:
            images.check_image_name(disk.image)
            if self.scratch_dir and os.path.lexists(os.path.join(self.scratch_dir, "%s.qcow2" % disk.device)):
                # vm-gahp prefers a scratch file with the disk's basename over the path we give it.
                raise CloudError("the job's sandbox contains a file %s.qcow2, which would shadow the instance's "
                                 "disk; do not transfer files with that name" % disk.device, errors.BAD_REQUEST)
        self.step = "reading the cloud-init user data and SSH keys"
        seed_inputs = seed.inputs_from_job(ad, self.scratch_dir)  # user-data, ssh-authorized-keys: checked first
        global_id = jobad.get(ad, "GlobalJobId", str, "%d.%d" % (cluster, proc))
        check_mac(jobad.get(ad, "JobVM_MACADDR", str, ""))   # vm_macaddr is refused: it could be another's MAC
        mac = mac_for(cluster, proc)                          # unique per job id, by construction

        self.step = "creating the instance directory"
        instance_id = instance_dirs.new_instance_id(cluster, proc)
        self.instance = instance_dirs.create(self.settings.instance_dir, instance_id, {
            "job": global_id,
            "owner": jobad.get(ad, "Owner", str, ""),
            "uuid": instance_dirs.new_uuid(),
            "mac": mac,
            "disks": [],
        }, self.starter)
        # Held until this hook exits: the cleanup never removes a directory whose prepare still runs, whatever
        # state its instance.json is in (reclaim.prepare_running).
        self.dir_lock = reclaim.hold_prepare_lock(self.instance.path)

        cache = ImageCache(self.settings.image_cache, self.settings.qemu_img)
        vm_disk = []
        for disk in disks:
            self.step = "opening image '%s' in the store" % disk.image
            with images.open_store_image(self.settings.image_store, disk.image) as image:
                self.step = "waiting for or copying image '%s' into the cache %s" % (disk.image, cache.root)
                self._make_room(cache, image)
                with cache.acquire(image, qemuimg.expected_format(disk.image)) as entry:
                    self.instance.add_base(entry.filename)
            # One line per disk in the StarterLog: shows that a node copies each image version once.
            sys.stderr.write("condor-cloud prepare: %s cache entry %s\n"
                             % ("filled" if entry.filled else "reused", entry.path))
            if disk.format and disk.format != entry.format:
                raise CloudError("vm_disk says image '%s' is %s but it is %s" % (disk.image, disk.format,
                                 entry.format), errors.BAD_REQUEST)
            self.step = "creating the overlay for image '%s'" % disk.image
            overlay = self.instance.overlay_path(disk.device)
            qemuimg.create_overlay(self.settings.qemu_img, entry.path, entry.format, overlay)
            self.instance.meta["disks"].append({"device": disk.device, "path": overlay, "format": "qcow2",
                                                "readonly": not disk.writable, "base": entry.filename,
                                                "image": disk.image})
            self.instance.save()
            vm_disk.append("%s:%s:%s:qcow2" % (overlay, disk.device, "w" if disk.writable else "r"))

        self.step = "building the cloud-init seed"
        seed_path = seed.build_seed(os.path.join(self.instance.path, "seed.iso"), instance_id,
                                    seed.hostname_for(seed_inputs.name, instance_id),
                                    seed_inputs.user_data, seed_inputs.ssh_keys)
        used = {d.device for d in disks}
        self.instance.meta["cdroms"] = [{"path": seed_path, "device": domain_xml.cdrom_device(used)}]
        self.instance.save()

        # Last, so that a failed prepare leaves no console log behind; a console problem never fails the job.
        self.step = "creating the console log"
        sys.stderr.write("condor-cloud prepare: %s\n" % console_log.prepare(self.settings.console_dir, instance_id,
                                                                          self.scratch_dir,
                                                                          keep=self.settings.console_keep))
        return {
            "CloudInstanceId": instance_id,
            "CloudInstanceDir": self.instance.path,
            "VMPARAM_vm_Disk": ",".join(vm_disk),
        }

    def _make_room(self, cache, image):
        from condor_cloud.node.cache import free_bytes

        need = image.allocated + (64 << 20)
        if free_bytes(cache.root) < need and cache.lookup(image.name, image.version) is None:
            cache.evict(self.settings.cache_max_size,
                        lambda: reclaim.entries_in_use(self.settings.instance_dir, cache.root), need_free=need)

    def undo(self):
        """Remove what this run made on the instance filesystem (its cache fills are complete entries: kept)."""
        if self.instance is not None:
            instance_dirs.remove(self.settings.instance_dir, self.instance.id)

    def release(self):
        if self.dir_lock is not None:
            os.close(self.dir_lock)
            self.dir_lock = None


def main(argv=None, stdin=None, stdout=None, starter_pid=None):
    """Hook entry point: job ad on stdin, `Attr = value` lines on stdout; exit 0, or 1 with HookStatusCode set."""
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    prepare = None
    old_handler = signal.signal(signal.SIGALRM, _on_alarm)
    try:
        settings = config.load_settings()
        signal.alarm(max(1, settings.prepare_timeout))
        ad = jobad.read_ad(stdin)
        prepare = Prepare(settings, ad, instance_dirs.Starter.of(starter_pid if starter_pid is not None
                                                             else os.getppid()))
        attrs = prepare.run()
        signal.alarm(0)
        stdout.write(jobad.format_attrs(attrs))
        return 0
    except (CloudError, _Deadline, Exception) as exc:
        signal.alarm(0)
        if isinstance(exc, _Deadline):
            exc = CloudError("condor-cloud prepare timed out after %d s (CLOUD_PREPARE_TIMEOUT) while %s"
                             % (settings.prepare_timeout, prepare.step if prepare else "starting"), errors.TIMEOUT)
        elif isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            # One failure path for every write: a full disk is NO_SPACE, whichever write found it.
            exc = CloudError("no space left on the node while %s%s" % (
                prepare.step if prepare else "starting", " (%s)" % exc.filename if exc.filename else ""),
                errors.NO_SPACE)
        elif not isinstance(exc, CloudError):
            exc = CloudError("internal error in the condor-cloud prepare hook (%s: %s); see the StarterLog"
                             % (type(exc).__name__, shown(str(exc), 200)), errors.INTERNAL)
        if prepare is not None:
            try:
                prepare.undo()
            except Exception as undo_exc:
                sys.stderr.write("condor-cloud prepare: could not remove instance directory: %s\n" % undo_exc)
        sys.stderr.write("condor-cloud prepare: %s\n" % exc.message)
        stdout.write(jobad.format_attrs({"HookStatusCode": exc.code, "HookStatusMessage": exc.message}))
        return 1
    finally:
        if prepare is not None:
            prepare.release()
        signal.signal(signal.SIGALRM, old_handler)
