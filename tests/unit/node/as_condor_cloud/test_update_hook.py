"""UPDATE_JOB_INFO (condor_cloud/node/as_condor_cloud/update_hook.py): publishes the discovered address and the
VNC endpoint of its own instance with condor_chirp, only when they change, and reports a failed publish."""

import io
import os

import pytest

from condor_cloud.node import instance_dirs
from condor_cloud.node.as_condor_cloud import update_hook

from support import VNC_DOMAIN, job_ad, make_qcow2, run_prepare


pytestmark = pytest.mark.subprocess  # the hooks run qemu-img for real


def test_update_hook_publishes_the_discovered_address(demo):
    _, prepared = run_prepare(job_ad())
    mac = instance_dirs.load(str(demo.instances), prepared["CloudInstanceId"]).meta["mac"]
    seen, published = [], []

    def discover(m, network, libvirt_uri):
        seen.append((m, network.kind))
        return ["192.0.2.10"]

    ad = job_ad()
    assert update_hook.main([], io.StringIO(ad), discover=discover, publish=published.append,
                            starter_pid=os.getpid()) == 0
    assert seen == [(mac, "none")]
    assert published == [{"ChirpCloudAddress": "192.0.2.10", "ChirpCloudAddresses": "192.0.2.10"}]
    # already in the job ad: not published again
    published.clear()
    ad = job_ad(ChirpCloudAddresses='"192.0.2.10"')
    update_hook.main([], io.StringIO(ad), discover=discover, publish=published.append, starter_pid=os.getpid())
    assert published == []


def test_update_hook_reports_a_failed_publish_and_exits_1(demo, capsys):
    from condor_cloud.core.errors import CloudError

    _, prepared = run_prepare(job_ad())
    capsys.readouterr()

    def publish(attrs):
        raise CloudError("condor_chirp set_job_attr_delayed ChirpCloudAddress failed (exit 1): no chirp config")

    assert update_hook.main([], io.StringIO(job_ad()), discover=lambda *a, **k: ["192.0.2.10"], publish=publish,
                            starter_pid=os.getpid()) == 1
    assert capsys.readouterr().err == ("condor-cloud update: condor_chirp set_job_attr_delayed ChirpCloudAddress "
                                       "failed (exit 1): no chirp config\n")


def test_update_hook_without_an_instance_does_nothing(cloud):
    calls = []
    assert update_hook.main([], io.StringIO(job_ad()), discover=calls.append, publish=calls.append,
                            starter_pid=os.getpid()) == 0
    assert calls == []


def test_node_name_comes_from_the_machine_ad(tmp_path):
    ad = tmp_path / "machine.ad"
    ad.write_text('Machine = "node7.example.org"\nCpus = 4\n')
    assert update_hook.node_name(str(ad)) == "node7.example.org"
    assert update_hook.node_name(str(tmp_path / "missing")) != ""


@pytest.mark.subprocess  # the prepare hook runs qemu-img
def test_update_hook_publishes_vnc_only_for_vnc_jobs_and_only_when_changed(cloud, monkeypatch, tmp_path):
    make_qcow2(cloud.store / "demo.qcow2", "16M")
    _, prepared = run_prepare(job_ad())
    machine = tmp_path / "machine.ad"
    machine.write_text('Machine = "node1.example.org"\n')
    monkeypatch.setenv("_CONDOR_MACHINE_AD", str(machine))
    published = []

    def run(**attrs):
        ad = job_ad(**attrs)
        return update_hook.main([], io.StringIO(ad), discover=lambda *a, **k: [], publish=published.append,
                                read_xml=lambda uuid, uri: VNC_DOMAIN % ("5908", "0.0.0.0", "0.0.0.0"),
                                starter_pid=os.getpid())

    assert run() == 0 and published == []                                    # no vm_vnc: nothing
    assert run(JobVMVNCConsole="true") == 0
    assert published == [{"ChirpCloudVNC": "node1.example.org:5908"}]
    published.clear()
    assert run(JobVMVNCConsole="true", ChirpCloudVNC='"node1.example.org:5908"') == 0 and published == []
