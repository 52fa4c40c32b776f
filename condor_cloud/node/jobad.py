"""Job ads in and out: parse the ad a hook gets on stdin, and write `Attr = value` lines back."""

import re
from dataclasses import dataclass

from condor_cloud.core import errors
from condor_cloud.core.errors import CloudError, shown


def read_ad(stream):
    """Parse an old-syntax ad (`Name = expr` lines) into a classad2.ClassAd."""
    import classad2

    text = stream.read()
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    try:
        return classad2.parseOne(text)
    except Exception as exc:  # classad2 raises several types for malformed input
        raise CloudError("the job ad could not be parsed: %s" % exc, errors.BAD_REQUEST) from None


def get(ad, name, kind, default=None):
    """Evaluate ad[name] and check its type (str or int); missing -> default."""
    if name not in ad:
        return default
    try:
        value = ad.eval(name)
    except Exception:
        raise CloudError("job attribute %s could not be evaluated" % name, errors.BAD_REQUEST) from None
    if kind is int and isinstance(value, bool):
        value = int(value)
    if kind is bool and isinstance(value, int):
        value = bool(value)
    if not isinstance(value, kind):
        raise CloudError("job attribute %s must be a %s" % (name, kind.__name__), errors.BAD_REQUEST)
    return value


def classad_string(text):
    """Quote text as a string literal of the old ClassAd syntax that hooks print.

    In that syntax only \\" is an escape; any other backslash is literal. So a backslash is written as the text
    \\x5c and control characters as \\xNN: the value can never end the literal early or start a new line."""
    out = ['"']
    for ch in text:
        if ch == "\\":
            out.append("\\x5c")
        elif ch == '"':
            out.append('\\"')
        elif ord(ch) < 0x20 or ord(ch) == 0x7f:
            out.append("\\x%02x" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def format_attrs(attrs):
    """Render {name: value} as `Name = value` lines (str quoted, bool/int as literals)."""
    lines = []
    for name, value in attrs.items():
        if isinstance(value, bool):
            literal = "true" if value else "false"
        elif isinstance(value, int):
            literal = str(value)
        else:
            literal = classad_string(str(value))
        lines.append("%s = %s\n" % (name, literal))
    return "".join(lines)


_DEVICE_RE = re.compile(r"(vd|sd|hd|xvd)[a-z]{1,2}")


@dataclass(frozen=True)
class DiskRequest:
    image: str      # a name in the image store (checked separately by images.check_image_name)
    device: str     # vda, sdb, ...
    writable: bool
    format: str     # '' when the job did not say


def parse_vm_disk(text):
    """Parse VMPARAM_vm_Disk (`file:device:perm[:format]`, comma-separated) into DiskRequests."""
    if not isinstance(text, str) or not text.strip():
        raise CloudError("the job has no vm_disk: name an image, e.g. vm_disk = demo.qcow2:vda:w",
                         errors.BAD_REQUEST)
    disks = []
    for entry in text.split(","):
        parts = entry.strip().split(":")
        if len(parts) not in (3, 4):
            raise CloudError("vm_disk entry %s must look like IMAGE:DEVICE:PERM, e.g. demo.qcow2:vda:w"
                             % shown(entry), errors.BAD_REQUEST)
        image, device, perm = parts[0], parts[1], parts[2]
        fmt = parts[3] if len(parts) == 4 else ""
        if not _DEVICE_RE.fullmatch(device):
            raise CloudError("vm_disk device %s is not a disk name like vda" % shown(device), errors.BAD_REQUEST)
        if perm not in ("r", "w", "rw"):
            raise CloudError("vm_disk permission %s must be r or w" % shown(perm), errors.BAD_REQUEST)
        if fmt not in ("", "raw", "qcow2"):
            raise CloudError("vm_disk format %s must be raw or qcow2" % shown(fmt), errors.BAD_REQUEST)
        disks.append(DiskRequest(image, device, perm != "r", fmt))
    devices = [d.device for d in disks]
    if len(set(devices)) != len(devices):
        raise CloudError("vm_disk names the same device twice", errors.BAD_REQUEST)
    return disks
