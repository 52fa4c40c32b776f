"""Per-user SSH public keys: KEYS_DIR/<user>/<keyname>.pub, one OpenSSH public key line each.

Only public keys are kept (this cloud never holds a private key). A key line is validated strictly: a known key
type, a base64 blob whose embedded type matches, and a comment in a small safe alphabet, so the text can be carried
in a job attribute (CloudSSHKey) without any quoting problem.
"""

import base64
import contextlib
import hashlib
import os
import re
import struct
from dataclasses import dataclass

from . import errors
from .errors import CloudError, shown
from .users import check_name

DEFAULT_DIR = "/var/lib/condor-cloud/keys"
KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
             "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com")
_KEYNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_COMMENT_RE = re.compile(r"[A-Za-z0-9@._+=:,/-]{0,200}")
_B64_RE = re.compile(r"[A-Za-z0-9+/]+={0,2}")
MAX_KEY_TEXT = 8192
MAX_KEYS = 100


class NoSuchKey(CloudError):
    """The user has no key of that name."""

    def __init__(self, name):
        super().__init__("no key %s" % shown(name), errors.BAD_REQUEST)


def check_keyname(name):
    if not isinstance(name, str) or not _KEYNAME_RE.fullmatch(name):
        raise CloudError("key name %s is not allowed: use 1-64 letters, digits, '.', '_' or '-', starting with a "
                         "letter or digit" % shown(name), errors.BAD_REQUEST)
    return name


def parse_public_key(text):
    """Return the normalized 'type blob [comment]' line of an OpenSSH public key, or raise CloudError (400)."""
    if not isinstance(text, str) or len(text) > MAX_KEY_TEXT:
        raise CloudError("public_key must be one OpenSSH public key line", errors.BAD_REQUEST)
    fields = text.strip().split()
    if len(fields) < 2 or len(fields) > 3 or "\n" in text.strip():
        raise CloudError("public_key must be one line 'TYPE BASE64 [COMMENT]' as in ~/.ssh/id_ed25519.pub",
                         errors.BAD_REQUEST)
    kind, blob = fields[0], fields[1]
    comment = fields[2] if len(fields) == 3 else ""
    if kind not in KEY_TYPES:
        raise CloudError("public key type %s is not supported (use one of %s)" % (shown(kind), ", ".join(KEY_TYPES)),
                         errors.BAD_REQUEST)
    try:
        if not _B64_RE.fullmatch(blob):
            raise ValueError
        raw = base64.b64decode(blob, validate=True)
        (length,) = struct.unpack(">I", raw[:4])
        embedded = raw[4:4 + length].decode("ascii")
    except (ValueError, struct.error, UnicodeError):
        raise CloudError("public key data is not valid base64 of an SSH key", errors.BAD_REQUEST) from None
    if embedded != kind or len(raw) < 4 + length + 16:
        raise CloudError("public key data does not match its type %s" % kind, errors.BAD_REQUEST)
    if not _COMMENT_RE.fullmatch(comment):
        raise CloudError("public key comment %s may only contain letters, digits and @._+=:,/-" % shown(comment),
                         errors.BAD_REQUEST)
    return " ".join(f for f in (kind, blob, comment) if f)


def fingerprint(line):
    """OpenSSH's SHA256 fingerprint ('SHA256:...') of a public key line."""
    raw = base64.b64decode(line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(raw).digest()).decode("ascii").rstrip("=")


@dataclass(frozen=True)
class Key:
    owner: str
    name: str
    public_key: str

    @property
    def fingerprint(self):
        return fingerprint(self.public_key)


class KeyStore:
    def __init__(self, root=DEFAULT_DIR):
        self.root = root

    def _dir(self, owner):
        return os.path.join(self.root, check_name(owner))

    def list(self, owner):
        directory = self._dir(owner)
        try:
            names = sorted(os.listdir(directory))
        except FileNotFoundError:
            return []
        found = []
        for filename in names:
            if not filename.endswith(".pub") or not _KEYNAME_RE.fullmatch(filename[:-4]):
                continue
            with contextlib.suppress(CloudError):
                found.append(self.get(owner, filename[:-4]))
        return found

    def owners(self):
        try:
            return sorted(n for n in os.listdir(self.root) if os.path.isdir(os.path.join(self.root, n)))
        except FileNotFoundError:
            return []

    def get(self, owner, name):
        path = os.path.join(self._dir(owner), check_keyname(name) + ".pub")
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            raise NoSuchKey(name) from None
        except OSError as exc:
            raise CloudError("key %s cannot be read: %s" % (shown(name), exc.strerror), errors.INTERNAL) from None
        with os.fdopen(fd, encoding="ascii", errors="replace") as f:
            text = f.read(MAX_KEY_TEXT + 1)
        return Key(owner, name, parse_public_key(text))

    def add(self, owner, name, public_key):
        line = parse_public_key(public_key)
        check_keyname(name)
        directory = self._dir(owner)
        os.makedirs(directory, mode=0o750, exist_ok=True)
        if len(self.list(owner)) >= MAX_KEYS:
            raise CloudError("you have %d keys already; delete one first" % MAX_KEYS, errors.BAD_REQUEST)
        tmp = os.path.join(directory, ".%s.tmp-%d" % (name, os.getpid()))
        with open(tmp, "w", encoding="ascii") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            # link() fails if the name exists: no silent replacement of a key somebody's instances use.
            os.link(tmp, os.path.join(directory, name + ".pub"))
        except FileExistsError:
            raise CloudError("key %s exists already" % name, errors.BAD_REQUEST) from None
        finally:
            os.unlink(tmp)
        return Key(owner, name, line)

    def remove(self, owner, name):
        path = os.path.join(self._dir(owner), check_keyname(name) + ".pub")
        try:
            os.unlink(path)
        except FileNotFoundError:
            raise NoSuchKey(name) from None
