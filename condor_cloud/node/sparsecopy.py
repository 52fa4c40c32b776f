"""Copy a file's data segments only, so holes stay holes; copy_file_range lets the kernel reflink or copy
server-side where the filesystem can."""

import errno
import os

_CHUNK = 64 << 20
_FALLBACK_ERRNOS = {errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL}


def data_segments(fd, size):
    """Yield (offset, length) of the data (non-hole) ranges of fd."""
    offset = 0
    while offset < size:
        try:
            start = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # only a hole remains
                return
            if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):  # no SEEK_DATA here: all data
                yield offset, size - offset
                return
            raise
        end = os.lseek(fd, start, os.SEEK_HOLE)
        yield start, min(end, size) - start
        offset = end


def _copy_range(src, dst, offset, length, use_cfr):
    done = 0
    while done < length:
        n = min(_CHUNK, length - done)
        if use_cfr[0]:
            try:
                copied = os.copy_file_range(src, dst, n, offset + done, offset + done)
            except OSError as exc:
                if exc.errno not in _FALLBACK_ERRNOS:
                    raise
                use_cfr[0] = False
                continue
        else:
            buf = os.pread(src, n, offset + done)
            copied = os.pwrite(dst, buf, offset + done) if buf else 0
        if copied == 0:
            raise OSError(errno.EIO, "source file shrank while it was being copied")
        done += copied


_FICLONE = 0x40049409  # ioctl: share all of src's extents (XFS, btrfs): constant time whatever the size


def _clone(src, dst):
    import fcntl

    try:
        fcntl.ioctl(dst, _FICLONE, src)
        return True
    except OSError:
        return False  # not a reflink filesystem, or across filesystems: copy instead


def copy_sparse(src, dst, size):
    """Copy `size` bytes from fd src to fd dst (empty), keeping holes. Returns bytes of data copied."""
    if size == os.fstat(src).st_size and _clone(src, dst):
        return size
    os.ftruncate(dst, size)
    use_cfr = [hasattr(os, "copy_file_range")]
    copied = 0
    for offset, length in data_segments(src, size):
        _copy_range(src, dst, offset, length, use_cfr)
        copied += length
    return copied
