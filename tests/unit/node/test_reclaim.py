"""reclaim_orphans (condor_cloud/node/reclaim.py): a grace period for a directory without a readable
instance.json; libvirt unreachable -> keep the directory, its domain may still run; a live starter's instance
is kept. Each test reaches the check it names: the instances differ from a removable one in that one respect
only."""

import io
import os

import pytest

from condor_cloud.core import config, processes
from condor_cloud.node import reclaim

from support import Hypervisor, make_instance, present


# -- reclaim_orphans ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("content", [None, b"{not json", b"[]"])
def test_a_directory_without_readable_instance_json_gets_the_grace_period(cloud, content):
    settings = config.load_settings()
    path = cloud.instances / "3.0-0000beef"
    path.mkdir()
    if content is not None:
        (path / "instance.json").write_bytes(content)
    made = os.stat(str(path)).st_mtime
    hv = Hypervisor()
    log = io.StringIO()
    assert reclaim.reclaim_orphans(settings, hv, now=made + settings.orphan_grace - 1, log=log) == []
    assert present(cloud) == ["3.0-0000beef"]
    assert reclaim.reclaim_orphans(settings, hv, now=made + settings.orphan_grace + 1, log=log) == ["3.0-0000beef"]
    assert present(cloud) == [] and hv.destroyed == []


@pytest.mark.subprocess
def test_an_orphan_is_kept_while_libvirt_is_unreachable(cloud, dead_pid):
    settings = config.load_settings()
    orphan = make_instance(cloud, "4.0-0000beef", pid=dead_pid, start_time=12345)
    log = io.StringIO()
    assert reclaim.reclaim_orphans(settings, Hypervisor(fail=True), log=log) == []
    assert present(cloud) == [orphan]
    assert log.getvalue() == ("condor-cloud cleanup: cannot list libvirt's running domains (libvirt unreachable): "
                              "no instance directory holding disks is removed and no cache entry evicted until "
                              "libvirt answers\n")
    log = io.StringIO()
    assert reclaim.reclaim_orphans(settings, Hypervisor(fail_destroy=True), log=log) == []
    assert present(cloud) == [orphan]
    assert log.getvalue() == ("condor-cloud cleanup: cannot destroy domain of orphan %s: libvirt unreachable\n"
                              % orphan)
    hv = Hypervisor()
    assert reclaim.reclaim_orphans(settings, hv, log=log) == [orphan]       # libvirt back: reclaimed
    assert hv.destroyed == ["uuid-" + orphan] and present(cloud) == []


def test_a_live_starters_instance_is_kept_and_a_reused_pid_is_not_alive(cloud):
    settings = config.load_settings()
    live = make_instance(cloud, "5.0-0000beef")
    reused = make_instance(cloud, "6.0-0000beef", start_time=processes.process_start_time(os.getpid()) - 1)
    hv = Hypervisor()
    assert reclaim.reclaim_orphans(settings, hv, log=io.StringIO()) == [reused]
    assert present(cloud) == [live] and hv.destroyed == ["uuid-" + reused]
