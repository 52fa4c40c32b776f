"""Failed-login throttle, per client and per user name, shared by the worker processes (state.StateStore).

Every password check costs a deliberately slow scrypt (users.py). The rule, checked BEFORE any password is looked
at (even one the success cache would accept, so that a throttled client cannot keep testing guesses against it):

- per client (an IPv4 address, or the /64 of an IPv6 address): a counter that grows by one with each failed login
  and drains at CLIENT_LIMIT per CLIENT_WINDOW seconds. A client whose counter is above CLIENT_LIMIT - 1 gets
  429 Too Many Requests with Retry-After, without a password check (cheap), until it has drained below that.
- per user name (failures from all clients together, capped at twice the limit): NAME_LIMIT per NAME_WINDOW. When a
  name is over its limit, only clients that themselves have NAME_GRACE or more recent failures are refused for it.
  A flood against "alice" from other addresses therefore never locks alice out: her own client has no recent
  failures (or a few typos), and a browser that is logged in uses its session and is not checked at all.

Successful logins do not reset the counters (an attacker with an account of its own could otherwise wash its
failures away). Behind a reverse proxy every client would share the proxy's address: the API is meant to be
reached directly (gunicorn serves TLS itself).
"""

import ipaddress
import math
import time

# Tunables (module constants, not configuration knobs).
CLIENT_LIMIT = 10
CLIENT_WINDOW = 300.0
NAME_LIMIT = 20
NAME_WINDOW = 300.0
NAME_GRACE = 3


class Throttled(Exception):
    def __init__(self, retry_after):
        super().__init__("too many failed logins: try again in %d seconds" % retry_after)
        self.retry_after = retry_after


def client_key(address):
    """The throttled unit of a client address: the address itself, or its /64 for IPv6."""
    try:
        ip = ipaddress.ip_address((address or "").split("%")[0])
    except ValueError:
        return "unknown"
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.version == 6:
        return str(ipaddress.ip_network("%s/64" % ip, strict=False))
    return str(ip)


class LoginThrottle:
    def __init__(self, state, clock=time.time):
        self.state = state
        self.clock = clock

    @staticmethod
    def _drained(row, limit, window, now):
        if not row:
            return 0.0
        level, updated = row
        return max(0.0, level - max(0.0, now - updated) * limit / window)

    def _levels(self, client, name, now):
        rows = dict((k, (lv, up)) for k, lv, up in self.state.query(
            "SELECT key, level, updated FROM buckets WHERE key IN (?, ?)", ("c:" + client, "n:" + name)))
        return (self._drained(rows.get("c:" + client), CLIENT_LIMIT, CLIENT_WINDOW, now),
                self._drained(rows.get("n:" + name), NAME_LIMIT, NAME_WINDOW, now))

    def check(self, address, name):
        """Raise Throttled when this client may not try a password (for this name) now."""
        now = self.clock()
        client = client_key(address)
        c, n = self._levels(client, name or "", now)
        if c > CLIENT_LIMIT - 1:
            raise Throttled(self._wait(c - (CLIENT_LIMIT - 1), CLIENT_LIMIT, CLIENT_WINDOW))
        if name and n > NAME_LIMIT - 1 and c > NAME_GRACE - 1:
            raise Throttled(min(self._wait(n - (NAME_LIMIT - 1), NAME_LIMIT, NAME_WINDOW),
                                self._wait(c - (NAME_GRACE - 1), CLIENT_LIMIT, CLIENT_WINDOW)))

    @staticmethod
    def _wait(excess, limit, window):
        return max(1, int(math.ceil(excess * window / limit)))

    def failed(self, address, name):
        """Count one failed login of this client (and of this name, when it is a possible user name)."""
        now = self.clock()
        client = client_key(address)
        with self.state.transaction() as conn:
            updates = [("c:" + client, CLIENT_LIMIT, CLIENT_WINDOW, CLIENT_LIMIT + 1)]
            if name:
                updates.append(("n:" + name, NAME_LIMIT, NAME_WINDOW, 2 * NAME_LIMIT))
            for key, limit, window, cap in updates:
                row = conn.execute("SELECT level, updated FROM buckets WHERE key = ?", (key,)).fetchone()
                level = min(cap, self._drained(row, limit, window, now) + 1)
                conn.execute("INSERT OR REPLACE INTO buckets (key, level, updated) VALUES (?, ?, ?)",
                             (key, level, now))
            # Forget counters that have drained completely (a flood of made-up names must not grow the table).
            conn.execute("DELETE FROM buckets WHERE updated < ?",
                         (now - 2 * max(CLIENT_WINDOW, NAME_WINDOW) - 1,))
