"""The API's user file: one user a line, `name:role:scrypt:N:r:p:salt:hash` (salt and hash in base64).

Passwords are stored only as salted scrypt hashes (memory-hard, slow on purpose). There is no default user and no
default password: an administrator creates users with `condor-cloud user add`. The file is rewritten atomically
(temporary file + rename) under an exclusive lock, keeping its mode and group (0640 root:condor-cloud-api when
packaged), so the API, which only reads it, never sees half a file.

A hash made with weaker parameters than SCRYPT_N/R/P is replaced by a stronger one at its user's next successful
login (the password is known only then). When the API's account cannot write the file (the packaged layout), that
is logged once per version of the file and the login goes on; `condor-cloud user passwd` upgrades it as root.
Passwords never contain control characters: they are refused when set and never match when checked (scrypt would
otherwise treat "pw" and "pw\0" as the same password).
"""

import base64
import contextlib
import fcntl
import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass

from condor_cloud.core import errors
from condor_cloud.core.errors import CloudError, shown

log = logging.getLogger("condor_cloud.master.users")

DEFAULT_PATH = "/etc/condor-cloud/users"
DEFAULT_GROUP = "condor-cloud-api"  # a new file is made readable by this group (the API's account), if it exists
ROLES = ("user", "admin")
# A login name: lower-case letter or '_' first, then a small safe alphabet (it also names key directories and
# appears in job attributes, so it must never need quoting).
_NAME_RE = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")
# scrypt cost (current guidance): N=2**17, r=8, p=1 uses 128 MiB and ~0.3-0.5 s per check. The API remembers
# successful checks for a while (UserFile.cache_seconds), so HTTP Basic clients do not pay this per request.
SCRYPT_N = 1 << 17
SCRYPT_R = 8
SCRYPT_P = 1
# A stored hash may ask for at most this much memory (a forged or mistyped line must not exhaust the server).
MAX_SCRYPT_MEMORY = 256 << 20
MIN_PASSWORD = 8
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f]")


def _scrypt_memory(n, r, p):
    return 128 * r * (n + p + 2)


def is_valid_name(name):
    return isinstance(name, str) and _NAME_RE.fullmatch(name) is not None


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
    if _CONTROL_RE.search(password):
        raise CloudError("a password may not contain control characters (NUL, tab, newline, ...)", errors.BAD_REQUEST)
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p,
                            maxmem=_scrypt_memory(n, r, p) + (1 << 20), dklen=32)
    return "scrypt:%d:%d:%d:%s:%s" % (n, r, p, _b64(salt), _b64(digest))


def _cost(stored):
    """(n, r, p) of a stored form, or None when it is not a usable scrypt form."""
    try:
        scheme, n, r, p, _salt, _digest = stored.split(":")
        n, r, p = int(n), int(r), int(p)
    except (ValueError, AttributeError):
        return None
    if scheme != "scrypt" or min(n, r, p) < 1 or _scrypt_memory(n, r, p) > MAX_SCRYPT_MEMORY or p > 16:
        return None
    return n, r, p


def is_weaker(stored):
    """True when a usable stored form costs less than SCRYPT_N/R/P (and should be upgraded)."""
    cost = _cost(stored)
    return cost is not None and (cost[0] < SCRYPT_N or cost[1] < SCRYPT_R or cost[2] < SCRYPT_P)


def verify_password(password, stored):
    """True when password matches the stored form (constant-time comparison). A password with a control
    character never matches."""
    if not isinstance(password, str) or _CONTROL_RE.search(password):
        return False
    cost = _cost(stored)
    if cost is None:
        return False
    n, r, p = cost
    try:
        _, _, _, _, salt, digest = stored.split(":")
        salt = base64.b64decode(salt, validate=True)
        digest = base64.b64decode(digest, validate=True)
        got = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p,
                             maxmem=_scrypt_memory(n, r, p) + (1 << 20), dklen=len(digest))
    except (ValueError, TypeError, UnicodeError, MemoryError):
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
        self._upgrade_blocked = None  # the file version (stamp) whose hashes this process cannot upgrade

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
        except (OSError, UnicodeDecodeError) as exc:
            raise CloudError("the user file %s cannot be read: %s" % (self.path, getattr(exc, "strerror", None) or exc),
                             errors.INTERNAL) from None
        with self._lock:
            self._stamp, self._users, self._ok = stamp, users, {}
        return users

    def get(self, name):
        return self.load().get(name)

    def authenticate(self, name, password):
        """The User when name/password are right, else None. A right password whose stored hash is weaker than
        SCRYPT_N/R/P has its hash upgraded (see upgrade_hash)."""
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or not isinstance(password, str):
            return None
        user = self.get(name)
        if user is None:
            # Spend the same time as a real check, so timing does not tell which names exist.
            verify_password(password, "scrypt:%d:%d:%d:AAAAAAAAAAAAAAAAAAAAAA==:%s"
                            % (SCRYPT_N, SCRYPT_R, SCRYPT_P, _b64(b"\0" * 32)))
            return None
        now = time.monotonic()
        with self._lock:
            expires = self._ok.get(self._token(user, password))
        if expires is not None and expires > now:
            return user
        if not verify_password(password, user.hash):
            return None
        if is_weaker(user.hash):
            user = self.upgrade_hash(user, password) or user
        self._remember(user, password)
        return user

    def _token(self, user, password):
        return hmac.new(self._cache_key, ("%s\0%s\0%s" % (user.name, user.hash, password)).encode("utf-8",
                                                                                              "surrogatepass"),
                        hashlib.sha256).digest()

    def _remember(self, user, password):
        now = time.monotonic()
        with self._lock:
            if len(self._ok) > 1000:
                self._ok = {k: v for k, v in self._ok.items() if v > now}
            self._ok[self._token(user, password)] = now + self.cache_seconds

    def upgrade_hash(self, user, password):
        """Store a SCRYPT_N/R/P hash of user's (just verified) password; the new User, or None when the file cannot
        be written (logged once per version of the file, then not tried again until the file changes)."""
        with self._lock:
            stamp = self._stamp
            if self._upgrade_blocked is not None and self._upgrade_blocked == stamp:
                return None
        try:
            with self._editing() as users:
                current = users.get(user.name)
                if current is None or current.hash != user.hash:
                    return None  # changed meanwhile (passwd, or another worker upgraded it)
                users[user.name] = User(user.name, current.role, hash_password(password))
                upgraded = users[user.name]
        except (CloudError, OSError) as exc:
            with self._lock:
                self._upgrade_blocked = stamp
            log.warning("cannot upgrade the password hash of %s to scrypt N=%d in %s (%s); it stays weaker until "
                        "'condor-cloud user passwd %s' is run", user.name, SCRYPT_N, self.path,
                        getattr(exc, "strerror", None) or exc, user.name)
            return None
        log.info("upgraded the password hash of %s to scrypt N=%d, r=%d, p=%d", user.name, SCRYPT_N, SCRYPT_R,
                 SCRYPT_P)
        self.load()
        return upgraded

    # -- editing (the CLI, as root) ----------------------------------------------------------------------
    @contextlib.contextmanager
    def _editing(self):
        def _write_error(what, exc):
            # A full filesystem is NO_SPACE (the CLI says so, the API answers 507), anything else INTERNAL.
            import errno

            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                return CloudError("%s: its filesystem is full (%s); free some space and try again"
                                  % (what, exc.strerror), errors.NO_SPACE)
            return CloudError("%s: %s" % (what, exc.strerror or exc), errors.INTERNAL)

        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(directory, mode=0o755, exist_ok=True)
            lock_fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise _write_error("cannot lock the user file %s" % self.path, exc) from None
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            try:
                with open(self.path, encoding="utf-8") as f:
                    users = parse(f.read(), self.path)
                st = os.stat(self.path)
                mode, gid = st.st_mode & 0o777, st.st_gid
            except FileNotFoundError:
                users, mode, gid = {}, 0o640, self._group_id()
            before = dict(users)
            yield users
            if users == before and os.path.exists(self.path):
                return
            tmp = "%s.tmp-%d" % (self.path, os.getpid())
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(format_users(users))
                    f.flush()
                    if gid is not None:
                        with contextlib.suppress(PermissionError):
                            os.fchown(f.fileno(), -1, gid)
                    os.fchmod(f.fileno(), mode)
                    os.fsync(f.fileno())
                os.rename(tmp, self.path)
            except BaseException as exc:
                # The user file stays as it was, and no temporary file stays behind (also on a full disk).
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                if isinstance(exc, OSError):
                    raise _write_error("cannot save the user file %s (nothing was changed)" % self.path,
                                       exc) from None
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
