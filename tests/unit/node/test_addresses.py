"""Address discovery against recorded lease/neighbour data, publishing with condor_chirp faked, and MACs."""

import os
import subprocess

import pytest

from condor_cloud.node import addresses, domain_xml
from condor_cloud.core.errors import CloudError

from support import REPO

DATA = os.path.join(REPO, "tests", "data", "addresses")
MAC = "52:54:00:3e:8b:1c"
OTHER = "52:54:00:a1:07:f2"
NOW = 1763730000          # between the two recorded leases of MAC: the older one has expired


def data(name):
    with open(os.path.join(DATA, name)) as f:
        return f.read()


# ------------------------------------------------------------------------------------------------- leases

def test_lease_status_parses_libvirt_leases():
    leases = addresses.parse_lease_status(data("virbr0.status"), "virbr0")
    assert [(a.ip, a.mac) for a in leases] == [
        ("192.168.122.45", MAC), ("192.168.122.12", MAC), ("192.168.122.160", OTHER), ("fd00:122::8b1c", MAC)]
    assert leases[0].hostname == "web1" and leases[0].device == "virbr0" and leases[0].expiry == 1763734572


def test_lease_addresses_skip_expired_and_put_ipv4_first():
    leases = addresses.parse_lease_status(data("virbr0.status"))
    assert addresses.addresses_for(MAC, leases, now=NOW) == ["192.168.122.45", "fd00:122::8b1c"]
    assert addresses.addresses_for(MAC.upper(), leases, now=NOW) == ["192.168.122.45", "fd00:122::8b1c"]
    assert addresses.addresses_for(OTHER, leases, now=NOW) == ["192.168.122.160"]
    assert addresses.addresses_for("52:54:00:00:00:01", leases, now=NOW) == []
    assert addresses.addresses_for(MAC, leases, now=1763734575) == ["fd00:122::8b1c"]


@pytest.mark.parametrize("text", ["", "   ", "{not json", '{"ip-address": "1.2.3.4"}', "[1, null, []]",
                                  '[{"ip-address": "not an ip", "mac-address": "52:54:00:3e:8b:1c"}]',
                                  '[{"ip-address": "10.0.0.5", "mac-address": "zz:54:00:3e:8b:1c"}]'])
def test_lease_status_tolerates_junk(text):
    assert addresses.parse_lease_status(text) == []


def test_lease_file_entries_reads_named_or_all_files(tmp_path):
    (tmp_path / "virbr0.status").write_text(data("virbr0.status"))
    (tmp_path / "virbr1.status").write_text('[{"ip-address": "192.168.100.7", "mac-address": "%s", '
                                            '"expiry-time": 1763734999}]' % MAC)
    (tmp_path / "virbr1.conf").write_text("not a lease file")
    assert {a.device for a in addresses.lease_file_entries(str(tmp_path), "virbr0")} == {"virbr0"}
    every = addresses.lease_file_entries(str(tmp_path))
    assert addresses.addresses_for(MAC, every, now=NOW) == ["192.168.100.7", "192.168.122.45", "fd00:122::8b1c"]
    assert addresses.lease_file_entries(str(tmp_path / "missing")) == []


def test_libvirt_python_leases():
    # The shape virNetwork.DHCPLeases() returns (type 0 = IPv4, 1 = IPv6).
    leases = [
        {"iface": "virbr0", "expirytime": 1763734572, "type": 0, "mac": MAC, "iaid": None,
         "ipaddr": "192.168.122.45", "prefix": 24, "hostname": "web1", "clientid": "ff:56:50:4d:98"},
        {"iface": "virbr0", "expirytime": 1763734580, "type": 1, "mac": MAC, "iaid": "1020565",
         "ipaddr": "fd00:122::8b1c", "prefix": 64, "hostname": None, "clientid": None},
        {"iface": "virbr0", "expirytime": 0, "type": 0, "mac": None, "ipaddr": "192.168.122.9"},
    ]
    entries = addresses.parse_libvirt_leases(leases)
    assert addresses.addresses_for(MAC, entries, now=NOW) == ["192.168.122.45", "fd00:122::8b1c"]
    assert addresses.parse_libvirt_leases(None) == []


def test_discover_on_a_libvirt_network_falls_back_to_lease_files(tmp_path, monkeypatch):
    (tmp_path / "virbr0.status").write_text(data("virbr0.status"))
    monkeypatch.setattr(addresses, "libvirt_lease_entries", lambda name, mac, uri: None)
    monkeypatch.setattr(addresses.time, "time", lambda: NOW)
    net = domain_xml.parse_network("network:default")
    assert addresses.discover(MAC, net, lease_dir=str(tmp_path)) == ["192.168.122.45", "fd00:122::8b1c"]


def test_discover_prefers_libvirt_python(tmp_path, monkeypatch):
    seen = []

    def fake(name, mac, uri):
        seen.append((name, mac))
        return [addresses.Address("192.168.122.99", MAC, "lease", "virbr0", "", 0)]

    monkeypatch.setattr(addresses, "libvirt_lease_entries", fake)
    assert addresses.discover(MAC, domain_xml.parse_network("network:default"), lease_dir=str(tmp_path)) == [
        "192.168.122.99"]
    assert seen == [("default", MAC)]


@pytest.mark.parametrize("setting", ["user", "none"])
def test_discover_without_a_reachable_network(setting):
    assert addresses.discover(MAC, domain_xml.parse_network(setting)) == []


# ------------------------------------------------------------------------------------------------- neighbours

def test_ip_neigh_json():
    entries = addresses.parse_ip_neigh(data("ip-neigh.json"))
    assert ("10.20.0.99" not in [a.ip for a in entries]) and ("10.20.0.54" not in [a.ip for a in entries])
    # On br0 only; link-local fe80:: is not worth publishing.
    assert addresses.addresses_for(MAC, entries, device="br0") == ["10.20.0.17", "2001:db8:20::17"]
    assert addresses.addresses_for(MAC, entries) == ["10.20.0.17", "172.16.9.17", "2001:db8:20::17"]
    assert addresses.addresses_for(OTHER, entries, device="br0") == []


def test_proc_net_arp():
    entries = addresses.parse_proc_arp(data("proc-net-arp"))
    assert [(a.ip, a.device) for a in entries] == [("10.20.0.17", "br0"), ("10.20.0.1", "br0"),
                                                  ("172.16.9.17", "eth1")]
    assert addresses.addresses_for(MAC, entries, device="br0") == ["10.20.0.17"]
    assert addresses.parse_proc_arp("") == [] and addresses.parse_proc_arp("header\ngarbage line\n") == []


def test_neighbour_entries_runs_ip_json(monkeypatch):
    calls = []

    def run(cmd, **kwargs):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, data("ip-neigh.json"), "")

    monkeypatch.setattr(addresses.shutil, "which", lambda name: "/usr/sbin/ip" if name == "ip" else None)
    entries = addresses.neighbour_entries("br0", run=run)
    assert calls == [["/usr/sbin/ip", "-j", "neigh", "show", "dev", "br0"]]
    assert addresses.addresses_for(MAC, entries, device="br0") == ["10.20.0.17", "2001:db8:20::17"]


def test_neighbour_entries_falls_back_to_proc_arp(monkeypatch, tmp_path):
    arp = tmp_path / "arp"
    arp.write_text(data("proc-net-arp"))

    def failing(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, "", "Object \"neigh\" is unknown")

    monkeypatch.setattr(addresses.shutil, "which", lambda name: "/usr/sbin/ip")
    assert addresses.addresses_for(MAC, addresses.neighbour_entries("br0", run=failing, proc_arp=str(arp)),
                                   device="br0") == ["10.20.0.17"]


def test_discover_on_a_bridge(monkeypatch):
    monkeypatch.setattr(addresses, "neighbour_entries",
                        lambda device: addresses.parse_ip_neigh(data("ip-neigh.json")))
    assert addresses.discover(MAC, domain_xml.parse_network("bridge:br0")) == ["10.20.0.17", "2001:db8:20::17"]


# ------------------------------------------------------------------------------------------------- publishing

class FakeRun:
    def __init__(self, returncode=0, stderr=""):
        self.calls = []
        self.returncode = returncode
        self.stderr = stderr

    def __call__(self, cmd, **kwargs):
        self.calls.append((cmd, kwargs))
        return subprocess.CompletedProcess(cmd, self.returncode, "", self.stderr)


def test_publish_sends_quoted_classad_strings():
    run = FakeRun()
    addresses.publish(addresses.address_attrs(["10.0.0.5", "2001:db8::5"]), chirp="/usr/libexec/condor/condor_chirp",
                      env={"_CONDOR_CHIRP_CONFIG": "/scratch/.chirp.config"}, run=run)
    assert [c for c, _ in run.calls] == [
        ["/usr/libexec/condor/condor_chirp", "set_job_attr_delayed", "ChirpCloudAddress", '"10.0.0.5"'],
        ["/usr/libexec/condor/condor_chirp", "set_job_attr_delayed", "ChirpCloudAddresses",
         '"10.0.0.5,2001:db8::5"'],
    ]
    assert run.calls[0][1]["env"] == {"_CONDOR_CHIRP_CONFIG": "/scratch/.chirp.config"}
    assert run.calls[0][1]["timeout"] == 30


def test_publish_literals():
    run = FakeRun()
    addresses.publish({"ChirpCloudVNC": "node1.example.org:5901", "ChirpCloudPort": 5901, "ChirpCloudUp": True},
                      chirp="chirp", run=run)
    assert [c[3] for c, _ in run.calls] == ['"node1.example.org:5901"', "5901", "true"]


@pytest.mark.parametrize("value", ['a"b', "a\\b", "a\nb", "\x00", 1.5, None])
def test_publish_refuses_values_that_need_quoting(value):
    run = FakeRun()
    with pytest.raises(CloudError, match="refusing to publish"):
        addresses.publish({"ChirpCloudVNC": value}, chirp="chirp", run=run)
    assert run.calls == []


@pytest.mark.parametrize("name", ["CloudAddress", "Chirp Cloud", "Chirp;rm", 5])
def test_publish_refuses_names_the_starter_would_refuse(name):
    with pytest.raises(CloudError, match="starting with Chirp"):
        addresses.publish({name: "x"}, chirp="chirp", run=FakeRun())


def test_publish_reports_chirp_failure():
    with pytest.raises(CloudError, match=r"failed \(exit 1\).*no chirp config"):
        addresses.publish({"ChirpCloudAddress": "10.0.0.5"}, chirp="chirp",
                          run=FakeRun(1, "no chirp config found\n"))


def test_publish_timeout_and_missing_program():
    def timeout(cmd, **kwargs):
        raise subprocess.TimeoutExpired(cmd, kwargs["timeout"])

    def missing(cmd, **kwargs):
        raise FileNotFoundError(2, "No such file or directory")

    with pytest.raises(CloudError, match="timed out"):
        addresses.publish({"ChirpCloudAddress": "10.0.0.5"}, chirp="chirp", run=timeout)
    with pytest.raises(CloudError, match="No such file"):
        addresses.publish({"ChirpCloudAddress": "10.0.0.5"}, chirp="chirp", run=missing)


def test_address_attrs():
    assert addresses.address_attrs([]) == {}
    assert addresses.address_attrs(["10.0.0.5"]) == {"ChirpCloudAddress": "10.0.0.5",
                                                     "ChirpCloudAddresses": "10.0.0.5"}
    with pytest.raises(ValueError):
        addresses.address_attrs(["10.0.0.5; rm -rf /"])


def test_normalize_mac():
    assert addresses.normalize_mac("52-54-00-3E-8B-1C") == MAC
    assert addresses.normalize_mac("52:54:00:3e:8b") == ""
    assert addresses.normalize_mac(None) == ""
