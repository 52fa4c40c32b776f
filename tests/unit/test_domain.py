"""Domain XML: golden files (tests/data/domain/*.xml, regenerate with --regenerate-output), libvirt's schema
(virt-xml-validate), and no markup injection from job-ad values."""

import difflib
import os
import subprocess
import xml.etree.ElementTree as ET

import pytest

from condor_cloud import domain
from condor_cloud.domain import Disk, DomainParams, Network
from condor_cloud.errors import CloudError

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TEMPLATES = os.path.join(REPO, "templates")
GOLDEN = os.path.join(REPO, "tests", "data", "domain")

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
    mac="52:54:00:12:34:56",
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
    """Compare with a golden file; --regenerate-output rewrites it instead."""
    if request.config.getoption("--regenerate-output") or not os.path.exists(golden_path):
        with open(golden_path, "w") as f:
            f.write(actual)
    with open(golden_path) as f:
        expected = f.read()
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                            golden_path, "actual"))
        pytest.fail("rendered XML differs from the golden file:\n" + diff)


def render(case):
    return domain.render(DomainParams(**dict(BASE, **CASES[case])), TEMPLATES)


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
    (tmp_path / domain.TEMPLATE).write_text("<domain>{{ p.nonexistent }}</domain>")
    with pytest.raises(Exception) as exc:
        domain.render(DomainParams(**BASE), str(tmp_path))
    assert "nonexistent" in str(exc.value)


@pytest.mark.parametrize("setting,expected", [("bridge:br0", Network("bridge", "br0")),
                                              ("network:default", Network("network", "default")),
                                              ("user", Network("user")), ("none", Network("none"))])
def test_parse_network(setting, expected):
    assert domain.parse_network(setting) == expected


@pytest.mark.parametrize("setting", ["bridge:", "bridge:br0'/>", "nat", "network:a b", ""])
def test_bad_network_setting(setting):
    with pytest.raises(CloudError):
        domain.parse_network(setting)


def test_mac_is_stable_local_and_unique():
    macs = {domain.mac_for("master#%d.0#1700000000" % i) for i in range(100)}
    assert len(macs) == 100
    assert all(m.startswith("52:54:00:") for m in macs)
    assert domain.mac_for("x") == domain.mac_for("x")


@pytest.mark.parametrize("mac", ["01:00:5e:00:00:01", "52:54:00:12:34", "zz:54:00:12:34:56", "52:54:00:12:34:56'"])
def test_bad_job_mac_is_refused(mac):
    with pytest.raises(CloudError):
        domain.check_mac(mac)


def test_domain_type_choice():
    assert domain.choose_domain_type("qemu", lambda: True) == "qemu"
    assert domain.choose_domain_type("kvm", lambda: False) == "kvm"
    assert domain.choose_domain_type("auto", lambda: True) == "kvm"
    assert domain.choose_domain_type("auto", lambda: False) == "qemu"


def test_kvm_probe_on_missing_device(tmp_path):
    assert domain.kvm_usable(str(tmp_path / "no-kvm")) is False
