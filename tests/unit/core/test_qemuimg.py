"""qemuimg.probe: an image that names any other file (backing file, external data file, json: filename) is refused
with a clear reason, and qemu-img never opens such an image (nor the file it names). Real qemu-img throughout."""

import json
import os
import struct
import subprocess
import time

import pytest

from condor_cloud.core import errors, qemuimg
from condor_cloud.core.errors import CloudError

from support import make_qcow2

pytestmark = pytest.mark.subprocess


def qemu_img(*args):
    subprocess.run(["qemu-img"] + list(args), check=True, stdout=subprocess.DEVNULL)


@pytest.fixture
def runs(monkeypatch):
    """Every qemu-img command line the probe runs (the real qemu-img still runs)."""
    seen = []
    real = qemuimg._run

    def spy(binary, args, what):
        seen.append(list(args))
        return real(binary, args, what)

    monkeypatch.setattr(qemuimg, "_run", spy)
    return seen


def with_data_file(tmp_path, data_file, name="datafile.qcow2"):
    """A qcow2 whose clusters live in the external file data_file (as `qemu-img amend -o data_file=` makes)."""
    path = tmp_path / name
    qemu_img("create", "-q", "-f", "qcow2", "-o", "data_file=%s" % data_file, str(path), "1M")
    return path


def refused(path, expected=""):
    with pytest.raises(CloudError) as exc:
        qemuimg.probe("qemu-img", str(path), os.path.basename(str(path)), expected)
    assert exc.value.code == errors.IMAGE_INVALID
    return exc.value.message


def test_standalone_images_pass_with_format_forced_and_no_locks(tmp_path, runs):
    qcow2 = make_qcow2(tmp_path / "good.qcow2")
    raw = tmp_path / "good.img"
    raw.write_bytes(b"\0" * 65536)
    assert qemuimg.probe("qemu-img", str(qcow2), "good.qcow2", "qcow2") == "qcow2"
    assert qemuimg.probe("qemu-img", str(raw), "good.img", "raw") == "raw"
    # qemu-img is told the format (it never guesses one from the contents) and takes no image locks.
    assert runs[0][:3] == ["info", "-U", "-f"] and runs[0][3] == "qcow2"
    assert runs[1][:4] == ["check", "-U", "-f", "qcow2"]
    assert runs[2][:4] == ["info", "-U", "-f", "raw"]


def test_external_data_file_is_refused_before_qemu_img_opens_anything(tmp_path, runs):
    host_file = tmp_path / "host-secret"
    host_file.write_bytes(b"root-only data" + b"\0" * 65536)
    image = with_data_file(tmp_path, host_file)
    message = refused(image, "qcow2")
    assert message.startswith("image 'datafile.qcow2' has an external data file;")
    assert "standalone" in message
    assert runs == []


def test_the_external_data_file_itself_is_never_opened(tmp_path, monkeypatch):
    # A FIFO as the data file: whoever opens it blocks. `qemu-img check` does open it, so only a probe that
    # refuses the image before running qemu-img returns at once.
    target = tmp_path / "d"
    target.write_bytes(b"\0" * 65536)
    image = with_data_file(tmp_path, target)
    target.unlink()
    os.mkfifo(str(target))
    monkeypatch.setattr(qemuimg, "_TIMEOUT", 5)
    started = time.monotonic()
    assert "external data file" in refused(image)
    assert time.monotonic() - started < 4


def test_json_data_file_name_is_refused(tmp_path, runs):
    image = with_data_file(tmp_path, tmp_path / "d")
    qemu_img("amend", "-o", 'data_file=json:{"driver":"file",,"filename":"/etc/shadow"}', str(image))
    assert "external data file" in refused(image)
    assert runs == []


def test_data_file_name_extension_without_the_feature_bit_is_refused(tmp_path, runs):
    image = with_data_file(tmp_path, tmp_path / "d")
    data = bytearray(image.read_bytes())
    incompatible = struct.unpack(">Q", data[72:80])[0]
    data[72:80] = struct.pack(">Q", incompatible & ~4)      # clear "external data file", keep the name
    image.write_bytes(bytes(data))
    assert "names an external data file" in refused(image)
    assert runs == []


def test_backing_file_is_refused_before_qemu_img_runs(tmp_path, runs):
    base = make_qcow2(tmp_path / "base.qcow2")
    image = tmp_path / "overlay.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(base), str(image))
    message = refused(image)
    assert message.startswith("image 'overlay.qcow2' has a backing file;")
    assert runs == []


def test_backing_file_with_a_json_name_is_refused(tmp_path, runs):
    base = make_qcow2(tmp_path / "base.qcow2")
    image = tmp_path / "json.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-F", "qcow2", "-u", "-b",
             'json:{"driver":"qcow2","file":{"driver":"file","filename":"%s"}}' % base, str(image), "16M")
    assert "backing file" in refused(image)
    assert runs == []


def test_vmdk_descriptor_naming_a_host_file_is_refused_without_qemu_img(tmp_path, runs):
    # A text VMDK whose extent is a host file: qemu-img guessing the format would open /etc/shadow.
    image = tmp_path / "disk.vmdk"
    image.write_text('# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="monolithicFlat"\n'
                     'RW 2048 FLAT "/etc/shadow" 0\n')
    assert "has format vmdk; only qcow2 and raw" in refused(image)
    assert runs == []


def test_qcow_version_1_is_refused(tmp_path, runs):
    image = tmp_path / "old.qcow2"
    image.write_bytes(b"QFI\xfb" + struct.pack(">I", 1) + b"\0" * 504)
    assert "has format qcow" in refused(image, "qcow2")
    assert runs == []


def test_qemu_img_reporting_another_file_is_refused(tmp_path, monkeypatch):
    # Second line of defence: whatever the header check misses, qemu-img's own report must name no other file.
    image = make_qcow2(tmp_path / "good.qcow2")
    real = qemuimg._run
    report = {"format": "qcow2", "filename": str(image), "virtual-size": 1 << 24,
              "format-specific": {"type": "qcow2", "data": {"data-file": "/etc/shadow"}}}

    def fake(binary, args, what):
        if args[0] == "info":
            return subprocess.CompletedProcess(args, 0, json.dumps(report).encode(), b"")
        return real(binary, args, what)

    monkeypatch.setattr(qemuimg, "_run", fake)
    message = refused(image)
    assert "names another file (data-file '/etc/shadow')" in message


@pytest.mark.parametrize("info", [
    {"backing-filename": "/etc/shadow"},
    {"full-backing-filename": "/etc/shadow"},
    {"backing-image": {"filename": "base.qcow2"}},
    {"format-specific": {"type": "qcow2", "data": {"data-file": "/var/lib/secret"}}},
    {"format-specific": {"type": "qcow2", "data": {"data-file-raw": True}}},
    {"filename": 'json:{"driver":"file","filename":"/etc/shadow"}'},
    {"children": [{"name": "file", "info": {"filename": "x"}}, {"name": "data-file", "info": {}}]},
    {"children": [{"name": "file", "info": {"filename": "json:{}"}}]},
])
def test_external_names_in_qemu_img_info(info):
    base = {"format": "qcow2", "filename": "x.qcow2", "virtual-size": 1}
    base.update(info)
    assert qemuimg.external_names(base)


def test_standalone_info_names_nothing(tmp_path):
    image = make_qcow2(tmp_path / "good.qcow2")
    info = json.loads(subprocess.run(["qemu-img", "info", "-U", "-f", "qcow2", "--output=json", str(image)],
                                     check=True, stdout=subprocess.PIPE).stdout)
    assert qemuimg.external_names(info) == []


@pytest.mark.parametrize("content,fmt", [(b"QFI\xfb\0\0\0\x03", "qcow2"), (b"KDMV", "vmdk"), (b"QED\0", "qed"),
                                         (b"conectix", "vpc"), (b"vhdxfile", "vhdx"), (b"LUKS\xba\xbe", "luks"),
                                         (b"\0" * 64 + struct.pack("<I", 0xBEDA107F), "vdi"),
                                         (b"hello", "raw"), (b"", "raw")])
def test_sniff_format(tmp_path, content, fmt):
    path = tmp_path / "x"
    path.write_bytes(content)
    assert qemuimg.sniff_format(str(path)) == fmt
