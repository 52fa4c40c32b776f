"""Job-ad parsing and output (condor_cloud/node/jobad.py): ClassAd strings that cannot be escaped, vm_disk, typed
attribute reads."""

import classad2
import pytest

from condor_cloud.core.errors import CloudError
from condor_cloud.node import jobad


@pytest.mark.parametrize("text", ['plain', "image 'foo.qcow2' not found in /var/lib", 'quote " inside', "\u00e9t\u00e9"])
def test_classad_string_round_trips(text):
    ad = classad2.parseOne(jobad.format_attrs({"HookStatusMessage": text, "HookStatusCode": 12, "Flag": True}))
    assert ad["HookStatusMessage"] == text and ad["HookStatusCode"] == 12 and ad["Flag"] is True


@pytest.mark.parametrize("text,shown", [('a\\b', 'a\\x5cb'), ('end\\', 'end\\x5c'), ('x\\"y', 'x\\x5c"y'),
                                        ("new\nline", "new\\x0aline"), ('"\nInjected = 1\n', '"\\x0aInjected = 1\\x0a')])
def test_classad_string_cannot_be_escaped(text, shown):
    ad = classad2.parseOne(jobad.format_attrs({"HookStatusMessage": text, "HookStatusCode": 12}))
    assert ad["HookStatusMessage"] == shown
    assert set(ad.keys()) == {"HookStatusMessage", "HookStatusCode"}


def test_parse_vm_disk_by_hand_form():
    [disk] = jobad.parse_vm_disk("demo.qcow2:vda:w")
    assert (disk.image, disk.device, disk.writable, disk.format) == ("demo.qcow2", "vda", True, "")


def test_parse_vm_disk_several_and_format():
    disks = jobad.parse_vm_disk("a.qcow2:vda:w:qcow2, b.img:vdb:r:raw")
    assert [(d.image, d.device, d.writable, d.format) for d in disks] == \
        [("a.qcow2", "vda", True, "qcow2"), ("b.img", "vdb", False, "raw")]


@pytest.mark.parametrize("text", ["", "demo.qcow2", "a:vda:w,b:vda:w", "a:vda:w:vmdk", "a:eth0:w", "a:vda:rwx"])
def test_parse_vm_disk_refuses(text):
    with pytest.raises(CloudError):
        jobad.parse_vm_disk(text)


def test_get_checks_types():
    ad = classad2.parseOne('A = 1\nB = "x"\nC = undefined_thing + 1\n')
    assert jobad.get(ad, "A", int) == 1 and jobad.get(ad, "B", str) == "x"
    assert jobad.get(ad, "Missing", str, "d") == "d"
    with pytest.raises(CloudError):
        jobad.get(ad, "B", int)
