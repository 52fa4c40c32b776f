"""The shared image store: strict image names, safe opening, versions and checksum sidecars.

Nothing outside the store directory is ever opened: names are whitelisted, files are opened relative to a
descriptor of the store with O_NOFOLLOW, and a symlink is accepted only when it points at another image directly
inside the store.
"""

import hashlib
import os
import re
import stat
from dataclasses import dataclass

from condor_cloud.core import errors
from condor_cloud.core.errors import CloudError, shown

# A letter or digit first (no dot files, no option-like names), then a small safe alphabet.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
CHECKSUM_SUFFIX = ".sha256"
STAGING = "staging"


def check_image_name(name):
    """Raise CloudError unless name is a plain image file name allowed in the store."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or ".." in name:
        raise CloudError("image name %s is not allowed: use letters, digits, '.', '_', '+' and '-' only, "
                         "starting with a letter or digit" % shown(name), errors.BAD_REQUEST)
    if name.endswith(CHECKSUM_SUFFIX) or name == STAGING:
        raise CloudError("image name %s is reserved" % shown(name), errors.BAD_REQUEST)
    return name


@dataclass
class StoreImage:
    """An image opened in the store; fd stays open so the version read is the version copied."""

    name: str
    store: str
    fd: int
    size: int
    allocated: int
    version: str
    sha256: str  # '' when the store has no sidecar

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _open_dir(path):
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise CloudError("image store %s is not readable: %s" % (path, exc.strerror), errors.INTERNAL) from None


def _resolve_in_store(store, dir_fd, name):
    """Follow at most one symlink, which must land directly inside the store; return the file name to open."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        raise CloudError("image %s not found in %s" % (shown(name), store), errors.IMAGE_NOT_FOUND) from None
    if not stat.S_ISLNK(st.st_mode):
        return name
    target = os.readlink(name, dir_fd=dir_fd)
    real_store = os.path.realpath(store)
    real_target = os.path.realpath(os.path.join(real_store, target))
    if os.path.dirname(real_target) != real_store:
        raise CloudError("image %s is a symlink that points outside %s: refused" % (shown(name), store),
                         errors.BAD_REQUEST)
    base = os.path.basename(real_target)
    check_image_name(base)
    return base


def _read_sidecar(store, dir_fd, name):
    sidecar = name + CHECKSUM_SUFFIX
    try:
        fd = os.open(sidecar, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise CloudError("checksum file %s in %s cannot be read: %s" % (sidecar, store, exc.strerror),
                         errors.IMAGE_INVALID) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CloudError("checksum file %s in %s is not a regular file" % (sidecar, store), errors.IMAGE_INVALID)
        text = os.read(fd, 4096).decode("ascii", "replace")
    finally:
        os.close(fd)
    digest = text.split()[0].lower() if text.split() else ""
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise CloudError("checksum file %s in %s does not start with a SHA-256 hex digest" % (sidecar, store),
                         errors.IMAGE_INVALID)
    return digest


def open_store_image(store, name):
    """Open image `name` of the store for reading; return a StoreImage (caller closes it)."""
    check_image_name(name)
    dir_fd = _open_dir(store)
    try:
        real_name = _resolve_in_store(store, dir_fd, name)
        try:
            # O_NONBLOCK: opening a fifo must not hang the hook; O_NOFOLLOW: no second symlink hop.
            fd = os.open(real_name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
        except FileNotFoundError:
            raise CloudError("image %s not found in %s" % (shown(name), store), errors.IMAGE_NOT_FOUND) from None
        except OSError as exc:
            raise CloudError("image %s in %s cannot be opened: %s" % (shown(name), store, exc.strerror),
                             errors.IMAGE_INVALID) from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise CloudError("image %s in %s is not a regular file" % (shown(name), store), errors.BAD_REQUEST)
        digest = _read_sidecar(store, dir_fd, real_name)
    finally:
        os.close(dir_fd)
    # The version names exactly this content: the published checksum when there is one, else the file's identity
    # (a new file moved into place from staging/ has a new inode, an edit in place a new mtime/ctime).
    identity = digest or "%d:%d:%d:%d" % (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    version = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return StoreImage(name=name, store=store, fd=fd, size=st.st_size, allocated=st.st_blocks * 512,
                      version=version, sha256=digest)


@dataclass(frozen=True)
class ImageInfo:
    name: str
    size: int
    mtime: float
    sha256: str


def list_images(store):
    """The images a user may launch: valid names of regular files (or in-store symlinks), sorted."""
    found = []
    try:
        names = sorted(os.listdir(store))
    except FileNotFoundError:
        return []
    for name in names:
        try:
            check_image_name(name)
            with open_store_image(store, name) as image:
                st = os.fstat(image.fd)
                found.append(ImageInfo(name, image.size, st.st_mtime, image.sha256))
        except CloudError:
            continue
    return found
