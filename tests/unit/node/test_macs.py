"""Instance MACs: made from the job id, injective over (ClusterId, ProcId), locally administered unicast, never
libvirt's reserved 0xfe prefix; a MAC chosen by the job (vm_macaddr) is refused with a clear reason (the prepare
hook's hold: tests/unit/node/as_condor_cloud/test_prepare_hook.py)."""

import re

import pytest

from condor_cloud.core import errors
from condor_cloud.core.errors import CloudError
from condor_cloud.node import macs


MAC_RE = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")


def check_shape(mac):
    assert MAC_RE.fullmatch(mac), mac
    first = int(mac[:2], 16)
    assert first & 0x02 and not first & 0x01, mac      # locally administered, unicast
    assert first != 0xFE, mac                           # libvirt reserves 0xfe for the host side of tap devices


def test_examples_are_readable():
    assert macs.mac_for(1234, 0) == "02:00:00:00:04:d2"
    assert macs.mac_for(1234, 5) == "02:05:00:00:04:d2"
    assert macs.mac_for(1, 256) == "06:00:00:00:00:01"
    assert macs.mac_for(macs.MAX_CLUSTER, macs.MAX_PROC) == "7e:ff:ff:ff:ff:ff"


def test_25000_consecutive_clusters_never_collide():
    # The old default (24 bits of a hash of the GlobalJobId) collided 21 times among 20,000 consecutive job ids.
    start = 4_000_000_000 - 12_500          # also across the 2**32 - 1 ... wrap of the low octets
    seen = {}
    for cluster in range(start, start + 25_000):
        for proc in (0, 1, 255, 256, macs.MAX_PROC):
            mac = macs.mac_for(cluster, proc)
            assert mac not in seen, (cluster, proc, seen.get(mac))
            seen[mac] = (cluster, proc)
    for mac in list(seen)[:2000]:
        check_shape(mac)


def test_every_proc_of_a_cluster_has_its_own_mac():
    for cluster in (1, 77, 1 << 24, macs.MAX_CLUSTER):
        found = {macs.mac_for(cluster, proc) for proc in range(macs.MAX_PROC + 1)}
        assert len(found) == macs.MAX_PROC + 1
        for mac in found:
            check_shape(mac)


def test_the_job_is_read_back_from_the_mac():
    for cluster, proc in ((1, 0), (1234, 5), (99999, 300), (macs.MAX_CLUSTER, macs.MAX_PROC)):
        assert macs.job_of(macs.mac_for(cluster, proc)) == (cluster, proc)
    assert macs.job_of("fe:54:00:12:34:56") is None and macs.job_of("03:00:00:00:00:01") is None
    assert macs.job_of("nonsense") is None and macs.job_of(None) is None


@pytest.mark.parametrize("cluster,proc", [(-1, 0), (1 << 32, 0), ("7", 0), (7, -1), (7, "0"), (True, 0)])
def test_out_of_range_ids_are_refused(cluster, proc):
    with pytest.raises(CloudError) as exc:
        macs.mac_for(cluster, proc)
    assert exc.value.code == errors.BAD_REQUEST


def test_a_proc_beyond_the_encodable_range_is_refused_with_a_reason():
    with pytest.raises(CloudError) as exc:
        macs.mac_for(12, macs.MAX_PROC + 1)
    assert exc.value.code == errors.BAD_REQUEST
    assert exc.value.message == ("job 12.8192: an instance's MAC address is made from its job id, which allows "
                                 "proc ids 0 to 8191 only; submit at most 8192 instances per cluster (queue N)")


def test_a_mac_chosen_by_the_job_is_refused():
    assert macs.check_mac("") == ""
    for mac in ("52:54:00:12:34:56", "02:00:00:00:04:d2", "anything"):
        with pytest.raises(CloudError) as exc:
            macs.check_mac(mac)
        assert exc.value.code == errors.BAD_REQUEST
        assert exc.value.message.startswith("vm_macaddr is not supported: every instance gets a MAC address made "
                                            "from its job id")
