"""Errors a person reads: every CloudError carries a message meant for the job's owner or the administrator."""

# HookStatusCode values (1-299 put the job on hold with the message; see docs/DESIGN.txt).
BAD_REQUEST = 10        # malformed job ad, bad vm_disk entry, hostile image name
IMAGE_NOT_FOUND = 11
IMAGE_INVALID = 12      # not a usable disk image (corrupt, wrong format, backing file)
CHECKSUM_MISMATCH = 13
NO_SPACE = 14           # cache or instance filesystem full
TIMEOUT = 15
INTERNAL = 16           # a bug or an unexpected environment problem


class CloudError(Exception):
    """An error with a message for people and a hook status code."""

    def __init__(self, message, code=INTERNAL):
        super().__init__(message)
        self.message = message
        self.code = code

    def __str__(self):
        return self.message


def shown(value, limit=80):
    """Quote an untrusted value for an error message: printable, bounded, unambiguous."""
    text = value if isinstance(value, str) else repr(value)
    out = []
    for ch in text[:limit]:
        if ch == "'" or ch == "\\":
            out.append("\\" + ch)
        elif ch.isprintable() and ord(ch) < 0x7f:
            out.append(ch)
        else:
            out.append("\\x%02x" % ord(ch) if ord(ch) < 0x100 else "\\u%04x" % ord(ch))
    suffix = "..." if len(text) > limit else ""
    return "'" + "".join(out) + suffix + "'"
