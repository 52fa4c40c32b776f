"""Browser login sessions, shared by the worker processes (state.StateStore).

The login form (POST /api/login) creates a session: a random 256-bit token in the cookie SESSION_COOKIE (HttpOnly,
SameSite=Strict, Path=/, Secure when the request came over TLS) and a second random token, the CSRF token, that
every HTML form of the session carries in the hidden field CSRF_FIELD (see csrf.py for when it is required).
The database keeps only the SHA-256 of the cookie token. A session ends at logout, after SESSION_IDLE seconds
without a request, SESSION_MAX seconds after the login, or as soon as its user's entry in the user file changes
(password, or the hash upgrade of users.py) or disappears.
"""

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

SESSION_COOKIE = "condor_cloud_session"
CSRF_FIELD = "csrf_token"
SESSION_IDLE = 2 * 3600
SESSION_MAX = 12 * 3600
_TOUCH_EVERY = 60  # seconds between updates of a session's last-seen time (fewer writes)


@dataclass(frozen=True)
class Session:
    key: str
    user: str
    csrf: str
    fingerprint: str


def fingerprint(user):
    """Changes when the user's stored password hash changes (or the user is removed and added again)."""
    return hashlib.sha256(("%s\0%s" % (user.name, user.hash)).encode("utf-8")).hexdigest()[:32]


def _key(token):
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class Sessions:
    def __init__(self, state, clock=time.time):
        self.state = state
        self.clock = clock

    def create(self, user):
        """(cookie token, Session) of a new session of user."""
        token = secrets.token_urlsafe(32)
        session = Session(_key(token), user.name, secrets.token_urlsafe(32), fingerprint(user))
        now = self.clock()
        with self.state.transaction() as conn:
            conn.execute("DELETE FROM sessions WHERE seen < ? OR created < ?", (now - SESSION_IDLE, now - SESSION_MAX))
            conn.execute("INSERT INTO sessions (id, user, csrf, fingerprint, created, seen) VALUES (?, ?, ?, ?, ?, ?)",
                         (session.key, session.user, session.csrf, session.fingerprint, now, now))
        return token, session

    def lookup(self, token):
        """The live Session of a cookie token, or None."""
        if not token or len(token) > 100:
            return None
        key = _key(token)
        rows = self.state.query("SELECT user, csrf, fingerprint, created, seen FROM sessions WHERE id = ?", (key,))
        if not rows:
            return None
        user, csrf, fp, created, seen = rows[0]
        now = self.clock()
        if now - seen > SESSION_IDLE or now - created > SESSION_MAX:
            self.end_key(key)
            return None
        if now - seen > _TOUCH_EVERY:
            with self.state.transaction() as conn:
                conn.execute("UPDATE sessions SET seen = ? WHERE id = ?", (now, key))
        return Session(key, user, csrf, fp)

    def end_key(self, key):
        with self.state.transaction() as conn:
            conn.execute("DELETE FROM sessions WHERE id = ?", (key,))

    def end(self, token):
        if token:
            self.end_key(_key(token))

    @staticmethod
    def token_matches(session, given):
        return bool(given) and hmac.compare_digest(session.csrf.encode(), str(given).encode("utf-8", "replace"))
