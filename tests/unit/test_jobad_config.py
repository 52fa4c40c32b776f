"""Job-ad parsing and output, settings from HTCondor configuration, instance ownership by the starter process."""

import os

import classad2
import pytest

from condor_cloud.core import config
from condor_cloud.node import instance_dirs, jobad
from condor_cloud.core.errors import CloudError


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


def test_settings_come_from_condor_config(cloud):
    cloud.write_config("CLOUD_CACHE_MAX_SIZE = 3G\nCLOUD_NETWORK = network:default\n")
    s = config.load_settings()
    assert s.image_store == str(cloud.store) and s.image_cache == str(cloud.cache)
    assert s.cache_max_size == 3 << 30 and s.network == "network:default" and s.domain_type == "qemu"


def test_defaults_when_unset(cloud):
    cloud.config.write_text("")
    import htcondor2
    htcondor2.reload_config()
    s = config.load_settings()
    assert s.image_store == "/var/lib/condor-cloud/shared_images"
    assert s.image_cache == "/var/lib/condor-cloud/local_cache"
    assert s.domain_type == "auto" and s.network == "bridge:br0"


def test_bad_setting_is_a_clear_error(cloud):
    cloud.write_config("CLOUD_DOMAIN_TYPE = xen\n")
    with pytest.raises(CloudError) as exc:
        config.load_settings()
    assert "CLOUD_DOMAIN_TYPE" in exc.value.message


@pytest.mark.parametrize("text,size", [("0", 0), ("512", 512), ("20G", 20 << 30), ("100MiB", 100 << 20), ("1t", 1 << 40)])
def test_parse_size(text, size):
    assert config.parse_size(text) == size


def test_instance_owned_by_a_reused_pid_is_an_orphan(tmp_path):
    inst = instance_dirs.create(str(tmp_path), "1.0-0000abcd", {"uuid": "u", "mac": "m"}, instance_dirs.Starter.of(os.getpid()))
    assert inst.starter_alive()
    inst.meta["starter"]["start_time"] -= 1  # same pid, different process
    assert not inst.starter_alive()


@pytest.mark.parametrize("bad", ["../x", "1.0", "1.0-XYZ", "1.0-0000abcd/..", ""])
def test_instance_ids_are_checked(tmp_path, bad):
    with pytest.raises(CloudError):
        instance_dirs.load(str(tmp_path), bad)
