"""User data, as both roles see it: the rules it must meet (cloud-init's formats, a size limit) and the names of
the input files that carry a job's user data and SSH keys from the API to the node.

They are input files, not job attributes, because any user of the schedd can read any job's attributes
(condor_q -l), and user data often holds secrets; the sandbox on the node is readable only by the execute account.
"""

import base64
import binascii

from condor_cloud.core import errors
from condor_cloud.core.errors import CloudError, shown

USER_DATA_FILE = "user-data"
SSH_KEYS_FILE = "ssh-authorized-keys"

MAX_USER_DATA = 64 * 1024          # bytes after base64 decoding (OpenStack's limit is 65535, EC2's 16 KiB)
_WHITESPACE = str.maketrans("", "", " \t\r\n")
_GZIP_MAGIC = b"\x1f\x8b"


def decode_user_data(text, max_bytes=MAX_USER_DATA):
    """Decode user data given as base64 (the APIs' `user_data`, the CLI's file).

    Line breaks and spaces are ignored (so `base64` output with wrapped lines works); anything else that is not
    base64 is an error. Returns the bytes, or None when text is empty. The result is checked by check_user_data.
    """
    if text is None:
        return None
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            raise CloudError("user data must be base64-encoded (it contains non-ASCII bytes)",
                             errors.BAD_REQUEST) from None
    if not isinstance(text, str):
        raise CloudError("user data must be a base64 string", errors.BAD_REQUEST)
    # base64 of max_bytes, plus room for line breaks a user's `base64` tool may insert: refused before decoding.
    if len(text) > 4 * ((max_bytes + 2) // 3) * 2:
        raise CloudError("user data is larger than %d bytes (%d KiB) after base64 decoding"
                         % (max_bytes, max_bytes // 1024), errors.BAD_REQUEST)
    compact = text.translate(_WHITESPACE)
    if not compact:
        return None
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise CloudError("user data is not valid base64 (it starts %s); encode the file with `base64 -w0 FILE`"
                         % shown(compact, 20), errors.BAD_REQUEST) from None
    return check_user_data(data, max_bytes)


def check_user_data(data, max_bytes=MAX_USER_DATA):
    """Check raw user data: at most max_bytes, and either gzip or UTF-8 text without NUL bytes.

    cloud-init accepts #cloud-config, scripts (#!), #include, #cloud-boothook, MIME multipart and gzip of any of
    these; all are text or gzip, so anything else is junk that cloud-init would ignore or choke on.
    """
    if data is None:
        return None
    if not isinstance(data, bytes):
        raise CloudError("user data must be bytes", errors.BAD_REQUEST)
    if len(data) > max_bytes:
        raise CloudError("user data is larger than %d bytes (%d KiB): it has %d"
                         % (max_bytes, max_bytes // 1024, len(data)), errors.BAD_REQUEST)
    if data.startswith(_GZIP_MAGIC):
        return data
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CloudError("user data is neither UTF-8 text nor gzip (binary data at byte %d); cloud-init accepts "
                         "#cloud-config, scripts, MIME multipart or gzip of these" % exc.start,
                         errors.BAD_REQUEST) from None
    if "\x00" in text:
        raise CloudError("user data contains a NUL byte at offset %d; cloud-init needs text or gzip"
                         % text.index("\x00"), errors.BAD_REQUEST)
    return data
