"""The API's user file: one user a line, `name:role:scrypt:N:r:p:salt:hash` (salt and hash in base64).

Passwords are stored only as salted scrypt hashes (memory-hard, slow on purpose). There is no default user and no
default password: an administrator creates users with `condor-cloud user add`. The file is rewritten atomically
(temporary file + rename) under an exclusive lock, keeping its mode and group (0640 root:condor-cloud-api when
packaged), so the API, which only reads it, never sees half a file.
"""

import base64
import contextlib
import fcntl
import hashlib
import hmac
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass

from . import errors
from .errors import CloudError, shown

DEFAULT_PATH = "/etc/condor-cloud/users"
DEFAULT_GROUP = "condor-cloud-api"  # a new file is made readable by this group (the API's account), if it exists
ROLES = ("user", "admin")
# A login name: lower-case letter or '_' first, then a small safe alphabet (it also names key directories and
# appears in job attributes, so it must never need quoting).
_NAME_RE = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")
# scrypt cost: N=2**15, r=8, p=1 uses 32 MiB and ~0.1 s per check.
SCRYPT_N = 1 << 15
SCRYPT_R = 8
SCRYPT_P = 1
_MAXMEM = 64 << 20
MIN_PASSWORD = 8


def check_name(name):
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise CloudError("user name %s is not allowed: use 1-32 lower-case letters, digits, '_', '.' or '-', "
                         "starting with a letter or '_'" % shown(name), errors.BAD_REQUEST)
    return name


def check_role(role):
    if role not in ROLES:
        raise CloudError("role %s must be one of %s" % (shown(role), ", ".join(ROLES)), errors.BAD_REQUEST)
    return role


def _b64(data):
    return base64.b64encode(data).decode("ascii")


def hash_password(password, n=None, r=None, p=None, salt=None):
    """The stored form of a password: 'scrypt:N:r:p:salt:hash' (cost: the module's SCRYPT_* unless given)."""
    n, r, p = n or SCRYPT_N, r or SCRYPT_R, p or SCRYPT_P
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise CloudError("a password needs at least %d characters" % MIN_PASSWORD, errors.BAD_REQUEST)
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=32)
    return "scrypt:%d:%d:%d:%s:%s" % (n, r, p, _b64(salt), _b64(digest))


def verify_password(password, stored):
    """True when password matches the stored form (constant-time comparison)."""
    try:
        scheme, n, r, p, salt, digest = stored.split(":")
        if scheme != "scrypt":
            return False
        n, r, p = int(n), int(r), int(p)
        salt = base64.b64decode(salt, validate=True)
        digest = base64.b64decode(digest, validate=True)
        if n > (1 << 20) or r > 32 or p > 16:
            return False
        got = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM,
                             dklen=len(digest))
    except (ValueError, TypeError, UnicodeError):
        return False
    return hmac.compare_digest(got, digest)


def generate_password():
    """A random password for a person to copy (about 120 bits)."""
    return secrets.token_urlsafe(15)


@dataclass(frozen=True)
class User:
    name: str
    role: str
    hash: str

    @property
    def is_admin(self):
        return self.role == "admin"


def parse(text, path="users file"):
    users = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":", 2)
        if len(parts) != 3 or not _NAME_RE.fullmatch(parts[0]) or parts[1] not in ROLES:
            raise CloudError("%s line %d is not 'name:role:hash'" % (path, lineno), errors.INTERNAL)
        users[parts[0]] = User(parts[0], parts[1], parts[2])
    return users


def format_users(users):
    lines = ["# Condor Cloud API users: name:role:scrypt hash. Edit with 'condor-cloud user ...'."]
    lines += ["%s:%s:%s" % (u.name, u.role, u.hash) for u in sorted(users.values(), key=lambda u: u.name)]
    return "\n".join(lines) + "\n"


class UserFile:
    """Read (cached by mtime) and edit the user file."""

    def __init__(self, path=DEFAULT_PATH, group=DEFAULT_GROUP):
        self.path = path
        self.group = group
        self._lock = threading.Lock()
        self._stamp = None
        self._users = {}
        # Successful checks are remembered for a short while (keyed by a keyed hash of name and password, never
        # the password), so that HTTP Basic, which sends the password with every request, costs one scrypt per
        # client per minute, not per request.
        self._ok = {}
        self._cache_key = secrets.token_bytes(32)
        self.cache_seconds = 60

    # -- reading --------------------------------------------------------------------------------------------
    def load(self):
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            with self._lock:
                self._stamp, self._users, self._ok = None, {}, {}
            return {}
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        with self._lock:
            if stamp == self._stamp:
                return self._users
        try:
            with open(self.path, encoding="utf-8") as f:
                users = parse(f.read(), self.path)
        except PermissionError:
            raise CloudError("the user file %s is not readable by this account" % self.path, errors.INTERNAL) from None
        with self._lock:
            self._stamp, self._users, self._ok = stamp, users, {}
        return users

    def get(self, name):
        return self.load().get(name)

    def authenticate(self, name, password):
        """The User when name/password are right, else None."""
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or not isinstance(password, str):
            return None
        user = self.get(name)
        if user is None:
            # Spend the same time as a real check, so timing does not tell which names exist.
            verify_password(password, "scrypt:%d:%d:%d:AAAAAAAAAAAAAAAAAAAAAA==:%s"
                            % (SCRYPT_N, SCRYPT_R, SCRYPT_P, _b64(b"\0" * 32)))
            return None
        token = hmac.new(self._cache_key, ("%s\0%s\0%s" % (name, user.hash, password)).encode("utf-8"),
                         hashlib.sha256).digest()
        now = time.monotonic()
        with self._lock:
            expires = self._ok.get(token)
        if expires is not None and expires > now:
            return user
        if not verify_password(password, user.hash):
            return None
        with self._lock:
            if len(self._ok) > 1000:
                self._ok = {k: v for k, v in self._ok.items() if v > now}
            self._ok[token] = now + self.cache_seconds
        return user

    # -- editing (the CLI, as root) ----------------------------------------------------------------------
    @contextlib.contextmanager
    def _editing(self):
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(directory, mode=0o755, exist_ok=True)
            lock_fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise CloudError("cannot lock the user file %s: %s" % (self.path, exc.strerror), errors.INTERNAL) from None
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            try:
                with open(self.path, encoding="utf-8") as f:
                    users = parse(f.read(), self.path)
                st = os.stat(self.path)
                mode, gid = st.st_mode & 0o777, st.st_gid
            except FileNotFoundError:
                users, mode, gid = {}, 0o640, self._group_id()
            yield users
            tmp = "%s.tmp-%d" % (self.path, os.getpid())
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(format_users(users))
                    f.flush()
                    if gid is not None:
                        with contextlib.suppress(PermissionError):
                            os.fchown(f.fileno(), -1, gid)
                    os.fchmod(f.fileno(), mode)
                    os.fsync(f.fileno())
                os.rename(tmp, self.path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
        finally:
            os.close(lock_fd)

    def _group_id(self):
        import grp

        try:
            return grp.getgrnam(self.group).gr_gid if self.group else None
        except KeyError:
            return None

    def add(self, name, password, role="user"):
        check_name(name)
        check_role(role)
        stored = hash_password(password)
        with self._editing() as users:
            if name in users:
                raise CloudError("user %s exists already (use 'condor-cloud user passwd')" % name, errors.BAD_REQUEST)
            users[name] = User(name, role, stored)
        return users[name]

    def set_password(self, name, password):
        check_name(name)
        stored = hash_password(password)
        with self._editing() as users:
            if name not in users:
                raise CloudError("no user %s" % name, errors.BAD_REQUEST)
            users[name] = User(name, users[name].role, stored)

    def set_role(self, name, role):
        check_name(name)
        check_role(role)
        with self._editing() as users:
            if name not in users:
                raise CloudError("no user %s" % name, errors.BAD_REQUEST)
            users[name] = User(name, role, users[name].hash)

    def remove(self, name):
        check_name(name)
        with self._editing() as users:
            if name not in users:
                raise CloudError("no user %s" % name, errors.BAD_REQUEST)
            del users[name]
