"""MAC addresses of instances: one per job id, by construction; a MAC chosen by the job is refused.

An instance's MAC is locally administered unicast and encodes its job's (ClusterId, ProcId) injectively:

    octet 1: ProcId bits 8..12 in bits 6..2, then 0b10 (locally administered, unicast)
    octet 2: ProcId bits 0..7
    octets 3-6: ClusterId (32 bits, big-endian)

so job 1234.0 has 02:00:00:00:04:d2 and job 1234.5 has 02:05:00:00:04:d2. Two live jobs of one schedd (a pool has
one, on the master) never share a MAC. The first octet stays below 0x80, far from 0xfe, which libvirt reserves
for the host side of a guest's tap device. A ProcId above MAX_PROC cannot get a MAC of its own and is refused.
"""

import re

from condor_cloud.core import errors
from condor_cloud.core.errors import CloudError, shown

MAX_CLUSTER = (1 << 32) - 1
MAX_PROC = (1 << 13) - 1
_MAC_RE = re.compile(r"([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2})")


def mac_for(cluster, proc):
    """The MAC of the instance of job cluster.proc (see the module's docstring)."""
    if isinstance(cluster, bool) or not isinstance(cluster, int) or not 0 <= cluster <= MAX_CLUSTER:
        raise CloudError("job cluster id %s is out of range" % shown(cluster), errors.BAD_REQUEST)
    if isinstance(proc, bool) or not isinstance(proc, int) or proc < 0:
        raise CloudError("job proc id %s is out of range" % shown(proc), errors.BAD_REQUEST)
    if proc > MAX_PROC:
        raise CloudError("job %d.%d: an instance's MAC address is made from its job id, which allows proc ids 0 to "
                         "%d only; submit at most %d instances per cluster (queue N)"
                         % (cluster, proc, MAX_PROC, MAX_PROC + 1), errors.BAD_REQUEST)
    first = (proc >> 8) << 2 | 0x02
    return "%02x:%02x:%02x:%02x:%02x:%02x" % (first, proc & 0xFF, cluster >> 24 & 0xFF, cluster >> 16 & 0xFF,
                                              cluster >> 8 & 0xFF, cluster & 0xFF)


def job_of(mac):
    """(cluster, proc) of a MAC made by mac_for, or None (for administrators reading a neighbour table)."""
    m = _MAC_RE.fullmatch(mac.lower()) if isinstance(mac, str) else None
    if not m:
        return None
    octets = [int(x, 16) for x in m.groups()]
    if octets[0] & 0x03 != 0x02 or octets[0] >= 0x80:
        return None
    proc = (octets[0] >> 2) << 8 | octets[1]
    cluster = octets[2] << 24 | octets[3] << 16 | octets[4] << 8 | octets[5]
    return cluster, proc


def check_mac(job_mac):
    """Refuse a MAC chosen by the job (vm_macaddr, JobVM_MACADDR in the job ad): it could be another instance's.
    Returns '' when the job chose none."""
    if job_mac:
        raise CloudError("vm_macaddr is not supported: every instance gets a MAC address made from its job id, so "
                         "that no instance can take over another's; remove vm_macaddr from the submit description",
                         errors.BAD_REQUEST)
    return ""
