"""Per-user SSH public keys: KEYS_DIR/<user>/<keyname>.pub, one OpenSSH public key line each.

Only public keys are kept (this cloud never holds a private key). check_ssh_key is the one validator of a public key
line (a known key type, a base64 blob whose embedded type matches); the cloud-init seed uses it for CloudSSHKey.
parse_public_key adds the key store's rules: one key, and a comment in a small safe alphabet, so the text can be
carried in a job attribute (CloudSSHKey) without any quoting problem.
"""

import contextlib
import errno
import os
import re
from dataclasses import dataclass

from condor_cloud.core import errors
from condor_cloud.core.errors import CloudError, shown
from condor_cloud.core.sshkeys import MAX_KEY_LINE, fingerprint, parse_public_key
from condor_cloud.master.users import check_name

DEFAULT_DIR = "/var/lib/condor-cloud/keys"
_KEYNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_KEYS = 100


class NoSuchKey(CloudError):
    """The user has no key of that name."""

    def __init__(self, name):
        super().__init__("no key %s" % shown(name), errors.BAD_REQUEST)


def check_keyname(name):
    if not isinstance(name, str) or not _KEYNAME_RE.fullmatch(name):
        raise CloudError("key name %s is not allowed: use 1-64 letters, digits, '.', '_' or '-', starting with a "
                         "letter or digit" % shown(name), errors.BAD_REQUEST)
    return name


@dataclass(frozen=True)
class Key:
    owner: str
    name: str
    public_key: str

    @property
    def fingerprint(self):
        return fingerprint(self.public_key)


def _write_error(exc, directory):
    """The CloudError for a failed write in the key store: NO_SPACE (HTTP 507) when its filesystem is full."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        # Shown to API clients: no server path (the API logs the error; CLOUD_API_KEYS_DIR names the store).
        return CloudError("the key was not saved: the server's key store is full; nothing was changed, try again "
                          "later", errors.NO_SPACE)
    return CloudError("the key was not saved: cannot write in the key store %s (%s)"
                      % (directory, exc.strerror or exc), errors.INTERNAL)


class KeyStore:
    def __init__(self, root=DEFAULT_DIR):
        self.root = root

    def _dir(self, owner):
        return os.path.join(self.root, check_name(owner))

    def list(self, owner):
        directory = self._dir(owner)
        try:
            names = sorted(os.listdir(directory))
        except FileNotFoundError:
            return []
        found = []
        for filename in names:
            if not filename.endswith(".pub") or not _KEYNAME_RE.fullmatch(filename[:-4]):
                continue
            with contextlib.suppress(CloudError):
                found.append(self.get(owner, filename[:-4]))
        return found

    def owners(self):
        try:
            return sorted(n for n in os.listdir(self.root) if os.path.isdir(os.path.join(self.root, n)))
        except FileNotFoundError:
            return []

    def get(self, owner, name):
        path = os.path.join(self._dir(owner), check_keyname(name) + ".pub")
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            raise NoSuchKey(name) from None
        except OSError as exc:
            raise CloudError("key %s cannot be read: %s" % (shown(name), exc.strerror), errors.INTERNAL) from None
        with os.fdopen(fd, encoding="ascii", errors="replace") as f:
            text = f.read(MAX_KEY_LINE + 1)
        return Key(owner, name, parse_public_key(text))

    def add(self, owner, name, public_key):
        """Store a new key (never replacing one). A full or failing disk is a CloudError (errors.NO_SPACE when
        full) and leaves no file behind; the keys already stored are untouched."""
        line = parse_public_key(public_key)
        check_keyname(name)
        directory = self._dir(owner)
        try:
            os.makedirs(directory, mode=0o750, exist_ok=True)
        except OSError as exc:
            raise _write_error(exc, directory) from None
        if len(self.list(owner)) >= MAX_KEYS:
            raise CloudError("you have %d keys already; delete one first" % MAX_KEYS, errors.BAD_REQUEST)
        tmp = os.path.join(directory, ".%s.tmp-%d" % (name, os.getpid()))
        try:
            try:
                with open(tmp, "w", encoding="ascii") as f:
                    f.write(line + "\n")
                    f.flush()
                    os.fsync(f.fileno())
                # link() fails if the name exists: no silent replacement of a key somebody's instances use.
                os.link(tmp, os.path.join(directory, name + ".pub"))
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        except FileExistsError:
            raise CloudError("key %s exists already" % name, errors.BAD_REQUEST) from None
        except OSError as exc:
            raise _write_error(exc, directory) from None
        return Key(owner, name, line)

    def remove(self, owner, name):
        path = os.path.join(self._dir(owner), check_keyname(name) + ".pub")
        try:
            os.unlink(path)
        except FileNotFoundError:
            raise NoSuchKey(name) from None
