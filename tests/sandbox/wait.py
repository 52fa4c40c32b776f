"""The one polling loop of the harness and the integration tests: wait_for(what, probe, timeout).

A timeout says what was awaited, for how long, the last value the probe returned and, from explain(), what the
pool looked like (hold reason, logs), so a failure reads without a rerun.  A probe that raises ends the wait at once
(tests assert inside probes when a state rules out success)."""
import time

from errors import WaitTimeout


def wait_for(what, probe, timeout, interval=1.0, explain=None, accept=bool):
    """The first value of probe() that accept() takes (by default: the first true one), asking every interval
    seconds for up to timeout seconds (at least once, and once more at the end).
    interval: seconds, or a function of the last value giving them (e.g. from a Retry-After header).
    explain: a function whose text is added to the failure message (called only on timeout)."""
    end = time.monotonic() + timeout
    while True:
        value = probe()
        if accept(value):
            return value
        remaining = end - time.monotonic()
        if remaining <= 0:
            break
        time.sleep(min(interval(value) if callable(interval) else interval, remaining))
    message = "timed out after %ss waiting for %s; last value seen: %s" % (timeout, what, _short(value))
    if explain is not None:
        message += "\n" + explain()
    raise WaitTimeout(message, value)


def _short(value, limit=2000):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
