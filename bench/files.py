"""Files, the page cache and filesystems (parts 1-3): sparse random images, per-file page-cache eviction and
loading, residency, and a loop-mounted XFS with reflink."""

import contextlib
import os
import random
import subprocess
import time

from .common import GiB, MiB, run


def allocated(path):
    return os.stat(path).st_blocks * 512


def write_random_extents(path, size, data, seed, slot=1 * MiB):
    """A sparse file of `size` with `data` bytes of random data in randomly chosen 1 MiB slots (neighbouring
    slots merge, so extents of several sizes)."""
    rng = random.Random(seed)
    slots = sorted(rng.sample(range(size // slot), data // slot))
    with open(path, "wb") as f:
        f.truncate(size)
        for s in slots:
            f.seek(s * slot)
            f.write(rng.randbytes(slot))
        f.flush()
        os.fsync(f.fileno())


def write_random(path, size, seed):
    rng = random.Random(seed)
    with open(path, "wb") as f:
        for _ in range(size // MiB):
            f.write(rng.randbytes(MiB))
        f.flush()
        os.fsync(f.fileno())


def page_cache_evict(path):
    """Drop the file's clean pages from the page cache (POSIX_FADV_DONTNEED after fsync): only this file, so
    the other users of this shared machine are not disturbed as with /proc/sys/vm/drop_caches."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def page_cache_load(path):
    """Read the file's data ranges so they are in the page cache."""
    from condor_cloud.node.sparsecopy import data_segments

    fd = os.open(path, os.O_RDONLY)
    try:
        for off, length in data_segments(fd, os.fstat(fd).st_size):
            done = 0
            while done < length:
                got = len(os.pread(fd, min(16 * MiB, length - done), off + done))
                if not got:
                    break
                done += got
    finally:
        os.close(fd)


def resident_fraction(path):
    """Share of the file's allocated bytes that are in the page cache (fincore), or None."""
    try:
        out = run(["fincore", "--bytes", "--noheadings", "--output", "RES", path], stdout=subprocess.PIPE,
                  stderr=subprocess.DEVNULL).stdout.decode().strip()
        return int(out) / max(1, allocated(path))
    except (subprocess.CalledProcessError, ValueError, FileNotFoundError):
        return None


def fs_info(path):
    try:
        out = run(["findmnt", "-no", "FSTYPE,SOURCE,OPTIONS", "-T", path], stdout=subprocess.PIPE,
                  stderr=subprocess.DEVNULL).stdout.decode().split()
        return "%s on %s (%s)" % (out[0], out[1], out[2] if len(out) > 2 else "")
    except Exception:
        return "unknown"


@contextlib.contextmanager
def xfs_reflink_mount(workdir, size=3 * GiB):
    """Loop-mount a fresh XFS (reflink=1) from a sparse file under workdir; always unmount and detach."""
    image = os.path.join(workdir, "xfs.img")
    mnt = os.path.join(workdir, "xfs")
    os.makedirs(mnt)
    with open(image, "wb") as f:
        f.truncate(size)
    run(["mkfs.xfs", "-q", "-f", "-m", "reflink=1", image], stdout=subprocess.DEVNULL)
    loop = run(["losetup", "--find", "--show", image], stdout=subprocess.PIPE).stdout.decode().strip()
    try:
        run(["mount", "-t", "xfs", loop, mnt])
        try:
            yield mnt
        finally:
            if subprocess.run(["umount", mnt]).returncode != 0:
                time.sleep(1)
                subprocess.run(["umount", "-l", mnt])
    finally:
        subprocess.run(["losetup", "-d", loop])
