"""Libvirt domain XML from templates/domain.xml.j2: strict Jinja2 (autoescape, StrictUndefined), so a value from
a job ad is always data, never markup. Rendering is a pure function of DomainParams, which keeps golden tests stable."""

import fcntl
import os
import re
from dataclasses import dataclass, field
from typing import List, Optional

from condor_cloud.core import errors
from condor_cloud.core.errors import CloudError, shown

TEMPLATE = "domain.xml.j2"
_NET_RE = re.compile(r"(bridge|network):[A-Za-z0-9][A-Za-z0-9_.-]{0,63}|user|none")


@dataclass(frozen=True)
class Disk:
    path: str
    device: str
    format: str
    readonly: bool = False
    backing: str = ""          # the cached base under the overlay ('' = none)
    backing_format: str = ""


@dataclass(frozen=True)
class Network:
    kind: str          # 'bridge', 'network', 'user' or 'none'
    source: str = ""   # bridge or libvirt network name


@dataclass(frozen=True)
class DomainParams:
    name: str
    uuid: str
    domain_type: str
    memory_mib: int
    vcpus: int
    disks: List[Disk]
    console_log: str
    network: Network
    mac: str
    vnc_listen: Optional[str] = None
    cdroms: List[Disk] = field(default_factory=list)


# The cloud-init seed is a SATA CD-ROM; its target name must differ from every disk's (all disks are virtio, but
# libvirt refuses two targets of one name).
CDROM_DEVICES = ("sda", "sdb", "sdc", "sdd")


def cdrom_device(used):
    """The seed CD-ROM's target: the first of CDROM_DEVICES that no disk of the job uses."""
    for device in CDROM_DEVICES:
        if device not in used:
            return device
    raise CloudError("vm_disk uses %s, but the instance's cloud-init seed CD-ROM needs one of them free: name the "
                     "disks vda, vdb, ... instead" % ", ".join(CDROM_DEVICES), errors.BAD_REQUEST)


def parse_network(setting):
    """CLOUD_NETWORK: 'bridge:NAME', 'network:NAME', 'user' or 'none'."""
    text = (setting or "").strip()
    if not _NET_RE.fullmatch(text):
        raise CloudError("CLOUD_NETWORK must be bridge:NAME, network:NAME, user or none, not %s" % shown(text))
    kind, _, source = text.partition(":")
    return Network(kind, source)


_KVM_GET_API_VERSION = 0xAE00
_KVM_CREATE_VM = 0xAE01


def kvm_usable(device="/dev/kvm"):
    """True if /dev/kvm answers the KVM API and can create a VM."""
    try:
        fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if fcntl.ioctl(fd, _KVM_GET_API_VERSION, 0) != 12:
            return False
        vm_fd = fcntl.ioctl(fd, _KVM_CREATE_VM, 0)
        os.close(vm_fd)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def choose_domain_type(setting, probe=kvm_usable):
    """CLOUD_DOMAIN_TYPE 'kvm' or 'qemu' as given; 'auto' -> 'kvm' when KVM works, else 'qemu' (TCG)."""
    if setting in ("kvm", "qemu"):
        return setting
    return "kvm" if probe() else "qemu"


def render(params, template_dir):
    """Render the domain XML for params with the template in template_dir."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_dir),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    try:
        template = env.get_template(TEMPLATE)
    except jinja2.TemplateNotFound:
        raise CloudError("domain template %s not found in %s (CLOUD_TEMPLATE_DIR)" % (TEMPLATE, template_dir)) from None
    return template.render(p=params)
