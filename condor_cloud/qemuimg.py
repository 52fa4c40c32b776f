"""qemu-img: probe an image safely and create copy-on-write overlays."""

import json
import subprocess

from . import errors
from .errors import CloudError

_TIMEOUT = 120


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


def probe(qemu_img, path, name, expected=""):
    """Return the format ('raw' or 'qcow2') of a freshly copied image, refusing anything unsafe or corrupt.

    `name` is the image's store name for messages; `expected` a format the image must have ('' = any).
    """
    proc = _run(qemu_img, ["info", "--output=json", path], "inspecting image '%s'" % name)
    if proc.returncode != 0:
        raise CloudError("image '%s' is not a readable disk image: %s" % (name, _last_line(proc.stderr)),
                         errors.IMAGE_INVALID)
    try:
        info = json.loads(proc.stdout)
    except ValueError:
        raise CloudError("qemu-img gave unreadable output for image '%s'" % name, errors.INTERNAL) from None
    fmt = info.get("format")
    if fmt not in ("raw", "qcow2"):
        raise CloudError("image '%s' has format %s; only qcow2 and raw are supported" % (name, fmt),
                         errors.IMAGE_INVALID)
    if expected and fmt != expected:
        raise CloudError("image '%s' should be %s but its contents are %s (corrupt or misnamed)"
                         % (name, expected, fmt), errors.IMAGE_INVALID)
    if info.get("backing-filename") or info.get("full-backing-filename"):
        # A backing file would make QEMU open a path of the image's choosing.
        raise CloudError("image '%s' has a backing file; images in the store must be standalone" % name,
                         errors.IMAGE_INVALID)
    if fmt == "qcow2":
        check = _run(qemu_img, ["check", "-f", "qcow2", path], "checking image '%s'" % name)
        # Exit 0 = clean, 3 = only leaked clusters (harmless); 1/2 = corrupt or unreadable.
        if check.returncode not in (0, 3):
            raise CloudError("image '%s' is a corrupt qcow2 image: %s" % (name, _last_line(check.stderr or check.stdout)),
                             errors.IMAGE_INVALID)
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
