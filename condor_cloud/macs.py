"""MAC addresses of instances: derived from the job id, or checked when the job sets vm_macaddr."""

import hashlib
import re

from . import errors
from .errors import CloudError, shown

_MAC_RE = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")


def mac_for(seed):
    """A stable, locally administered MAC in QEMU's 52:54:00 range derived from seed (e.g. the GlobalJobId)."""
    digest = hashlib.sha256(seed.encode("utf-8")).digest()
    return "52:54:00:%02x:%02x:%02x" % (digest[0], digest[1], digest[2])


def check_mac(mac):
    if not isinstance(mac, str) or not _MAC_RE.fullmatch(mac):
        raise CloudError("vm_macaddr %s is not a MAC address like 52:54:00:12:34:56" % shown(mac), errors.BAD_REQUEST)
    if int(mac[:2], 16) & 1:
        raise CloudError("vm_macaddr %s is a multicast address" % shown(mac), errors.BAD_REQUEST)
    return mac.lower()
