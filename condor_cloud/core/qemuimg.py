"""qemu-img: probe an image safely and create copy-on-write overlays.

An image in the store must be standalone: nothing in it may name another file (a backing file, an external data
file, a `json:` pseudo-filename), or a guest's disk would read whatever host file the image names. The format is
read from the file's first bytes here, and a qcow2 header that names another file is refused here, before
qemu-img opens the image at all (older qemu-img versions open an external data file even for `info`, and
`check` always does). qemu-img then runs with the format given (-f, so it never guesses one) and -U (no image
locks), and what it reports is checked once more for any name of another file.
"""

import json
import struct
import subprocess

from condor_cloud.core import errors
from condor_cloud.core.errors import CloudError, shown

_TIMEOUT = 120

_QCOW2_MAGIC = b"QFI\xfb"
_QCOW2_INCOMPAT_DATA_FILE = 1 << 2
_QCOW2_EXT_END = 0
_QCOW2_EXT_DATA_FILE = 0x44415441
# Formats QEMU would recognise by their first bytes (for a clear refusal; anything else not qcow2 is raw data,
# which QEMU is always told is raw).
_OTHER_FORMATS = [(b"KDMV", "vmdk"), (b"COWD", "vmdk"), (b"# Disk DescriptorFile", "vmdk"), (b"QED\x00", "qed"),
                  (b"conectix", "vpc"), (b"vhdxfile", "vhdx"), (b"LUKS\xba\xbe", "luks"),
                  (b"WithoutFreeSpace", "parallels"), (b"WithouFreSpacExt", "parallels"),
                  (b"Bochs Virtual HD Image", "bochs"), (b"<<< Oracle VM VirtualBox Disk Image >>>", "vdi")]
# Keys of `qemu-img info --output=json` whose presence means the image names another file.
_EXTERNAL_KEYS = ("backing-filename", "full-backing-filename", "backing-filename-format", "backing-image",
                  "data-file", "data-file-raw")


def _run(qemu_img, args, what):
    try:
        proc = subprocess.run([qemu_img] + args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=_TIMEOUT, check=False)
    except FileNotFoundError:
        raise CloudError("qemu-img not found at %s (CLOUD_QEMU_IMG)" % qemu_img, errors.INTERNAL) from None
    except subprocess.TimeoutExpired:
        raise CloudError("qemu-img timed out after %d s while %s" % (_TIMEOUT, what), errors.TIMEOUT) from None
    return proc


def _last_line(stderr):
    lines = [line for line in stderr.decode("utf-8", "replace").strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def _refuse(name, why):
    raise CloudError("image '%s' %s; images in the store must be standalone (convert it with 'qemu-img convert "
                     "-O qcow2 IMAGE NEW.qcow2' and add NEW.qcow2)" % (name, why), errors.IMAGE_INVALID)


def sniff_format(path):
    """The format of the image at path from its first bytes: 'qcow2', 'raw', or the name of a format QEMU knows
    but the store does not take. Reads the file only; starts nothing."""
    with open(path, "rb") as f:
        head = f.read(512)
    if head[:4] == _QCOW2_MAGIC:
        return "qcow2" if len(head) >= 8 and struct.unpack(">I", head[4:8])[0] >= 2 else "qcow"
    for magic, fmt in _OTHER_FORMATS:
        if head.startswith(magic):
            return fmt
    if len(head) >= 68 and struct.unpack("<I", head[64:68])[0] == 0xBEDA107F:
        return "vdi"
    return "raw"


def check_qcow2_header(path, name):
    """Refuse a qcow2 image whose header names another file (backing file, external data file), reading the
    header only: QEMU must never get to open such a file."""
    with open(path, "rb") as f:
        head = f.read(104)
        if len(head) < 72:
            raise CloudError("image '%s' is a truncated qcow2 image (header cut short)" % name, errors.IMAGE_INVALID)
        version, backing_offset, backing_size, cluster_bits = struct.unpack(">IQII", head[4:24])
        if version not in (2, 3):
            raise CloudError("image '%s' is qcow2 version %d; only versions 2 and 3 are supported" % (name, version),
                             errors.IMAGE_INVALID)
        if backing_offset or backing_size:
            _refuse(name, "has a backing file")
        if not 9 <= cluster_bits <= 21:
            raise CloudError("image '%s' is a corrupt qcow2 image (cluster_bits %d)" % (name, cluster_bits),
                             errors.IMAGE_INVALID)
        ext_start = 72
        if version == 3:
            if len(head) < 104:
                raise CloudError("image '%s' is a truncated qcow2 image (header cut short)" % name,
                                 errors.IMAGE_INVALID)
            incompatible = struct.unpack(">Q", head[72:80])[0]
            if incompatible & _QCOW2_INCOMPAT_DATA_FILE:
                _refuse(name, "has an external data file")
            ext_start = struct.unpack(">I", head[100:104])[0]
        # Header extensions follow the header, within the first cluster: a data file name is refused even
        # without the feature bit.
        f.seek(ext_start)
        area = f.read(max(0, (1 << cluster_bits) - ext_start))
    offset = 0
    while offset + 8 <= len(area):
        ext_type, length = struct.unpack(">II", area[offset:offset + 8])
        if ext_type == _QCOW2_EXT_END:
            break
        if ext_type == _QCOW2_EXT_DATA_FILE:
            _refuse(name, "names an external data file")
        offset += 8 + (length + 7) // 8 * 8


def external_names(info):
    """What in qemu-img's JSON info names another file: [(key, value)], empty for a standalone image."""
    found = []

    def walk(value, key=""):
        if isinstance(value, dict):
            for k, v in value.items():
                if k in _EXTERNAL_KEYS:
                    found.append((k, v))
                elif k == "children" and isinstance(v, list):
                    # Newer qemu-img lists the image's child nodes: only its own 'file' is expected.
                    for child in v:
                        if not isinstance(child, dict) or child.get("name") != "file":
                            found.append(("children", child.get("name") if isinstance(child, dict) else child))
                    walk(v, k)
                else:
                    walk(v, k)
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif isinstance(value, str) and value.startswith("json:"):
            found.append((key, value))

    walk(info)
    return found


def probe(qemu_img, path, name, expected=""):
    """Return the format ('raw' or 'qcow2') of a freshly copied image, refusing anything unsafe or corrupt.

    `name` is the image's store name for messages; `expected` a format the image must have ('' = any).
    """
    try:
        fmt = sniff_format(path)
    except OSError as exc:
        raise CloudError("image '%s' cannot be read: %s" % (name, exc.strerror), errors.IMAGE_INVALID) from None
    if fmt not in ("raw", "qcow2"):
        raise CloudError("image '%s' has format %s; only qcow2 and raw are supported" % (name, fmt),
                         errors.IMAGE_INVALID)
    if expected and fmt != expected:
        raise CloudError("image '%s' should be %s but its contents are %s (corrupt or misnamed)"
                         % (name, expected, fmt), errors.IMAGE_INVALID)
    if fmt == "qcow2":
        try:
            check_qcow2_header(path, name)
        except OSError as exc:
            raise CloudError("image '%s' cannot be read: %s" % (name, exc.strerror), errors.IMAGE_INVALID) from None
    proc = _run(qemu_img, ["info", "-U", "-f", fmt, "--output=json", path], "inspecting image '%s'" % name)
    if proc.returncode != 0:
        raise CloudError("image '%s' is not a readable disk image: %s" % (name, _last_line(proc.stderr)),
                         errors.IMAGE_INVALID)
    try:
        info = json.loads(proc.stdout)
    except ValueError:
        raise CloudError("qemu-img gave unreadable output for image '%s'" % name, errors.INTERNAL) from None
    if not isinstance(info, dict) or info.get("format") != fmt:
        raise CloudError("qemu-img did not read image '%s' as %s" % (name, fmt), errors.IMAGE_INVALID)
    found = external_names(info)
    if found:
        key, value = found[0]
        _refuse(name, "names another file (%s %s)" % (key, shown(str(value), 100)))
    if fmt == "qcow2":
        check = _run(qemu_img, ["check", "-U", "-f", "qcow2", path], "checking image '%s'" % name)
        # Exit 0 = clean, 3 = only leaked clusters (harmless); 1/2 = corrupt or unreadable.
        if check.returncode not in (0, 3):
            raise CloudError("image '%s' is a corrupt qcow2 image: %s"
                             % (name, _last_line(check.stderr or check.stdout)), errors.IMAGE_INVALID)
    return fmt


def expected_format(name):
    """The format an image's name promises: .qcow2 -> qcow2, .img/.raw -> raw, else '' (any)."""
    lower = name.lower()
    if lower.endswith(".qcow2"):
        return "qcow2"
    if lower.endswith((".raw", ".img")):
        return "raw"
    return ""


def create_overlay(qemu_img, base, base_format, path):
    """Create a qcow2 overlay at path over base, with the backing format stated explicitly."""
    proc = _run(qemu_img, ["create", "-q", "-f", "qcow2", "-F", base_format, "-b", base, path],
                "creating overlay %s" % path)
    if proc.returncode != 0:
        message = _last_line(proc.stderr)
        code = errors.NO_SPACE if "No space" in message else errors.INTERNAL
        raise CloudError("could not create overlay %s: %s" % (path, message), code)
