"""Reading an instance's serial console from the master: `condor_tail` as the job's owner (HTCondor's STARTER_PEEK
reads the job's output file, console.log, in its sandbox on the node; see condor_cloud/node/console_log.py for how
that file is made), and the text made safe for a terminal or a web page."""

import re
import subprocess

from condor_cloud.core import errors
from condor_cloud.core.errors import CloudError, shown

MAX_BYTES = 1 << 20          # what a reader may ask for at once
DEFAULT_BYTES = 16 << 10
# An API request (Deltacloud or EC2) waits at most this long for condor_tail, then answers "not yet" (503 +
# Retry-After; EC2: no output), so no request holds a server worker while a node is busy (the starter's fixed
# 30 s wait at a domain's start). Until the starter is reachable condor_tail asks again every 2 s
# (condor_tools/tail.cpp:232): 5 s hold three tries, so a client that asks again at once learns of the first
# line at most about 2 s after HTCondor could show it.
REQUEST_TIMEOUT = 5


# ANSI/VT escape sequences, then any other control character except newline and tab.
_ESCAPES = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[ -/]*[0-~])")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(text):
    """Console text safe for a terminal or a web page: escape sequences and control characters removed."""
    return _CONTROLS.sub("", _ESCAPES.sub("", text.replace("\r\n", "\n")))


def _job_id(cluster, proc):
    if not (isinstance(cluster, int) and isinstance(proc, int) and cluster >= 0 and proc >= 0):
        raise CloudError("bad job id %s.%s" % (shown(cluster), shown(proc)), errors.BAD_REQUEST)
    return "%d.%d" % (cluster, proc)


def tail(cluster, proc, max_bytes=DEFAULT_BYTES, condor_tail="condor_tail", timeout=60, run=subprocess.run):
    """The last max_bytes of a running instance's console log, as text (undecodable bytes replaced), read with
    condor_tail as the calling account, which must own the job. Raises CloudError with condor_tail's reason."""
    if not isinstance(max_bytes, int) or not 1 <= max_bytes <= MAX_BYTES:
        raise CloudError("the console can be read 1 to %d bytes at a time" % MAX_BYTES, errors.BAD_REQUEST)
    argv = [condor_tail, "-maxbytes", str(max_bytes), _job_id(cluster, proc)]   # the job's Out: console.log
    try:
        p = run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    except FileNotFoundError:
        raise CloudError("condor_tail not found (is HTCondor installed here?)", errors.INTERNAL) from None
    except subprocess.TimeoutExpired:
        raise CloudError("condor_tail did not answer within %d s" % timeout, errors.TIMEOUT) from None
    if p.returncode != 0:
        reason = p.stderr.decode("utf-8", "replace").strip().splitlines()
        raise CloudError("cannot read the console of job %s: %s" % (_job_id(cluster, proc),
                         shown(reason[-1] if reason else "condor_tail exited with %d" % p.returncode, 300)),
                         errors.BAD_REQUEST)
    return p.stdout.decode("utf-8", "replace")
