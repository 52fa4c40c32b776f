"""Networks inside the sandbox's network namespace for the guests: a libvirt network with DHCP (the stand-in for a
node's NAT network `default`) and a plain Linux bridge with its own dnsmasq (the stand-in for a site's bridged LAN).
Functions of a chroot.Chroot (or Sandbox); both refuse to run without the sandbox's own namespace."""
import os
import re

from client import virsh
from errors import SandboxError
from host import pids_in_root
from wait import wait_for


def start_network(run, name="default", bridge="virbr0", prefix="192.168.122", timeout=30):
    """Define and start a libvirt network with DHCP (dnsmasq) INSIDE the sandbox's network namespace: the
    test stand-in for a node's NAT network `default` (CLOUD_NETWORK = network:default).

    Forward mode 'open': libvirt adds no NAT, masquerade or filter rules.  An isolated or NAT network cannot
    start here: with libvirt 11's nftables backend every firewalled network with IPv4 DHCP gets a tc
    `action csum` filter on its bridge (to fix DHCP reply checksums) and this kernel has no act_csum
    ("Failed to apply firewall command 'tc filter add dev virbr0 ... action csum ip and udp'").  The guest
    still reaches nothing: the netns has no uplink (only lo and the bridge), IP forwarding in the netns is
    switched back off after libvirt turned it on, and the test guests only ever talk DHCP.  The bridge, its
    address, dnsmasq and libvirt's (empty) nftables tables live in the sandbox's namespace (libvirtd runs
    there) and die with it; refused without a netns.  dnsmasq's root is the sandbox root, so
    Sandbox.stop() kills it by PID like every other sandbox process.
    Returns {"bridge", "address", "dnsmasq_pid"}."""
    if not run.state.get("netns"):
        raise SandboxError("start_network needs the sandbox's own network namespace (netns=True): a libvirt "
                           "bridge must never appear in the host's namespace")
    if not re.match(r"^[a-z][a-z0-9-]{0,14}$", name) or not re.match(r"^[a-z][a-z0-9]{0,14}$", bridge) \
            or not re.match(r"^\d{1,3}\.\d{1,3}\.\d{1,3}$", prefix):
        raise SandboxError("bad network name, bridge or prefix: %r %r %r" % (name, bridge, prefix))
    xml = ("<network>\n"
           "  <name>%(n)s</name>\n"
           "  <forward mode='open'/>\n"
           "  <bridge name='%(b)s' stp='on' delay='0'/>\n"
           "  <ip address='%(p)s.1' netmask='255.255.255.0'>\n"
           "    <dhcp>\n"
           "      <range start='%(p)s.2' end='%(p)s.254'/>\n"
           "    </dhcp>\n"
           "  </ip>\n"
           "</network>\n") % {"n": name, "b": bridge, "p": prefix}
    path = "/tmp/sandbox-network-%s.xml" % name
    with open(run.path(path), "w") as f:
        f.write(xml)
    virsh(run, "net-define", path)
    virsh(run, "net-start", name)
    # libvirt switched forwarding on (in this netns only): a guest has nowhere to go anyway, make it explicit.
    run.run(["sysctl", "-q", "-w", "net.ipv4.ip_forward=0"])
    pidfile = run.path("/run/libvirt/network/%s.pid" % name)
    wait_for("dnsmasq of network %s" % name, lambda: os.path.exists(pidfile), timeout, interval=0.3)
    with open(pidfile) as f:
        pid = int(f.read().strip())
    if pid not in pids_in_root(run.root):
        raise SandboxError("dnsmasq (PID %d) of network %s does not run in the sandbox root" % (pid, name))
    if os.stat("/proc/%d/ns/net" % pid).st_ino != os.stat("/run/netns/" + run.netns).st_ino:
        raise SandboxError("dnsmasq (PID %d) of network %s is not in netns %s" % (pid, name, run.netns))
    run.state["pids"]["dnsmasq-" + name] = pid
    run.save()
    return {"bridge": bridge, "address": prefix + ".1", "dnsmasq_pid": pid}


def start_bridge(run, bridge="br0", prefix="10.77.0", timeout=30):
    """A plain Linux bridge with a DHCP server (dnsmasq, not libvirt's) INSIDE the sandbox's network namespace:
    the test stand-in for a site's bridged LAN (CLOUD_NETWORK = bridge:br0, as in docs/fedora_install.txt).
    The node has an address on the bridge, as a node on a bridged LAN does; the netns has no uplink.
    dnsmasq runs in the foreground under the sandbox's PID bookkeeping, so Sandbox.stop() kills it by PID; the
    bridge dies with the namespace.  Returns {"bridge", "address", "dnsmasq_pid", "leases"}."""
    if not run.state.get("netns"):
        raise SandboxError("start_bridge needs the sandbox's own network namespace (netns=True)")
    if not re.match(r"^[a-z][a-z0-9]{0,14}$", bridge) or not re.match(r"^\d{1,3}\.\d{1,3}\.\d{1,3}$", prefix):
        raise SandboxError("bad bridge name or prefix: %r %r" % (bridge, prefix))
    run.run(["ip", "link", "add", bridge, "type", "bridge"])
    run.run(["ip", "addr", "add", prefix + ".1/24", "dev", bridge])
    run.run(["ip", "link", "set", bridge, "up"])
    leases = "/run/sandbox-dnsmasq-%s.leases" % bridge
    p = run.start("dnsmasq-" + bridge, [
        "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0", "--bind-interfaces",
        "--interface=" + bridge, "--except-interface=lo", "--dhcp-authoritative",
        "--dhcp-range=%s.10,%s.99,255.255.255.0,1h" % (prefix, prefix), "--dhcp-leasefile=" + leases,
        "--pid-file="])
    wait_for("dnsmasq on %s" % bridge, lambda: p.poll() is not None or ":67 " in run.run(
        ["ss", "-lunp"], check=False).stdout, timeout, interval=0.3)
    if p.poll() is not None:
        raise SandboxError("dnsmasq on %s exited (%s):\n%s" % (bridge, p.returncode, run.out_tail("dnsmasq-" + bridge)))
    return {"bridge": bridge, "address": prefix + ".1", "dnsmasq_pid": p.pid, "leases": leases}


def network_leases(run, name="default"):
    """DHCP leases of a libvirt network: [{"mac", "ip", "hostname"}] from `virsh net-dhcp-leases`."""
    out = virsh(run, "net-dhcp-leases", name)
    leases = []
    for line in out.splitlines():
        m = re.search(r"\s((?:[0-9a-f]{2}:){5}[0-9a-f]{2})\s+ipv4\s+(\d+\.\d+\.\d+\.\d+)/\d+\s+(\S+)", line)
        if m:
            leases.append({"mac": m.group(1), "ip": m.group(2), "hostname": m.group(3)})
    return leases
