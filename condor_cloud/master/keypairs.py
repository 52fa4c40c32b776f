"""SSH key pairs made for a user (EC2 CreateKeyPair; a key created without a public key), and EC2's fingerprints.

generate() makes the pair in memory and returns the private key to the caller, the only copy: the cloud keeps just
the public key line (keys.KeyStore). Needs python3-cryptography (a dependency of the condor-cloud master package).

ec2_fingerprint() is deterministic (the same public key always gives the same text), as EC2's is for imported
keys: RSA: the MD5 of the DER public key (SubjectPublicKeyInfo), colon-separated hex, as
`ssh-keygen -ef key.pub -m PKCS8 | openssl pkey -pubin -outform DER | openssl md5 -c` prints; every other type:
the base64 SHA-256 of the OpenSSH key blob (what `ssh-keygen -lf` shows after "SHA256:", padded with '=').
"""

import base64
import hashlib

from condor_cloud.core import errors
from condor_cloud.core.errors import CloudError, shown

KEY_TYPES = ("rsa", "ed25519")
RSA_BITS = 2048


def _crypto():
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
    except ImportError:
        raise CloudError("python3-cryptography is not installed (dnf install python3-cryptography)",
                         errors.INTERNAL) from None
    return serialization, rsa, ed25519


def generate(key_type="rsa", comment=""):
    """(private key text, public key line) of a new key pair: RSA-2048 as a PEM 'RSA PRIVATE KEY' (what EC2 and
    older OpenSSH write), ed25519 in OpenSSH's own format. comment is appended to the public line."""
    serialization, rsa, ed25519 = _crypto()
    if key_type == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
        private_format = serialization.PrivateFormat.TraditionalOpenSSL
    elif key_type == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
        private_format = serialization.PrivateFormat.OpenSSH
    else:
        raise CloudError("key type %s is not one of %s" % (shown(key_type), ", ".join(KEY_TYPES)),
                         errors.BAD_REQUEST)
    private = key.private_bytes(serialization.Encoding.PEM, private_format, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    line = public.decode("ascii") + ((" " + comment) if comment else "")
    return private.decode("ascii"), line


def key_type(line):
    """'rsa' or 'ed25519' for those keys, else the OpenSSH type name."""
    kind = line.split()[0]
    return {"ssh-rsa": "rsa", "ssh-ed25519": "ed25519"}.get(kind, kind)


def ec2_fingerprint(line):
    """EC2's fingerprint of a (validated) public key line; see the module's docstring."""
    fields = line.split()
    blob = base64.b64decode(fields[1])
    if fields[0] == "ssh-rsa":
        serialization, _rsa, _ed = _crypto()
        public = serialization.load_ssh_public_key(("%s %s" % (fields[0], fields[1])).encode("ascii"))
        der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return ":".join("%02x" % b for b in hashlib.md5(der, usedforsecurity=False).digest())
    return base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii")
