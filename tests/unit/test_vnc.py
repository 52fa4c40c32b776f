"""VNC consoles: the host:port published for an instance, read from its live domain XML (recorded here; the real
pool publishes a real QEMU's VNC server in tests/integration/test_pool.py)."""

import io
import os

import pytest

from condor_cloud.node.as_condor_cloud import update_hook
from condor_cloud.node import vnc

from support import job_ad

LIVE = """<domain type='qemu' id='3'>
  <name>alice_7.0</name>
  <devices>
    <serial type='pty'><source path='/dev/pts/3'/></serial>
    <graphics type='vnc' port='%s' autoport='yes' listen='%s'>
      <listen type='address' address='%s'/>
    </graphics>
  </devices>
</domain>"""


@pytest.mark.parametrize("port,listen,node,expected", [
    ("5901", "127.0.0.1", "node1.example.org", "127.0.0.1:5901"),
    ("5900", "0.0.0.0", "node1.example.org", "node1.example.org:5900"),
    ("5902", "::", "node1.example.org", "node1.example.org:5902"),
    ("5903", "2001:db8::7", "node1.example.org", "[2001:db8::7]:5903"),
    ("5904", "192.0.2.7", "node1.example.org", "192.0.2.7:5904"),
])
def test_published_endpoint(port, listen, node, expected):
    found = vnc.parse_vnc(LIVE % (port, listen, listen))
    assert vnc.endpoint(found[0], found[1], node) == expected


def test_listen_element_without_attribute():
    xml = "<domain><devices><graphics type='vnc' port='5905'><listen type='address' address='192.0.2.9'/>" \
          "</graphics></devices></domain>"
    assert vnc.parse_vnc(xml) == ("192.0.2.9", 5905)


@pytest.mark.parametrize("xml", [
    LIVE % ("-1", "127.0.0.1", "127.0.0.1"),        # libvirt has not allocated the port yet
    LIVE % ("x", "127.0.0.1", "127.0.0.1"),
    "<domain><devices><graphics type='spice' port='5900'/></devices></domain>",
    "<domain><devices/></domain>",
    "not xml <",
])
def test_no_vnc_server_known(xml):
    assert vnc.parse_vnc(xml) is None


def test_vnc_attrs_reads_the_instances_own_domain():
    asked = []

    def read_xml(uuid, uri):
        asked.append((uuid, uri))
        return LIVE % ("5907", "0.0.0.0", "0.0.0.0")

    assert vnc.vnc_attrs("u-1", "node1", "qemu:///system", read_xml) == {"ChirpCloudVNC": "node1:5907"}
    assert asked == [("u-1", "qemu:///system")]
    assert vnc.vnc_attrs("u-1", "node1", read_xml=lambda u, uri: None) == {}


def test_node_name_comes_from_the_machine_ad(tmp_path):
    ad = tmp_path / "machine.ad"
    ad.write_text('Machine = "node7.example.org"\nCpus = 4\n')
    assert update_hook.node_name(str(ad)) == "node7.example.org"
    assert update_hook.node_name(str(tmp_path / "missing")) != ""


@pytest.mark.subprocess  # the prepare hook runs qemu-img
def test_update_hook_publishes_vnc_only_for_vnc_jobs_and_only_when_changed(cloud, monkeypatch, tmp_path):
    from test_hooks import run_prepare
    from support import make_qcow2

    make_qcow2(cloud.store / "demo.qcow2", "16M")
    _, prepared = run_prepare(job_ad())
    machine = tmp_path / "machine.ad"
    machine.write_text('Machine = "node1.example.org"\n')
    monkeypatch.setenv("_CONDOR_MACHINE_AD", str(machine))
    published = []

    def run(**attrs):
        ad = job_ad(**attrs)
        return update_hook.main([], io.StringIO(ad), discover=lambda *a, **k: [], publish=published.append,
                                read_xml=lambda uuid, uri: LIVE % ("5908", "0.0.0.0", "0.0.0.0"),
                                starter_pid=os.getpid())

    assert run() == 0 and published == []                                    # no vm_vnc: nothing
    assert run(JobVMVNCConsole="true") == 0
    assert published == [{"ChirpCloudVNC": "node1.example.org:5908"}]
    published.clear()
    assert run(JobVMVNCConsole="true", ChirpCloudVNC='"node1.example.org:5908"') == 0 and published == []


def test_read_only_connection_is_closed_and_failures_are_none(monkeypatch):
    import sys
    import types

    from condor_cloud.node.libvirt_conn import read_only

    closed = []

    class Conn:
        def close(self):
            closed.append(True)

    fake = types.ModuleType("libvirt")

    class libvirtError(Exception):
        pass

    fake.libvirtError = libvirtError
    fake.openReadOnly = lambda uri: Conn() if uri == "qemu:///system" else (_ for _ in ()).throw(libvirtError(uri))
    monkeypatch.setitem(sys.modules, "libvirt", fake)
    assert read_only("qemu:///system", lambda conn: "xml") == "xml" and closed == [True]

    def missing(conn):
        raise libvirtError("no domain with matching uuid")

    assert read_only("qemu:///system", missing) is None and closed == [True, True]
    assert read_only("qemu:///nowhere", lambda conn: "xml") is None          # daemon not reachable
    monkeypatch.setitem(sys.modules, "libvirt", None)                        # libvirt-python not installed
    assert read_only("qemu:///system", lambda conn: "xml") is None
