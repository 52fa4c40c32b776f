"""Access keys of the EC2 Query API: an access key id and a secret per key, owned by a user of the user file.

AWS Signature Version 4 is an HMAC keyed by the secret itself, so the server must hold the secret (a hash of it
would not do). The file (CLOUD_EC2_ACCESS_KEYS) has one key a line, `ID:USER:CREATED:SECRET`; it is mode 0640, owned
by the API's account, in a directory (0750) only that account and root can enter: both the CLI (root) and the
browser page (the API's account) write it. It is rewritten atomically (temporary file + rename) under an exclusive
lock, keeping its owner and mode; a new file takes the owner and group of its directory. A secret is shown once, to
whoever created it, and never logged (AccessKey's repr leaves it out).
"""

import contextlib
import fcntl
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass, field

from condor_cloud.core import errors
from condor_cloud.core.errors import CloudError, shown
from condor_cloud.master.users import check_name

DEFAULT_PATH = "/var/lib/condor-cloud/ec2/access-keys"
MAX_PER_USER = 5
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
# AWS's own ids are 20 characters from this alphabet, starting AKIA for long-term keys; ours start AKCC.
_ID_RE = re.compile(r"AKCC[A-Z2-7]{16}")
_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{40}")


class NoSuchAccessKey(CloudError):
    def __init__(self, key_id):
        super().__init__("no access key %s" % shown(key_id), errors.BAD_REQUEST)


@dataclass(frozen=True)
class AccessKey:
    id: str
    user: str
    created: int
    secret: str = field(repr=False)

    def public(self):
        """What may be shown to anybody allowed to see the key: everything but the secret."""
        return {"id": self.id, "user": self.user, "created": self.created}


def check_key_id(key_id):
    if not isinstance(key_id, str) or not _ID_RE.fullmatch(key_id):
        raise NoSuchAccessKey(key_id)
    return key_id


def new_key(user, now=None):
    """A new AccessKey with a random id and a random 240-bit secret."""
    key_id = "AKCC" + "".join(secrets.choice(_ALPHABET) for _ in range(16))
    return AccessKey(key_id, check_name(user), int(now if now is not None else time.time()),
                     secrets.token_urlsafe(30))


def parse(text, path="access key file"):
    keys = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if (len(parts) != 4 or not _ID_RE.fullmatch(parts[0]) or not parts[2].isdigit()
                or not _SECRET_RE.fullmatch(parts[3])):
            raise CloudError("%s line %d is not 'ID:USER:CREATED:SECRET'" % (path, lineno), errors.INTERNAL)
        try:
            check_name(parts[1])
        except CloudError:
            raise CloudError("%s line %d names no valid user" % (path, lineno), errors.INTERNAL) from None
        keys[parts[0]] = AccessKey(parts[0], parts[1], int(parts[2]), parts[3])
    return keys


def format_keys(keys):
    lines = ["# Condor Cloud EC2 access keys: ID:USER:CREATED:SECRET. Edit with 'condor-cloud user access-key ...'."]
    lines += ["%s:%s:%d:%s" % (k.id, k.user, k.created, k.secret)
              for k in sorted(keys.values(), key=lambda k: (k.user, k.created, k.id))]
    return "\n".join(lines) + "\n"


class AccessKeyStore:
    """Read (cached by the file's identity) and edit the access key file."""

    def __init__(self, path=DEFAULT_PATH):
        self.path = path
        self._lock = threading.Lock()
        self._stamp = None
        self._keys = {}

    def load(self):
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            with self._lock:
                self._stamp, self._keys = None, {}
            return {}
        except OSError as exc:
            raise CloudError("the access key file %s cannot be read: %s" % (self.path, exc.strerror),
                             errors.INTERNAL) from None
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        with self._lock:
            if stamp == self._stamp:
                return self._keys
        try:
            with open(self.path, encoding="ascii") as f:
                keys = parse(f.read(), self.path)
        except (OSError, UnicodeDecodeError) as exc:
            raise CloudError("the access key file %s cannot be read: %s"
                             % (self.path, getattr(exc, "strerror", None) or exc), errors.INTERNAL) from None
        with self._lock:
            self._stamp, self._keys = stamp, keys
        return keys

    def get(self, key_id):
        """The AccessKey of this id, or None."""
        if not isinstance(key_id, str) or not _ID_RE.fullmatch(key_id):
            return None
        return self.load().get(key_id)

    def list(self, user=None):
        """Keys of user (None: everybody's), oldest first."""
        found = [k for k in self.load().values() if user is None or k.user == user]
        return sorted(found, key=lambda k: (k.user, k.created, k.id))

    def create(self, user, now=None):
        """A new key for user (at most MAX_PER_USER each); the returned AccessKey is the only copy of the secret
        anybody gets."""
        key = new_key(user, now)
        with self._editing() as keys:
            if sum(1 for k in keys.values() if k.user == user) >= MAX_PER_USER:
                raise CloudError("%s has %d access keys already: delete one first" % (user, MAX_PER_USER),
                                 errors.BAD_REQUEST)
            keys[key.id] = key
        return key

    def delete(self, key_id, user=None):
        """Delete a key; with user, only one of that user's (another's is reported as missing)."""
        check_key_id(key_id)
        with self._editing() as keys:
            key = keys.get(key_id)
            if key is None or (user is not None and key.user != user):
                raise NoSuchAccessKey(key_id)
            del keys[key_id]
        return key

    def delete_user(self, user):
        """Delete every key of user; the number deleted."""
        with self._editing() as keys:
            gone = [k for k, v in keys.items() if v.user == user]
            for k in gone:
                del keys[k]
        return len(gone)

    @contextlib.contextmanager
    def _editing(self):
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(directory, mode=0o750, exist_ok=True)
            lock_fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise CloudError("cannot lock the access key file %s: %s" % (self.path, exc.strerror),
                             errors.INTERNAL) from None
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            try:
                with open(self.path, encoding="ascii") as f:
                    keys = parse(f.read(), self.path)
                st = os.stat(self.path)
            except FileNotFoundError:
                keys, st = {}, None
            except (OSError, UnicodeDecodeError) as exc:
                raise CloudError("the access key file %s cannot be read: %s"
                                 % (self.path, getattr(exc, "strerror", None) or exc), errors.INTERNAL) from None
            before = dict(keys)
            yield keys
            if keys == before and st is not None:
                return
            if st is None:  # a new file belongs to whoever owns its directory (the API's account)
                st = os.stat(directory)
                mode = 0o640
            else:
                mode = st.st_mode & 0o777
            self._write(format_keys(keys), mode, st.st_uid, st.st_gid)
        finally:
            os.close(lock_fd)

    def _write(self, text, mode, uid, gid):
        tmp = "%s.tmp-%d" % (self.path, os.getpid())
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            try:
                with os.fdopen(fd, "w", encoding="ascii") as f:
                    f.write(text)
                    f.flush()
                    if (uid, gid) != (os.geteuid(), os.getegid()):
                        with contextlib.suppress(PermissionError):
                            os.fchown(f.fileno(), uid, gid)
                    os.fchmod(f.fileno(), mode & 0o660)
                    os.fsync(f.fileno())
                os.rename(tmp, self.path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            raise CloudError("cannot write the access key file %s: %s" % (self.path, exc.strerror),
                             errors.INTERNAL) from None
