"""The API's TLS certificate: create a self-signed server certificate for this host, describe one, check a pair.

Why self-signed and not a local CA: there is one server and one key either way, and a self-signed certificate is
its own trust anchor, so clients use the certificate file itself (`curl --cacert api.crt`, requests' verify=,
REQUESTS_CA_BUNDLE) or pin it (its SHA-256 fingerprint, or the SHA-256 of its public key for curl's
--pinnedpubkey and Chromium's --ignore-certificate-errors-spki-list). An administrator's own certificate (from a
site CA) replaces it through CLOUD_API_TLS_CERT / CLOUD_API_TLS_KEY.

Files: the key is written 0640 root:<group> (the API's account reads it, nobody else), the certificate 0644,
each through a temporary file and a rename, so a reader never sees half a file. Needs python3-cryptography
(Fedora, EL9) for creating and describing; checking a pair needs only the standard library.
"""

import base64
import contextlib
import datetime
import grp
import hashlib
import ipaddress
import os
import re
import socket
import ssl
from dataclasses import dataclass
from typing import Tuple

from condor_cloud.core import errors
from condor_cloud.core.errors import CloudError, shown

DEFAULT_DAYS = 825          # the longest validity Apple's TLS clients accept for a server certificate
MAX_DAYS = 3650
API_GROUP = "condor-cloud-api"
CREATE_COMMAND = "condor-cloud api-cert create"
_DNS_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_DNS_RE = re.compile(r"%s(\.%s)*\.?" % (_DNS_LABEL, _DNS_LABEL))


@dataclass(frozen=True)
class CertInfo:
    path: str
    subject: str
    names: Tuple[str, ...]
    addresses: Tuple[str, ...]
    not_before: str
    not_after: str
    sha256: str         # colon-separated hex of the certificate's SHA-256, as `openssl x509 -fingerprint` shows it
    spki_sha256: str    # base64 SHA-256 of the public key (SubjectPublicKeyInfo): curl sha256//..., Chromium
    expired: bool

    def as_dict(self):
        return {"certificate": self.path, "subject": self.subject, "names": list(self.names),
                "addresses": list(self.addresses), "not_before": self.not_before, "not_after": self.not_after,
                "sha256_fingerprint": self.sha256, "public_key_pin": "sha256//" + self.spki_sha256,
                "expired": self.expired}


def fingerprint(der):
    """AB:CD:... of the SHA-256 of a DER certificate."""
    return ":".join("%02X" % b for b in hashlib.sha256(der).digest())


def check_name(name):
    name = str(name).strip()
    if len(name) > 253 or not _DNS_RE.fullmatch(name):
        raise CloudError("%s is not a host name (letters, digits, '-' and '.')" % shown(name), errors.BAD_REQUEST)
    return name.rstrip(".").lower()


def check_address(text):
    try:
        return ipaddress.ip_address(str(text).strip())
    except ValueError:
        raise CloudError("%s is not an IP address" % shown(text), errors.BAD_REQUEST) from None


def default_names():
    """This host's fully qualified name and name (the first one is the certificate's CN), then localhost."""
    found = []
    for name in (socket.getfqdn(), socket.gethostname()):
        with contextlib.suppress(CloudError):
            name = check_name(name)
            if name not in found and name.split(".")[0] != "localhost":
                found.append(name)
    return found + ["localhost"]


def default_addresses(names):
    """The loopback addresses and whatever the names resolve to (the host's own addresses, from /etc/hosts or DNS)."""
    found = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    for name in names:
        try:
            infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            continue
        for info in infos:
            with contextlib.suppress(ValueError):
                address = ipaddress.ip_address(info[4][0].split("%")[0])
                if address not in found:
                    found.append(address)
    return found


def _crypto():
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError:
        raise CloudError("python3-cryptography is not installed (dnf install python3-cryptography)",
                         errors.INTERNAL) from None
    return x509, hashes, serialization, ec, ExtendedKeyUsageOID, NameOID


def _utc(dt):
    return dt if dt.tzinfo else dt.replace(tzinfo=datetime.timezone.utc)


def describe(cert_path):
    """CertInfo of a PEM certificate file (the first certificate in it)."""
    x509, hashes, serialization, _ec, _eku, _name = _crypto()
    try:
        with open(cert_path, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
    except OSError as exc:
        raise CloudError("cannot read the API's TLS certificate %s (%s); create one with '%s'"
                         % (cert_path, exc.strerror or exc, CREATE_COMMAND), errors.INTERNAL) from None
    except ValueError as exc:
        raise CloudError("%s is not a PEM certificate (%s)" % (cert_path, exc), errors.INTERNAL) from None
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(san.get_values_for_type(x509.DNSName))
        addresses = tuple(str(a) for a in san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        names, addresses = (), ()
    # cryptography >= 42 has the *_utc properties; EL9's 36 only the naive UTC ones.
    not_before = _utc(getattr(cert, "not_valid_before_utc", None) or cert.not_valid_before)
    not_after = _utc(getattr(cert, "not_valid_after_utc", None) or cert.not_valid_after)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return CertInfo(
        path=cert_path, subject=cert.subject.rfc4514_string(), names=names, addresses=addresses,
        not_before=not_before.strftime("%Y-%m-%d %H:%M:%S UTC"), not_after=not_after.strftime("%Y-%m-%d %H:%M:%S UTC"),
        sha256=fingerprint(cert.public_bytes(serialization.Encoding.DER)),
        spki_sha256=base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii"),
        expired=not_after < datetime.datetime.now(datetime.timezone.utc))


def check_pair(cert_path, key_path):
    """Raise CloudError (naming the file and the command that creates one) unless the certificate and the key can
    be read and belong together, as the server (this process's account) will load them."""
    for what, path in (("certificate", cert_path), ("private key", key_path)):
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise CloudError("cannot read the API's TLS %s %s (%s); create a certificate with '%s' (as root), or "
                             "set CLOUD_API_TLS_CERT and CLOUD_API_TLS_KEY to your own (the key readable by the "
                             "API's account); plain HTTP only with CLOUD_API_PLAIN_HTTP = true"
                             % (what, path, exc.strerror or exc, CREATE_COMMAND), errors.INTERNAL) from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert_path, key_path)
    except (ssl.SSLError, OSError) as exc:
        raise CloudError("the API's TLS certificate %s and key %s do not make a usable pair (%s); replace them, e.g. "
                         "with '%s --force'" % (cert_path, key_path, exc, CREATE_COMMAND), errors.INTERNAL) from None


def _group_id(group):
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise CloudError("no group %s on this host (it comes with the condor-cloud package; or pass --group)"
                         % shown(group), errors.BAD_REQUEST) from None


def _write(path, data, mode, gid):
    """Write data to path through a temporary file in the same directory; return the temporary path."""
    tmp = "%s.%d.tmp" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        if gid is not None:
            os.fchown(fd, 0, gid)
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    return tmp


def create(cert_path, key_path, names, addresses, days=DEFAULT_DAYS, group=API_GROUP, force=False):
    """Create a new key (ECDSA P-256) and a self-signed server certificate for names and addresses (its
    subjectAltName; the first name is also its CN); return its CertInfo. The key file is 0640 root:group (group
    None: left to the caller's own group, for tests). Refuses to replace existing files unless force."""
    x509, hashes, serialization, ec, ExtendedKeyUsageOID, NameOID = _crypto()
    names = [check_name(n) for n in names]
    addresses = [check_address(a) for a in addresses]
    if not names and not addresses:
        raise CloudError("the certificate needs at least one host name or address", errors.BAD_REQUEST)
    if not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise CloudError("the validity must be 1 to %d days, not %s" % (MAX_DAYS, shown(days)), errors.BAD_REQUEST)
    existing = [p for p in (cert_path, key_path) if os.path.lexists(p)]
    if existing and not force:
        raise CloudError("%s exists already (use --force to replace it; clients that trust or pinned the old "
                         "certificate must then be given the new one)" % " and ".join(existing), errors.BAD_REQUEST)
    gid = _group_id(group) if group is not None else None

    key = ec.generate_private_key(ec.SECP256R1())
    cn = names[0] if names else str(addresses[0])
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Condor Cloud API"),
                         x509.NameAttribute(NameOID.COMMON_NAME, cn[:64])])
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    public = key.public_key()
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))      # tolerate clients whose clock is behind
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]
                                                       + [x509.IPAddress(a) for a in addresses]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)

    temps = []
    try:
        for path in (cert_path, key_path):
            os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o755, exist_ok=True)
        temps.append((_write(key_path, key_pem, 0o640, gid), key_path))
        temps.append((_write(cert_path, cert_pem, 0o644, None), cert_path))
        # The key first: a crash in between leaves a pair that check_pair reports, never a half-written file.
        for tmp, final in temps:
            os.rename(tmp, final)
        temps = []
    except PermissionError as exc:
        raise CloudError("cannot write the API's TLS certificate and key %s, %s (%s): run this as root"
                         % (cert_path, key_path, exc.strerror), errors.BAD_REQUEST) from None
    except OSError as exc:
        raise CloudError("cannot write the API's TLS certificate and key %s, %s (%s)"
                         % (cert_path, key_path, exc.strerror or exc), errors.INTERNAL) from None
    finally:
        for tmp, _final in temps:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    return describe(cert_path)
