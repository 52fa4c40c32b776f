"""VNC consoles: the host:port published for an instance, read from its live domain XML (recorded here; the real
pool publishes a real QEMU's VNC server in tests/integration/test_pool.py)."""

import pytest

from condor_cloud.node import vnc

from support import VNC_DOMAIN


@pytest.mark.parametrize("port,listen,node,expected", [
    ("5901", "127.0.0.1", "node1.example.org", "127.0.0.1:5901"),
    ("5900", "0.0.0.0", "node1.example.org", "node1.example.org:5900"),
    ("5902", "::", "node1.example.org", "node1.example.org:5902"),
    ("5903", "2001:db8::7", "node1.example.org", "[2001:db8::7]:5903"),
    ("5904", "192.0.2.7", "node1.example.org", "192.0.2.7:5904"),
])
def test_published_endpoint(port, listen, node, expected):
    found = vnc.parse_vnc(VNC_DOMAIN % (port, listen, listen))
    assert vnc.endpoint(found[0], found[1], node) == expected


def test_listen_element_without_attribute():
    xml = "<domain><devices><graphics type='vnc' port='5905'><listen type='address' address='192.0.2.9'/>" \
          "</graphics></devices></domain>"
    assert vnc.parse_vnc(xml) == ("192.0.2.9", 5905)


@pytest.mark.parametrize("xml", [
    VNC_DOMAIN % ("-1", "127.0.0.1", "127.0.0.1"),        # libvirt has not allocated the port yet
    VNC_DOMAIN % ("x", "127.0.0.1", "127.0.0.1"),
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
        return VNC_DOMAIN % ("5907", "0.0.0.0", "0.0.0.0")

    assert vnc.vnc_attrs("u-1", "node1", "qemu:///system", read_xml) == {"ChirpCloudVNC": "node1:5907"}
    assert asked == [("u-1", "qemu:///system")]
    assert vnc.vnc_attrs("u-1", "node1", read_xml=lambda u, uri: None) == {}
