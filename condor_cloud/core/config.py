"""Settings: HTCondor configuration knobs named CLOUD_*, read through the htcondor2 bindings.

Setting CONDOR_CONFIG=<file> (or _CONDOR_<KNOB>=value) in the environment redirects every one of them.
DEFAULTS below are the node's knobs and their defaults, the one place they are defined (the master's API knobs are in
condor_cloud/master/config.py); config.d/30condor_cloud_node.config and docs/DESIGN.txt show the same values,
and tests/unit/test_config_defaults.py fails when they drift. knob(), whole_number() and boolean() are the one
parser of knob values for every role.
"""

import re
from dataclasses import dataclass

from condor_cloud.core.errors import CloudError

DEFAULTS = {
    "CLOUD_IMAGE_STORE": "/var/lib/condor-cloud/shared_images",
    "CLOUD_IMAGE_CACHE": "/var/lib/condor-cloud/local_cache",
    "CLOUD_INSTANCE_DIR": "/var/lib/condor-cloud/instances",
    "CLOUD_CONSOLE_DIR": "/var/log/condor-cloud/consoles",
    "CLOUD_CONSOLE_KEEP": "604800",
    "CLOUD_CACHE_MAX_SIZE": "20G",
    "CLOUD_TEMPLATE_DIR": "/usr/share/condor-cloud/templates",
    "CLOUD_DOMAIN_TYPE": "auto",
    "CLOUD_NETWORK": "bridge:br0",
    "CLOUD_VNC_LISTEN": "127.0.0.1",
    "CLOUD_PREPARE_TIMEOUT": "600",
    "CLOUD_ORPHAN_GRACE": "600",
    "CLOUD_QEMU_IMG": "/usr/bin/qemu-img",
    "CLOUD_LIBVIRT_URI": "qemu:///system",
}

_SIZE_RE = re.compile(r"\s*([0-9]+)\s*([KMGT]?)i?B?\s*", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text):
    """'20G' -> bytes (binary units; bare numbers are bytes; 0 means no limit)."""
    m = _SIZE_RE.fullmatch(str(text))
    if not m:
        raise CloudError("bad size %r: use a number with an optional K, M, G or T suffix" % (text,))
    return int(m.group(1)) * _UNITS[m.group(2).upper()]


@dataclass(frozen=True)
class Settings:
    image_store: str
    image_cache: str
    instance_dir: str
    console_dir: str
    console_keep: int
    cache_max_size: int
    template_dir: str
    domain_type: str
    network: str
    vnc_listen: str
    prepare_timeout: int
    orphan_grace: int
    qemu_img: str
    libvirt_uri: str


def knob(name, defaults=DEFAULTS):
    """The value of knob name from HTCondor's configuration, or defaults[name] when it is unset or empty."""
    import htcondor2  # imported here so that unit tests of pure code need no HTCondor

    value = htcondor2.param.get(name)
    return defaults[name] if value is None or value == "" else value


def whole_number(name, text, low=None):
    """int(text), or CloudError naming the knob (also when it is below low)."""
    try:
        value = int(text)
    except ValueError:
        raise CloudError("configuration knob %s = %r is not a whole number" % (name, text)) from None
    if low is not None and value < low:
        raise CloudError("configuration knob %s must be at least %d" % (name, low))
    return value


_BOOLEANS = {"true": True, "yes": True, "false": False, "no": False}


def boolean(name, text):
    """True or False from true/yes/false/no (any case), or CloudError naming the knob."""
    value = _BOOLEANS.get(str(text).strip().lower())
    if value is None:
        raise CloudError("configuration knob %s must be true or false, not %r" % (name, text))
    return value


def load_settings(reload=False):
    """Read every CLOUD_* knob (reload=True re-reads the configuration files first)."""
    if reload:
        import htcondor2

        htcondor2.reload_config()
    raw = {name: knob(name) for name in DEFAULTS}
    domain_type = raw["CLOUD_DOMAIN_TYPE"].strip().lower()
    if domain_type not in ("auto", "kvm", "qemu"):
        raise CloudError("CLOUD_DOMAIN_TYPE must be auto, kvm or qemu, not %r" % raw["CLOUD_DOMAIN_TYPE"])
    return Settings(
        image_store=raw["CLOUD_IMAGE_STORE"],
        image_cache=raw["CLOUD_IMAGE_CACHE"],
        instance_dir=raw["CLOUD_INSTANCE_DIR"],
        console_dir=raw["CLOUD_CONSOLE_DIR"],
        console_keep=whole_number("CLOUD_CONSOLE_KEEP", raw["CLOUD_CONSOLE_KEEP"]),
        cache_max_size=parse_size(raw["CLOUD_CACHE_MAX_SIZE"]),
        template_dir=raw["CLOUD_TEMPLATE_DIR"],
        domain_type=domain_type,
        network=raw["CLOUD_NETWORK"].strip(),
        vnc_listen=raw["CLOUD_VNC_LISTEN"].strip(),
        prepare_timeout=whole_number("CLOUD_PREPARE_TIMEOUT", raw["CLOUD_PREPARE_TIMEOUT"]),
        orphan_grace=whole_number("CLOUD_ORPHAN_GRACE", raw["CLOUD_ORPHAN_GRACE"]),
        qemu_img=raw["CLOUD_QEMU_IMG"],
        libvirt_uri=raw["CLOUD_LIBVIRT_URI"],
    )
