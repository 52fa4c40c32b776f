"""NoCloud seeds: the per-instance ISO9660 volume labelled `cidata` that cloud-init reads at first boot.

The volume holds exactly the files cloud-init's NoCloud datasource looks for, under fixed names that never come
from the user: `meta-data` (YAML: instance-id, local-hostname, public-keys), `user-data` (the user's bytes as
given, or a default #cloud-config carrying the SSH keys) and, when given, `network-config`. Names are written in all
three namespaces (ISO9660 8.3, Rock Ridge, Joliet) so Linux, which prefers Rock Ridge, sees the lowercase names.

SSH keys always go into meta-data `public-keys` (NoCloud inherits DataSource.get_public_ssh_keys, which reads that
key), so they reach the image's default user even when the user's own user data does not mention them; the
default user data lists them again under ssh_authorized_keys.

Everything a user controls is validated here with CloudError(..., BAD_REQUEST) messages meant for the job's owner;
see docs/CONTEXTUALIZATION.txt. Built with pycdlib (pure Python, packaged as python3-pycdlib).
"""

import io
import json
import os
import re
from dataclasses import dataclass, field
from typing import List, Optional

from condor_cloud.core import errors
from condor_cloud.core.errors import CloudError, shown
from condor_cloud.core.sshkeys import check_ssh_key  # one validator for the seed and the API's key store
from condor_cloud.node import instance_dirs
from condor_cloud.core.userdata import MAX_USER_DATA, SSH_KEYS_FILE, USER_DATA_FILE, check_user_data

VOLUME_LABEL = "cidata"
MAX_NETWORK_CONFIG = 64 * 1024
MAX_KEYS = 16

# Fixed names on the volume: (ISO9660 level-1 name, Rock Ridge and Joliet name).
_FILES = {
    "meta-data": "/METADATA.;1",
    "user-data": "/USERDATA.;1",
    "network-config": "/NETWORKC.;1",
}

_HOSTNAME_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


# ---------------------------------------------------------------------------------------------------- validation


def check_hostname(hostname):
    """An RFC 1123 host name label (letters, digits, hyphens; 1-63; no leading/trailing hyphen), lower-cased."""
    if not isinstance(hostname, str) or not _HOSTNAME_RE.fullmatch(hostname):
        raise CloudError("host name %s must be 1-63 letters, digits or hyphens, not starting or ending with a "
                         "hyphen" % shown(hostname), errors.BAD_REQUEST)
    return hostname.lower()


def hostname_for(name, instance_id):
    """A valid host name from a free-form instance name (or from the instance id when nothing usable is left).

    'Web Server #1' -> 'web-server-1'; '' with id '12.0-0a1b2c3d' -> 'instance-12-0-0a1b2c3d'.
    """
    text = re.sub(r"[^a-z0-9]+", "-", (name or "").lower()).strip("-")[:63].rstrip("-")
    if not text:
        text = re.sub(r"[^a-z0-9]+", "-", "instance-%s" % instance_id.lower()).strip("-")[:63].rstrip("-")
    return check_hostname(text)


def parse_ssh_keys(text):
    """Keys from a text with one key per line (CloudSSHKey may hold several, one per line); blank lines skipped."""
    if text is None:
        return []
    if not isinstance(text, str):
        raise CloudError("SSH keys must be text, one key per line", errors.BAD_REQUEST)
    return check_ssh_keys([line for line in text.replace("\r\n", "\n").split("\n") if line.strip()])


def check_ssh_keys(keys):
    keys = list(keys or ())
    if len(keys) > MAX_KEYS:
        raise CloudError("too many SSH keys: %d, at most %d" % (len(keys), MAX_KEYS), errors.BAD_REQUEST)
    out = []
    for key in keys:
        key = check_ssh_key(key)
        if key not in out:
            out.append(key)
    return out


def check_network_config(config):
    """network-config content: None, a dict (written as JSON, which is YAML) or UTF-8 text."""
    if config is None:
        return None
    if isinstance(config, dict):
        data = (json.dumps(config, indent=2, sort_keys=True) + "\n").encode("ascii")
    elif isinstance(config, str):
        data = config.encode("utf-8")
    elif isinstance(config, bytes):
        data = config
    else:
        raise CloudError("network-config must be a mapping or YAML text", errors.BAD_REQUEST)
    if len(data) > MAX_NETWORK_CONFIG:
        raise CloudError("network-config is too large (at most %d bytes)" % MAX_NETWORK_CONFIG, errors.BAD_REQUEST)
    try:
        if "\x00" in data.decode("utf-8"):
            raise UnicodeDecodeError("utf-8", data, 0, 1, "NUL")
    except UnicodeDecodeError:
        raise CloudError("network-config must be UTF-8 text", errors.BAD_REQUEST) from None
    return data


def dhcp_network_config(mac):
    """A network-config (version 2) that runs DHCPv4 on the interface with this MAC, whatever its name."""
    return {"version": 2, "ethernets": {"primary": {"match": {"macaddress": mac.lower()}, "dhcp4": True}}}


# ---------------------------------------------------------------------------------------------------- content

def _yaml_string(text):
    """A YAML double-quoted scalar: JSON string syntax is valid YAML and escapes everything that matters."""
    return json.dumps(text, ensure_ascii=True)


def meta_data(instance_id, hostname, ssh_keys=()):
    """The meta-data file (YAML): instance-id, local-hostname and, when there are keys, public-keys."""
    lines = ["instance-id: %s" % _yaml_string(instance_dirs.check_instance_id(instance_id)),
             "local-hostname: %s" % _yaml_string(check_hostname(hostname))]
    keys = check_ssh_keys(ssh_keys)
    if keys:
        lines.append("public-keys:")
        lines.extend("  - %s" % _yaml_string(k) for k in keys)
    return ("\n".join(lines) + "\n").encode("ascii")


def default_user_data(ssh_keys=()):
    """The user data used when the user gave none: #cloud-config with ssh_authorized_keys for the default user."""
    lines = ["#cloud-config"]
    keys = check_ssh_keys(ssh_keys)
    if keys:
        lines.append("ssh_authorized_keys:")
        lines.extend("  - %s" % _yaml_string(k) for k in keys)
    return ("\n".join(lines) + "\n").encode("ascii")


def seed_files(instance_id, hostname, user_data=None, ssh_keys=(), network_config=None):
    """{name on the volume: bytes} for a seed; all validation happens here."""
    keys = check_ssh_keys(ssh_keys)
    user = check_user_data(user_data)
    files = {
        "meta-data": meta_data(instance_id, hostname, keys),
        "user-data": user if user else default_user_data(keys),
    }
    net = check_network_config(network_config)
    if net is not None:
        files["network-config"] = net
    return files


# ---------------------------------------------------------------------------------------------------- the volume

def build_seed(path, instance_id, hostname, user_data=None, ssh_keys=(), network_config=None):
    """Write the NoCloud seed ISO for an instance at path (mode 0644, replaced atomically) and return path.

    user_data: raw bytes (see decode_user_data for base64) or None for the default #cloud-config.
    ssh_keys: OpenSSH public key lines. network_config: None, a dict or YAML text.
    """
    files = seed_files(instance_id, hostname, user_data, ssh_keys, network_config)
    image = _iso_image(files)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, ".%s.tmp" % os.path.basename(path))
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(image)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        code = errors.NO_SPACE if exc.errno == 28 else errors.INTERNAL
        raise CloudError("cannot write the cloud-init seed %s: %s" % (path, exc.strerror), code) from None
    return path


def _iso_image(files):
    try:
        import pycdlib
    except ImportError:
        raise CloudError("python3-pycdlib is not installed on this node; it is needed to build cloud-init seeds",
                         errors.INTERNAL) from None
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=1, vol_ident=VOLUME_LABEL, joliet=3, rock_ridge="1.09")
    for name in sorted(files):
        data = files[name]
        iso.add_fp(io.BytesIO(data), len(data), _FILES[name], rr_name=name, joliet_path="/" + name,
                   file_mode=0o100444)
    out = io.BytesIO()
    iso.write_fp(out)
    iso.close()
    return out.getvalue()


def read_seed(path):
    """{name: bytes} of the files on a seed volume as Linux sees them (Rock Ridge names), and its label."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    with open(path, "rb") as f:
        iso.open_fp(f)
        try:
            label = iso.pvd.volume_identifier.decode("ascii").rstrip()
            files = {}
            for child in iso.list_children(rr_path="/"):
                if child.is_dot() or child.is_dotdot():
                    continue
                name = child.rock_ridge.name().decode("utf-8")
                out = io.BytesIO()
                iso.get_file_from_iso_fp(out, rr_path="/" + name)
                files[name] = out.getvalue()
        finally:
            iso.close()
    return label, files


# ---------------------------------------------------------------------------------------------------- job inputs

_MAX_KEYS_FILE = MAX_KEYS * 16 * 1024


@dataclass
class SeedInputs:
    user_data: Optional[bytes] = None
    ssh_keys: List[str] = field(default_factory=list)
    name: str = ""


def _read_sandbox_file(scratch, name, limit):
    """Bytes of scratch/name (None when absent): a regular file, opened without following a link, at most limit."""
    path = os.path.join(scratch, name)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CloudError("the job's input file %s cannot be read (%s); it must be a regular file"
                         % (name, exc.strerror), errors.BAD_REQUEST) from None
    with os.fdopen(fd, "rb") as f:
        import stat

        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise CloudError("the job's input file %s must be a regular file" % name, errors.BAD_REQUEST)
        data = f.read(limit + 1)
    if len(data) > limit:
        raise CloudError("the job's input file %s is too large: at most %d bytes (%d KiB)"
                         % (name, limit, limit // 1024), errors.BAD_REQUEST)
    return data


def inputs_from_job(ad, scratch):
    """User data, SSH keys and instance name of a job: the files user-data (raw, as cloud-init reads it) and
    ssh-authorized-keys (one OpenSSH public key per line) in its sandbox, and its name (CloudName, which only the
    API may set, else the executable's base name; see hostname_for). Missing files are fine."""
    from condor_cloud.node import jobad

    user_data = _read_sandbox_file(scratch, USER_DATA_FILE, MAX_USER_DATA) if scratch else None
    keys = _read_sandbox_file(scratch, SSH_KEYS_FILE, _MAX_KEYS_FILE) if scratch else None
    if keys is not None:
        try:
            keys = keys.decode("utf-8")
        except UnicodeDecodeError:
            raise CloudError("the job's input file %s is not UTF-8 text" % SSH_KEYS_FILE, errors.BAD_REQUEST) from None
    name = jobad.get(ad, "CloudName", str, "") or os.path.basename(jobad.get(ad, "Cmd", str, "") or "")
    return SeedInputs(user_data=check_user_data(user_data or None), ssh_keys=parse_ssh_keys(keys), name=name)
