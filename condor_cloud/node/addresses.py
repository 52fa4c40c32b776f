"""Finding an instance's IP addresses on its node, and publishing them into its job ad.

Sources, by CLOUD_NETWORK kind (see domain.parse_network):
- network:NAME  libvirt's DHCP leases of that network: libvirt-python `virNetwork.DHCPLeases()` when available,
                else the lease file libvirt's leaseshelper keeps for dnsmasq, /var/lib/libvirt/dnsmasq/<bridge>.status
                (a JSON array; all *.status files are read when the bridge name is not known).
- bridge:NAME   the node's neighbour table for that bridge: `ip -j neigh show dev NAME` (IPv4 and IPv6), else
                /proc/net/arp (IPv4). It only knows guests the node has exchanged packets with.
- user, none    no address reachable from outside the node: nothing is published.

The parse_* functions are pure (text in, Address list out) and tested against recorded data in
tests/data/addresses/. publish() hands the result to the starter with `condor_chirp set_job_attr_delayed`.
"""

import glob
import ipaddress
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass

from condor_cloud.core import errors
from condor_cloud.core.errors import CloudError, shown
from condor_cloud.node.libvirt_conn import read_only

LEASE_DIR = "/var/lib/libvirt/dnsmasq"
PROC_ARP = "/proc/net/arp"
CHIRP_FALLBACKS = ("/usr/libexec/condor/condor_chirp", "/usr/lib/condor/libexec/condor_chirp")
ATTR_ADDRESS = "ChirpCloudAddress"       # the first (preferred) address
ATTR_ADDRESSES = "ChirpCloudAddresses"   # all of them, comma-separated
_ARP_COMPLETE = 0x2
_NEIGH_USABLE = {"REACHABLE", "STALE", "DELAY", "PROBE", "PERMANENT", "NOARP"}


@dataclass(frozen=True)
class Address:
    ip: str
    mac: str
    source: str          # 'lease', 'neigh' or 'arp'
    device: str = ""
    hostname: str = ""
    expiry: int = 0      # lease expiry (epoch seconds), 0 when unknown or not a lease


def normalize_mac(mac):
    """Lower-case colon form; '' for anything that is not a MAC address."""
    if not isinstance(mac, str):
        return ""
    parts = mac.strip().lower().replace("-", ":").split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdef" for c in p) for p in parts):
        return ""
    return ":".join(parts)


def _ip(text):
    try:
        return ipaddress.ip_address(text.split("/")[0].strip())
    except (ValueError, AttributeError):
        return None


def _usable(ip):
    """Addresses worth publishing: not loopback, link-local, multicast or unspecified."""
    return ip is not None and not (ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_unspecified)


# ---------------------------------------------------------------------------------------------------- parsers

def parse_lease_status(text, device=""):
    """Leases from libvirt's dnsmasq lease file (<bridge>.status): a JSON array of objects with
    ip-address, mac-address (IPv6 entries may lack it), hostname, client-id, expiry-time."""
    try:
        entries = json.loads(text) if text.strip() else []
    except ValueError:
        return []
    out = []
    if not isinstance(entries, list):
        return out
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        ip, mac = _ip(str(entry.get("ip-address", ""))), normalize_mac(entry.get("mac-address", ""))
        if not mac or not _usable(ip):
            continue
        expiry = entry.get("expiry-time", 0)
        out.append(Address(str(ip), mac, "lease", device, str(entry.get("hostname") or ""),
                           expiry if isinstance(expiry, int) else 0))
    return out


def parse_libvirt_leases(leases):
    """Leases from libvirt-python's virNetwork.DHCPLeases(): dicts with iface, expirytime, type, mac, ipaddr,
    prefix, hostname, clientid, iaid."""
    out = []
    for lease in leases or ():
        ip, mac = _ip(str(lease.get("ipaddr", ""))), normalize_mac(lease.get("mac", ""))
        if mac and _usable(ip):
            out.append(Address(str(ip), mac, "lease", str(lease.get("iface") or ""),
                               str(lease.get("hostname") or ""), int(lease.get("expirytime") or 0)))
    return out


def parse_ip_neigh(text):
    """Neighbours from `ip -j neigh` (JSON array: dst, dev, lladdr, state[]); entries without a link-layer
    address or in state FAILED/INCOMPLETE are skipped."""
    try:
        entries = json.loads(text) if text.strip() else []
    except ValueError:
        return []
    out = []
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, dict):
            continue
        ip, mac = _ip(str(entry.get("dst", ""))), normalize_mac(entry.get("lladdr", ""))
        states = entry.get("state") or []
        if not mac or not _usable(ip) or not _NEIGH_USABLE.intersection(states):
            continue
        out.append(Address(str(ip), mac, "neigh", str(entry.get("dev") or "")))
    return out


def parse_proc_arp(text):
    """Neighbours from /proc/net/arp (IP address, HW type, Flags, HW address, Mask, Device); only complete
    entries (flag 0x2)."""
    out = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 6:
            continue
        try:
            flags = int(fields[2], 16)
        except ValueError:
            continue
        ip, mac = _ip(fields[0]), normalize_mac(fields[3])
        if flags & _ARP_COMPLETE and mac and mac != "00:00:00:00:00:00" and _usable(ip):
            out.append(Address(str(ip), mac, "arp", fields[5]))
    return out


def addresses_for(mac, entries, device=None, now=None):
    """The IP addresses of mac among entries (optionally only on device), IPv4 before IPv6, unexpired leases
    only, newest lease first, no duplicates."""
    mac = normalize_mac(mac)
    now = time.time() if now is None else now
    found = []
    for a in entries:
        if a.mac != mac or (device and a.device and a.device != device):
            continue
        if a.source == "lease" and a.expiry and a.expiry < now:
            continue
        found.append(a)
    found.sort(key=lambda a: (ipaddress.ip_address(a.ip).version, -a.expiry))
    seen, out = set(), []
    for a in found:
        if a.ip not in seen:
            seen.add(a.ip)
            out.append(a.ip)
    return out


# ---------------------------------------------------------------------------------------------------- discovery

def _read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def lease_file_entries(lease_dir=LEASE_DIR, bridge=None):
    """Leases from <lease_dir>/<bridge>.status, or from every *.status file when bridge is None."""
    paths = [os.path.join(lease_dir, "%s.status" % bridge)] if bridge else sorted(
        glob.glob(os.path.join(lease_dir, "*.status")))
    entries = []
    for path in paths:
        entries.extend(parse_lease_status(_read(path), os.path.basename(path)[:-len(".status")]))
    return entries


def libvirt_lease_entries(network_name, mac=None, uri="qemu:///system"):
    """Leases from libvirt-python, or None when libvirt-python or the daemon cannot be used."""
    def leases(conn):
        network = conn.networkLookupByName(network_name)
        return parse_libvirt_leases(network.DHCPLeases(mac) if mac else network.DHCPLeases())

    return read_only(uri, leases)


def neighbour_entries(device=None, run=subprocess.run, proc_arp=PROC_ARP):
    """Neighbours from `ip -j neigh` when iproute2 is there, else /proc/net/arp."""
    ip_cmd = shutil.which("ip") or ("/usr/sbin/ip" if os.path.exists("/usr/sbin/ip") else None)
    if ip_cmd:
        cmd = [ip_cmd, "-j", "neigh", "show"] + (["dev", device] if device else [])
        try:
            proc = run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=10,
                       universal_newlines=True)
            if proc.returncode == 0:
                return parse_ip_neigh(proc.stdout)
        except (OSError, subprocess.TimeoutExpired):
            pass
    return parse_proc_arp(_read(proc_arp))


def discover(mac, network, lease_dir=LEASE_DIR, libvirt_uri="qemu:///system"):
    """IP addresses of the instance with mac on a domain.Network; [] when none is known (yet)."""
    if network.kind == "network":
        entries = libvirt_lease_entries(network.source, mac, libvirt_uri)
        if entries is None:
            entries = lease_file_entries(lease_dir)
        return addresses_for(mac, entries)
    if network.kind == "bridge":
        return addresses_for(mac, neighbour_entries(network.source), device=network.source)
    return []


# ---------------------------------------------------------------------------------------------------- publishing

def find_chirp():
    path = shutil.which("condor_chirp")
    if path:
        return path
    for candidate in CHIRP_FALLBACKS:
        if os.access(candidate, os.X_OK):
            return candidate
    raise CloudError("condor_chirp not found in PATH or %s" % " ".join(CHIRP_FALLBACKS), errors.INTERNAL)


def address_attrs(addresses):
    """{ChirpCloudAddress: first, ChirpCloudAddresses: 'a,b'} for a list of IP strings ({} when empty)."""
    ips = [str(ipaddress.ip_address(a)) for a in addresses]
    if not ips:
        return {}
    return {ATTR_ADDRESS: ips[0], ATTR_ADDRESSES: ",".join(ips)}


def publish(attrs, chirp=None, env=None, run=subprocess.run, timeout=30):
    """Set job attributes through the starter: `condor_chirp set_job_attr_delayed NAME EXPR` for each.

    Names must start with 'Chirp' (the starter accepts set_job_attr_delayed only for those); values are str
    (sent as ClassAd string literals), int or bool. env should carry _CONDOR_CHIRP_CONFIG when the caller is not
    the job itself. Raises CloudError when condor_chirp fails.
    """
    chirp = chirp or find_chirp()
    for name, value in attrs.items():
        if not (isinstance(name, str) and name.startswith("Chirp") and name.isidentifier() and name.isascii()):
            raise CloudError("chirp attribute %s must be a name starting with Chirp" % shown(name), errors.INTERNAL)
        if isinstance(value, bool):
            expr = "true" if value else "false"
        elif isinstance(value, int):
            expr = str(value)
        elif isinstance(value, str) and value.isprintable() and '"' not in value and "\\" not in value:
            expr = '"%s"' % value
        else:
            raise CloudError("chirp attribute %s: refusing to publish the value %s" % (name, shown(value)),
                             errors.INTERNAL)
        try:
            proc = run([chirp, "set_job_attr_delayed", name, expr], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            raise CloudError("condor_chirp set_job_attr_delayed %s timed out after %d s" % (name, timeout),
                             errors.TIMEOUT) from None
        except OSError as exc:
            raise CloudError("cannot run %s: %s" % (chirp, exc.strerror), errors.INTERNAL) from None
        if proc.returncode != 0:
            raise CloudError("condor_chirp set_job_attr_delayed %s failed (exit %d): %s"
                             % (name, proc.returncode, shown((proc.stderr or proc.stdout or "").strip(), 200)),
                             errors.INTERNAL)
