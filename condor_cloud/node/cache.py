"""The node's image cache: one read-only copy of each image version, filled once under a per-image lock.

Entries are named `<image>@<version>.<format>`. A fill copies into a hidden temporary file in the cache directory,
verifies it, fsyncs, makes it read-only and renames it into place: an entry that exists is complete. Waiting for
another job's fill blocks on flock (no polling); the prepare hook's deadline (CLOUD_PREPARE_TIMEOUT) bounds it.

Each fill also records what the entry was (.ids/<entry>: size, inode, mtime and a fingerprint of its first and
last 4 KiB), written before the entry is renamed into place. Every reuse compares the entry with that record (a
stat, a small read and two 4 KiB reads: constant time, whatever the image's size) and refills an entry that was
truncated, replaced or changed since its fill, with a line in the StarterLog and in .fills.log.
"""

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import os
import sys
import time

from condor_cloud.core import errors, qemuimg
from condor_cloud.core.errors import CloudError
from condor_cloud.core.files import fsync_dir
from condor_cloud.node.sparsecopy import copy_sparse, data_segments

LOCK_DIR = ".locks"
FILL_LOG = ".fills.log"   # one line per completed fill: when, which entry, how many bytes, how long
FILL_PREFIX = ".fill-"
IDS_DIR = ".ids"          # <entry filename>: the entry's fill record (see ImageCache._write_record)
_FINGERPRINT_BYTES = 4096
FORMATS = ("qcow2", "raw")
_MiB = 1 << 20


@dataclasses.dataclass(frozen=True)
class CacheEntry:
    path: str
    filename: str
    image: str
    version: str
    format: str
    allocated: int
    last_used: float
    filled: bool = False   # True when this acquire copied it into the cache


def entry_filename(image_name, version, fmt):
    return "%s@%s.%s" % (image_name, version, fmt)


def parse_entry_filename(filename):
    """'demo.qcow2@0123456789abcdef.qcow2' -> ('demo.qcow2', '0123456789abcdef', 'qcow2'), or None."""
    if filename.startswith(".") or "@" not in filename:
        return None
    image, _, rest = filename.rpartition("@")
    version, _, fmt = rest.partition(".")
    if len(version) != 16 or fmt not in FORMATS:
        return None
    return image, version, fmt


class ImageCache:
    """The cache directory of one node."""

    def __init__(self, root, qemu_img="qemu-img"):
        self.root = root
        self.qemu_img = qemu_img

    # -- locking ---------------------------------------------------------------------------------------------
    def _lock_path(self, image_name):
        lock_dir = os.path.join(self.root, LOCK_DIR)
        os.makedirs(lock_dir, mode=0o2775, exist_ok=True)
        return os.path.join(lock_dir, image_name + ".lock")

    @contextlib.contextmanager
    def locked(self, image_name, blocking=True):
        """Hold the per-image lock; yields True, or False when blocking=False and someone else holds it."""
        fd = os.open(self._lock_path(image_name), os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o664)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # closing releases the lock, also when the process is killed

    # -- lookup --------------------------------------------------------------------------------------------
    def _entry(self, filename):
        parsed = parse_entry_filename(filename)
        if not parsed:
            return None
        path = os.path.join(self.root, filename)
        try:
            st = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            return None
        return CacheEntry(path, filename, parsed[0], parsed[1], parsed[2], st.st_blocks * 512, st.st_atime)

    def lookup(self, image_name, version):
        for fmt in FORMATS:
            entry = self._entry(entry_filename(image_name, version, fmt))
            if entry:
                return entry
        return None

    def entries(self):
        """Every complete entry, least recently used first."""
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        found = [e for e in (self._entry(n) for n in names) if e]
        return sorted(found, key=lambda e: e.last_used)

    def total_bytes(self):
        return sum(e.allocated for e in self.entries())

    # -- fill ----------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def acquire(self, image, expected_format=""):
        """Yield the CacheEntry for a StoreImage, filling it if needed, with the image's lock held.

        Callers record that they use the entry before leaving the block, so eviction (which takes the same
        lock) can never remove an entry between its fill and its first use.
        """
        with self.locked(image.name):
            entry = self.lookup(image.name, image.version)
            if entry is not None:
                damage = self.damage(entry, image.size)
                if damage:
                    self._report_damaged(entry, damage)
                    self._discard(entry)
                    entry = None
            if entry is None:
                entry = self._fill(image, expected_format)
            self._touch(entry)
            yield entry

    def _touch(self, entry):
        # atime is the LRU clock; mtime stays the fill time. The owner may be temporarily libvirt's while a
        # domain runs, so a refused utime just means "in use right now", which eviction checks anyway.
        with contextlib.suppress(OSError):
            st = os.stat(entry.path)
            os.utime(entry.path, ns=(time.time_ns(), st.st_mtime_ns))

    # -- fill records: is an entry still what its fill made? ---------------------------------------------------
    def _record_path(self, filename):
        return os.path.join(self.root, IDS_DIR, filename)

    def damage(self, entry, size=None):
        """Why entry is not what its fill made (truncated, replaced, changed, no record), or '' when it is.
        size: the store image's size, which the entry has (a byte-exact copy). O(1): a stat, the record, 8 KiB."""
        try:
            st = os.stat(entry.path, follow_symlinks=False)
            with open(self._record_path(entry.filename), encoding="ascii") as f:
                fields = f.read(512).split()
        except FileNotFoundError:
            return "it has no fill record"
        except (OSError, UnicodeDecodeError) as exc:
            return "its fill record cannot be read (%s)" % (getattr(exc, "strerror", None) or exc)
        try:
            rec_size, rec_ino, rec_mtime, rec_print = int(fields[0]), int(fields[1]), int(fields[2]), fields[3]
        except (IndexError, ValueError):
            return "its fill record is damaged"
        if st.st_size != rec_size or (size is not None and st.st_size != size):
            return "it has %d bytes, %d when it was filled" % (st.st_size, rec_size)
        if st.st_ino != rec_ino or st.st_mtime_ns != rec_mtime:
            return "it was replaced or written to since its fill"
        try:
            if _fingerprint(entry.path, st.st_size) != rec_print:
                return "its first or last bytes changed since its fill"
        except OSError as exc:
            return "it cannot be read (%s)" % exc.strerror
        return ""

    def _write_record(self, tmp_path, final_name):
        """Record the filled temp file's identity under the entry's name, before the entry itself is renamed into
        place (so an entry that exists has its record). The temporary name is a fill temp of this process: the next
        fill of the image and the cleanup remove it when this process dies half-way."""
        st = os.stat(tmp_path)
        text = "%d %d %d %s\n" % (st.st_size, st.st_ino, st.st_mtime_ns, _fingerprint(tmp_path, st.st_size))
        os.makedirs(os.path.join(self.root, IDS_DIR), mode=0o2775, exist_ok=True)
        rec_tmp = os.path.join(self.root, "%s%s.rec.%d" % (FILL_PREFIX, final_name, os.getpid()))
        try:
            fd = os.open(rec_tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o444)
            try:
                os.write(fd, text.encode("ascii"))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(rec_tmp, self._record_path(final_name))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(rec_tmp)
            raise

    def _report_damaged(self, entry, damage):
        # For the administrator: the StarterLog (the hook's standard error) and the cache's own log.
        sys.stderr.write("condor-cloud prepare: cache entry %s is damaged (%s): copying it again from the store\n"
                         % (entry.path, damage))
        self._log_line("damaged=%s reason=%s" % (entry.filename, damage.replace(" ", "_")))

    def _discard(self, entry):
        # With the image's lock held. A running domain keeps the inode it has open; new instances get the refill.
        for path in (entry.path, self._record_path(entry.filename)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def _remove_stale_fills(self, image_name):
        # Called with the image's lock held: nobody else is filling this image, so any temp file is dead.
        prefix = FILL_PREFIX + image_name + "@"
        for name in os.listdir(self.root):
            if name.startswith(prefix):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.root, name))

    def _fill(self, image, expected_format):
        self._remove_stale_fills(image.name)
        tmp_name = "%s%s@%s.%d" % (FILL_PREFIX, image.name, image.version, os.getpid())
        tmp_path = os.path.join(self.root, tmp_name)
        started = time.time()
        done = False
        try:
            fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                copy_sparse(image.fd, fd, image.size)
                os.fsync(fd)
            finally:
                os.close(fd)
            if image.sha256:
                self._verify(tmp_path, image)
            fmt = qemuimg.probe(self.qemu_img, tmp_path, image.name, expected_format)
            os.chmod(tmp_path, 0o444)
            final = os.path.join(self.root, entry_filename(image.name, image.version, fmt))
            self._write_record(tmp_path, os.path.basename(final))
            os.rename(tmp_path, final)
            fsync_dir(self.root)
            done = True
            self._log_fill(os.path.basename(final), image.allocated, time.time() - started)
            return dataclasses.replace(self._entry(os.path.basename(final)), filled=True)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise CloudError("not enough space in the image cache %s to copy image '%s' (%d MiB of data)"
                                 % (self.root, image.name, image.allocated // _MiB + 1), errors.NO_SPACE) from None
            raise CloudError("could not copy image '%s' into the cache %s: %s"
                             % (image.name, self.root, exc.strerror or exc), errors.INTERNAL) from None
        finally:
            if not done:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp_path)

    def _log_fill(self, filename, nbytes, seconds):
        # For administrators (and the tests): how often each image version was copied to this node.
        self._log_line("entry=%s bytes=%d seconds=%.3f" % (filename, nbytes, seconds))

    def _log_line(self, text):
        line = "%s pid=%d %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), os.getpid(), text)
        with contextlib.suppress(OSError):
            fd = os.open(os.path.join(self.root, FILL_LOG), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o664)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)

    def _verify(self, path, image):
        # Hash the data segments as read and the holes as zeros, without reading the holes' pages.
        digest = hashlib.sha256()
        zeros = bytes(4 << 20)
        offset = 0
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            for start, length in data_segments(fd, image.size):
                _hash_zeros(digest, zeros, start - offset)
                end = start + length
                while start < end:
                    block = os.pread(fd, min(4 << 20, end - start), start)
                    if not block:
                        raise OSError(errno.EIO, "cache copy shorter than the image")
                    digest.update(block)
                    start += len(block)
                offset = end
            _hash_zeros(digest, zeros, image.size - offset)
        finally:
            os.close(fd)
        if digest.hexdigest() != image.sha256:
            raise CloudError("image '%s' does not match its checksum file %s%s (copy corrupt or image changed "
                             "without updating the checksum)" % (image.name, image.name, ".sha256"),
                             errors.CHECKSUM_MISMATCH)

    # -- eviction ------------------------------------------------------------------------------------------
    def evict(self, max_bytes, in_use, need_free=0):
        """Remove least recently used entries not in use until the cache is at most max_bytes (0 = no limit)
        and at least need_free bytes are free. in_use() returns the entry file names in use; it is called with
        the entry's image lock held. Returns the removed entries."""
        removed = []
        entries = self.entries()
        total = sum(e.allocated for e in entries)
        for entry in entries:
            over = max_bytes and total > max_bytes
            short = need_free and _free_bytes(self.root) < need_free
            if not (over or short):
                break
            with self.locked(entry.image, blocking=False) as got:
                if not got or entry.filename in in_use():
                    continue
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed.append(entry)
                    total -= entry.allocated
                with contextlib.suppress(OSError):  # a leftover record is harmless: the next fill replaces it
                    os.unlink(self._record_path(entry.filename))
        return removed


def _fingerprint(path, size):
    """SHA-256 (hex, 32 digits) of a file's first and last 4 KiB: catches a zeroed or rewritten header or tail
    that size and mtime would not (an mtime can be set back)."""
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        digest.update(os.pread(fd, _FINGERPRINT_BYTES, 0))
        digest.update(os.pread(fd, _FINGERPRINT_BYTES, max(0, size - _FINGERPRINT_BYTES)))
    finally:
        os.close(fd)
    return digest.hexdigest()[:32]


def _hash_zeros(digest, zeros, count):
    while count > 0:
        n = min(count, len(zeros))
        digest.update(zeros[:n] if n < len(zeros) else zeros)
        count -= n


def _free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def free_bytes(path):
    return _free_bytes(path)


