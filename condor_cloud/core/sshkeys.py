"""SSH public key lines: the one validator (check_ssh_key) the node's seed builder and the master's key store share,
the key store's stricter parse_public_key, and OpenSSH fingerprints.

Only public keys are handled (this cloud never holds a private key).
"""

import base64
import binascii
import hashlib
import re
import struct

from condor_cloud.core import errors
from condor_cloud.core.errors import CloudError, shown

KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
             "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com")
MAX_KEY_LINE = 16 * 1024           # an RSA-16384 public key line is about 2.8 KB
MAX_KEY_COMMENT = 256


# The smallest real key (ed25519) has 36 bytes after its type; fewer is a cut-off paste, not a key.
_MIN_KEY_DATA = 16
_COMMENT_RE = re.compile(r"[A-Za-z0-9@._+=:,/-]{0,200}")
_B64_RE = re.compile(r"[A-Za-z0-9+/]+={0,2}")


def check_ssh_key(line):
    """Validate one OpenSSH public key line `TYPE BASE64 [COMMENT]` and return it normalised (single spaces).

    Options (`command="..." ssh-rsa ...`) are refused: they are the one part of authorized_keys that changes
    what a key may do, and nobody needs them to log into their own instance.
    """
    if not isinstance(line, str):
        raise CloudError("an SSH key must be a string", errors.BAD_REQUEST)
    if len(line) > MAX_KEY_LINE:
        raise CloudError("SSH key is too long (%d characters, at most %d)" % (len(line), MAX_KEY_LINE),
                         errors.BAD_REQUEST)
    for ch in line:
        if not ch.isprintable() and ch != "\t":
            raise CloudError("SSH key %s contains a control character (U+%04X); give one key per line"
                             % (shown(line, 40), ord(ch)), errors.BAD_REQUEST)
    fields = line.split(None, 2)
    if len(fields) < 2:
        raise CloudError("SSH key %s must look like 'ssh-ed25519 AAAA... user@host'" % shown(line, 40),
                         errors.BAD_REQUEST)
    key_type, body = fields[0], fields[1]
    comment = " ".join(fields[2].split()) if len(fields) == 3 else ""
    if key_type not in KEY_TYPES:
        raise CloudError("SSH key type %s is not supported; use one of %s"
                         % (shown(key_type, 40), ", ".join(KEY_TYPES)), errors.BAD_REQUEST)
    if not _B64_RE.fullmatch(body):
        raise CloudError("SSH key %s: the key data is not base64" % shown(line, 40), errors.BAD_REQUEST)
    try:
        blob = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise CloudError("SSH key %s: the key data is not valid base64" % shown(line, 40),
                         errors.BAD_REQUEST) from None
    # The blob starts with the key type as an SSH string (uint32 length + bytes); it must match the first field.
    if len(blob) < 4:
        raise CloudError("SSH key %s: the key data is truncated" % shown(line, 40), errors.BAD_REQUEST)
    (n,) = struct.unpack(">I", blob[:4])
    if blob[4:4 + n] != key_type.encode("ascii"):
        raise CloudError("SSH key %s: the key data is not a %s key (its type does not match)"
                         % (shown(line, 40), key_type), errors.BAD_REQUEST)
    if len(blob) < 4 + n + _MIN_KEY_DATA:
        raise CloudError("SSH key %s: the key data is truncated" % shown(line, 40), errors.BAD_REQUEST)
    if len(comment) > MAX_KEY_COMMENT:
        raise CloudError("SSH key comment is too long (at most %d characters)" % MAX_KEY_COMMENT,
                         errors.BAD_REQUEST)
    return " ".join(f for f in (key_type, body, comment) if f)


def parse_public_key(text):
    """The normalised line of one public key for the key store, or CloudError (400).

    Stricter than check_ssh_key: a single key (blank space around it, as in a .pub file, is dropped) and a comment
    in _COMMENT_RE.
    """
    if isinstance(text, str):
        text = text.strip()
        if "\n" in text:
            raise CloudError("public_key must be one line 'TYPE BASE64 [COMMENT]' as in ~/.ssh/id_ed25519.pub",
                             errors.BAD_REQUEST)
    line = check_ssh_key(text)
    fields = line.split(" ", 2)
    comment = fields[2] if len(fields) == 3 else ""
    if not _COMMENT_RE.fullmatch(comment):
        raise CloudError("public key comment %s may only contain letters, digits and @._+=:,/-" % shown(comment),
                         errors.BAD_REQUEST)
    return line


def fingerprint(line):
    """OpenSSH's SHA256 fingerprint ('SHA256:...') of a public key line."""
    raw = base64.b64decode(line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(raw).digest()).decode("ascii").rstrip("=")
