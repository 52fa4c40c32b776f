"""VNC consoles: where a running instance's VNC server listens, for the update hook to publish into the job ad
(ChirpCloudVNC = "host:port").

libvirt picks the port when the domain starts (autoport), so it is read from the live domain XML over a
read-only libvirt connection (any local account may open one). A server on a wildcard address is published with
the node's host name (the machine ad's Machine attribute); CLOUD_VNC_LISTEN = 127.0.0.1 (the default) publishes
a loopback address that is reachable only on the node (e.g. through an SSH tunnel).
"""

import ipaddress
import xml.etree.ElementTree as ET

from condor_cloud.node.libvirt_conn import read_only

ATTR_VNC = "ChirpCloudVNC"
_WILDCARDS = ("", "0.0.0.0", "::")


def parse_vnc(domain_xml):
    """(listen address, port) of the first VNC <graphics> of a live domain XML, or None if it has none or libvirt
    has not given it a port yet."""
    try:
        root = ET.fromstring(domain_xml)
    except ET.ParseError:
        return None
    for graphics in root.iter("graphics"):
        if graphics.get("type") != "vnc":
            continue
        try:
            port = int(graphics.get("port", "-1"))
        except ValueError:
            return None
        if not 0 < port < 65536:
            return None
        listen = graphics.get("listen", "")
        sub = graphics.find("listen")
        if not listen and sub is not None and sub.get("type") == "address":
            listen = sub.get("address", "")
        return listen, port
    return None


def endpoint(listen, port, node_name):
    """'host:port' a VNC client connects to ('[v6]:port' for an IPv6 address)."""
    host = node_name if listen in _WILDCARDS else listen
    try:
        if ipaddress.ip_address(host).version == 6:
            host = "[%s]" % host
    except ValueError:
        pass
    return "%s:%d" % (host, port)


def live_xml(domain_uuid, uri="qemu:///system"):
    """The running domain's XML, or None when libvirt-python, the daemon or the domain is not there."""
    return read_only(uri, lambda conn: conn.lookupByUUIDString(domain_uuid).XMLDesc(0))


def vnc_attrs(domain_uuid, node_name, uri="qemu:///system", read_xml=live_xml):
    """{ChirpCloudVNC: 'host:port'} for the instance's domain, or {} when it has no VNC server (yet)."""
    xml = read_xml(domain_uuid, uri)
    found = parse_vnc(xml) if xml else None
    return {ATTR_VNC: endpoint(found[0], found[1], node_name)} if found else {}
