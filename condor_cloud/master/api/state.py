"""Runtime state shared by the API's worker processes: login sessions and failed-login counters, in one SQLite
database in a private runtime directory.

gunicorn runs CLOUD_API_WORKERS processes. A login made through one worker must be known to the others, and a
throttle that each worker kept for itself would multiply an attacker's budget by the number of workers; SQLite (in
the standard library, with its own locking between processes) is the smallest store they can share.

Where: $RUNTIME_DIRECTORY (systemd's RuntimeDirectory=condor-cloud-api) if set, else STATE_DIR; when that cannot be
created by this account (no RuntimeDirectory, not root), FALLBACK_DIR, a private directory in the temporary
directory (systemd's PrivateTmp, or the chroot's /tmp in the test sandbox). A directory is used only when it is a
real directory owned by this account; it is made mode 0700. The state is disposable: removing it logs everybody out
and forgets the counters.

Connections are opened lazily, per process and thread: the application is built before gunicorn forks its workers,
and an SQLite connection must never cross a fork.
"""

import contextlib
import logging
import os
import sqlite3
import stat
import tempfile
import threading

log = logging.getLogger("condor_cloud.master.api")

STATE_DIR = "/run/condor-cloud-api"
FALLBACK_DIR = os.path.join(tempfile.gettempdir(), "condor-cloud-api-%d" % os.geteuid())
DB_NAME = "state.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS buckets (key TEXT PRIMARY KEY, level REAL NOT NULL, updated REAL NOT NULL);
CREATE INDEX IF NOT EXISTS buckets_updated ON buckets (updated);
CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, user TEXT NOT NULL, csrf TEXT NOT NULL,
                                     fingerprint TEXT NOT NULL, created REAL NOT NULL, seen REAL NOT NULL);
CREATE INDEX IF NOT EXISTS sessions_seen ON sessions (seen);
"""


class StateError(Exception):
    pass


def private_dir(path):
    """Create (mode 0700) or check a directory that only this account can use; return it or raise OSError."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise PermissionError("%s is not a directory owned by uid %d" % (path, os.geteuid()))
    if stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(path, 0o700)
    return path


def default_dir():
    """The first usable directory of $RUNTIME_DIRECTORY, STATE_DIR, FALLBACK_DIR."""
    runtime = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    problems = []
    for candidate in ([runtime] if runtime else []) + [STATE_DIR, FALLBACK_DIR]:
        try:
            return private_dir(candidate)
        except OSError as exc:
            problems.append("%s: %s" % (candidate, exc))
    raise StateError("no usable directory for the API's sessions and login counters (%s)" % "; ".join(problems))


class StateStore:
    """The shared database. directory=None: default_dir(), chosen at first use."""

    def __init__(self, directory=None):
        self._directory = directory
        self._local = threading.local()
        self._lock = threading.Lock()

    @property
    def path(self):
        with self._lock:
            if self._directory is None:
                self._directory = default_dir()
                log.info("sessions and login counters are kept in %s", self._directory)
            else:
                private_dir(self._directory)
        return os.path.join(self._directory, DB_NAME)

    def _open(self, path):
        conn = sqlite3.connect(path, timeout=10, isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous=OFF")  # disposable state: no fsync per login
            conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError:
            conn.close()
            raise
        return conn

    def connection(self):
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            path = self.path
            try:
                conn = self._open(path)
            except sqlite3.DatabaseError as exc:
                # Not a database (damaged, or something else put there): the state is disposable, start afresh.
                log.warning("replacing the damaged state database %s: %s", path, exc)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                conn = self._open(path)
            local.conn, local.pid = conn, os.getpid()
        return local.conn

    def query(self, sql, args=()):
        return self.connection().execute(sql, args).fetchall()

    @contextlib.contextmanager
    def transaction(self):
        """An exclusive write transaction (BEGIN IMMEDIATE: read-modify-write is atomic across processes)."""
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
