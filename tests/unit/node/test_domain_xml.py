"""Domain XML (condor_cloud/node/domain_xml.py): golden files, libvirt's schema (virt-xml-validate), and no markup
injection from job-ad values.

Golden files: tests/data/domain/<case>.xml. A rendering that differs from its golden file fails, and so does a
missing golden file. To write them after an intended change, run with CLOUD_REGENERATE_GOLDENS=1 (the variable
tests/unit/node/test_seed.py's goldens use; pytest's --regenerate-output does the same) and review the diff."""

import difflib
import os
import subprocess
import xml.etree.ElementTree as ET

import pytest

from condor_cloud.core import errors
from condor_cloud.core.errors import CloudError
from condor_cloud.node import domain_xml
from condor_cloud.node.domain_xml import Disk, DomainParams, Network

from support import REPO




TEMPLATES = os.path.join(REPO, "templates")


GOLDEN = os.path.join(REPO, "tests", "data", "domain")
REGENERATE = os.environ.get("CLOUD_REGENERATE_GOLDENS") == "1"


BASE = dict(
    name="alice_7.0",
    uuid="3f1c2a9e-1b2c-4d5e-8f90-123456789abc",
    domain_type="qemu",
    memory_mib=256,
    vcpus=1,
    disks=[Disk("/var/lib/condor-cloud/instances/7.0-0000abcd/vda.qcow2", "vda", "qcow2", False,
                "/var/lib/condor-cloud/local_cache/demo.qcow2@0123456789abcdef.qcow2", "qcow2")],
    console_log="/var/lib/condor-cloud/instances/7.0-0000abcd/console.log",
    network=Network("none"),
    mac="02:00:00:00:00:07",
)


CASES = {
    "qemu-no-network": {},
    "kvm-bridge-vnc": dict(domain_type="kvm", vcpus=2, memory_mib=1024, network=Network("bridge", "br0"),
                           vnc_listen="127.0.0.1"),
    "libvirt-network": dict(network=Network("network", "default")),
    "user-network-two-disks-seed": dict(
        network=Network("user"),
        disks=[Disk("/i/7.0-0000abcd/vda.qcow2", "vda", "qcow2"), Disk("/i/7.0-0000abcd/vdb.qcow2", "vdb", "qcow2", True)],
        cdroms=[Disk("/i/7.0-0000abcd/seed.iso", "sda", "raw", True)]),
    "hostile-values": dict(name="eve_1.0<devices><disk type='file'>'\"&", vnc_listen="127.0.0.1"),
}


def diff_compare(actual, golden_path, request):
    """Compare with a golden file, which must exist; CLOUD_REGENERATE_GOLDENS=1 or --regenerate-output rewrites it
    instead (never a missing golden file by itself: CI must fail, not write what it should have compared)."""
    if REGENERATE or request.config.getoption("--regenerate-output"):
        with open(golden_path, "w") as f:
            f.write(actual)
    if not os.path.exists(golden_path):
        pytest.fail("golden file %s is missing (CLOUD_REGENERATE_GOLDENS=1 writes it)" % golden_path)
    with open(golden_path) as f:
        expected = f.read()
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                            golden_path, "actual"))
        pytest.fail("rendered XML differs from the golden file:\n" + diff)


def render(case):
    return domain_xml.render(DomainParams(**dict(BASE, **CASES[case])), TEMPLATES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case, request):
    diff_compare(render(case), os.path.join(GOLDEN, case + ".xml"), request)


@pytest.mark.subprocess
@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_is_valid_for_libvirt_schema(case):
    path = os.path.join(GOLDEN, case + ".xml")
    proc = subprocess.run(["virt-xml-validate", path, "domain"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.returncode == 0, proc.stdout.decode()


@pytest.mark.parametrize("case", sorted(CASES))
def test_no_tag_is_split_across_lines(case):
    # vm-gahp joins the script's lines without a separator
    for line in render(case).splitlines():
        assert line.count("<") == line.count(">"), line


def test_hostile_values_stay_data():
    root = ET.fromstring(render("hostile-values"))
    assert root.find("name").text == CASES["hostile-values"]["name"]
    assert len(root.findall("devices/disk")) == 1


def test_kvm_gets_host_cpu_and_qemu_does_not():
    assert ET.fromstring(render("kvm-bridge-vnc")).find("cpu").get("mode") == "host-passthrough"
    assert ET.fromstring(render("qemu-no-network")).find("cpu") is None


def test_missing_template_value_fails_loudly(tmp_path):
    (tmp_path / domain_xml.TEMPLATE).write_text("<domain>{{ p.nonexistent }}</domain>")
    with pytest.raises(Exception) as exc:
        domain_xml.render(DomainParams(**BASE), str(tmp_path))
    assert "nonexistent" in str(exc.value)


@pytest.mark.parametrize("setting,expected", [("bridge:br0", Network("bridge", "br0")),
                                              ("network:default", Network("network", "default")),
                                              ("user", Network("user")), ("none", Network("none"))])
def test_parse_network(setting, expected):
    assert domain_xml.parse_network(setting) == expected


@pytest.mark.parametrize("setting", ["bridge:", "bridge:br0'/>", "nat", "network:a b", ""])
def test_bad_network_setting(setting):
    with pytest.raises(CloudError):
        domain_xml.parse_network(setting)


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_shared_segment_nic_carries_the_clean_traffic_filter(case):
    # Guests on a bridge or a libvirt network cannot spoof MAC, IP or ARP: libvirt's clean-traffic, with the IPv4
    # address learned from the DHCP server's answer (never from what the guest sends first).
    root = ET.fromstring(render(case))
    interfaces = root.findall("devices/interface")
    kind = dict(BASE, **CASES[case])["network"].kind
    assert len(interfaces) == (0 if kind == "none" else 1)
    for nic in interfaces:
        filters = nic.findall("filterref")
        if nic.get("type") == "user":     # no shared segment, and libvirt takes no filter on a user-mode NIC
            assert filters == []
            continue
        assert [f.get("filter") for f in filters] == ["clean-traffic"]
        params = {p.get("name"): p.get("value") for p in filters[0].findall("parameter")}
        assert params == {"CTRL_IP_LEARNING": "dhcp"}
        assert nic.find("mac").get("address") == BASE["mac"]


def test_seed_cdrom_takes_the_first_free_sd_name():
    assert domain_xml.cdrom_device(set()) == "sda"
    assert domain_xml.cdrom_device({"vda", "sda", "sdc"}) == "sdb"
    with pytest.raises(CloudError) as exc:
        domain_xml.cdrom_device({"sda", "sdb", "sdc", "sdd"})
    assert exc.value.code == errors.BAD_REQUEST
    assert exc.value.message == ("vm_disk uses sda, sdb, sdc, sdd, but the instance's cloud-init seed CD-ROM needs "
                                 "one of them free: name the disks vda, vdb, ... instead")


def test_domain_type_choice():
    assert domain_xml.choose_domain_type("qemu", lambda: True) == "qemu"
    assert domain_xml.choose_domain_type("kvm", lambda: False) == "kvm"
    assert domain_xml.choose_domain_type("auto", lambda: True) == "kvm"
    assert domain_xml.choose_domain_type("auto", lambda: False) == "qemu"


def test_kvm_probe_on_missing_device(tmp_path):
    assert domain_xml.kvm_usable(str(tmp_path / "no-kvm")) is False
