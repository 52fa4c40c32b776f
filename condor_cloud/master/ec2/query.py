"""The EC2 Query protocol: request parameters in, XML out, and the EC2 error shape.

Requests: form-encoded name=value pairs in the query string and/or an application/x-www-form-urlencoded body (both
are read; a name given twice is refused). Lists and structures are flattened with 1-based indexes, as botocore's
EC2 serializer writes them: InstanceId.1, Filter.1.Name, Filter.1.Value.2, TagSpecification.1.Tag.1.Key. Params
records which names an action read, so a parameter no action understands is refused (UnknownParameter) instead of
silently ignored.

Responses: <ActionResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"> with requestId first; lists are <item>
elements. Errors: <Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>.
"""

import re
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from condor_cloud.master.api.sanitize import clean_text
from condor_cloud.master.ec2.config import API_VERSION

NAMESPACE = "http://ec2.amazonaws.com/doc/%s/" % API_VERSION
MAX_PARAMS = 1000
MAX_NAME = 128
MAX_VALUE = 64 * 1024
MAX_INDEX = 1000
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
# Parameters of the protocol itself (and of a presigned signature), read before any action.
PROTOCOL_PARAMS = {"Action", "Version", "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders",
                   "X-Amz-Signature", "X-Amz-Expires", "X-Amz-Security-Token"}

# HTTP status of each error code (EC2's own; everything else a client did wrong is 400).
STATUS = {"AuthFailure": 401, "UnauthorizedOperation": 403, "DryRunOperation": 412, "Unavailable": 503,
          "InternalError": 500, "RequestEntityTooLarge": 413, "MethodNotAllowed": 405}


class Ec2Error(Exception):
    def __init__(self, code, message, status=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or STATUS.get(code, 400)


def invalid(message):
    return Ec2Error("InvalidParameterValue", message)


def missing(name):
    return Ec2Error("MissingParameter", "The request must contain the parameter %s" % name)


def shown(value, limit=64):
    """A client's value for a message: bounded, printable."""
    text = str(value)
    out = "".join(ch if ch.isprintable() else "?" for ch in text[:limit])
    return out + ("..." if len(text) > limit else "")


def decode(query, body):
    """{name: value} of the query string and a form body (both text); Ec2Error for anything malformed."""
    merged = {}
    for source in (query, body):
        if not source:
            continue
        try:
            pairs = parse_qsl(source, keep_blank_values=True, strict_parsing=False, encoding="utf-8",
                              errors="strict", max_num_fields=MAX_PARAMS)
        except UnicodeDecodeError:
            raise invalid("parameters must be UTF-8") from None
        except ValueError:
            raise invalid("too many parameters (at most %d)" % MAX_PARAMS) from None
        for name, value in pairs:
            if len(name) > MAX_NAME or not _NAME_RE.fullmatch(name):
                raise invalid("parameter name %s is not valid" % shown(name))
            if len(value) > MAX_VALUE:
                raise invalid("parameter %s is longer than %d characters" % (name, MAX_VALUE))
            if name in merged:
                raise Ec2Error("InvalidParameterCombination", "parameter %s is given more than once" % name)
            merged[name] = value
    if len(merged) > MAX_PARAMS:
        raise invalid("too many parameters (at most %d)" % MAX_PARAMS)
    return merged


class Params:
    """Typed access to the flat parameters; remembers which names were read (unknown() lists the rest)."""

    def __init__(self, flat, prefix=""):
        self.flat = flat
        self.prefix = prefix
        self.read = set() if not prefix else None

    def _mark(self, name):
        if self.read is not None:
            self.read.add(name)

    def has(self, name):
        return self.prefix + name in self.flat

    def str(self, name, required=False, default=None, max_len=None):
        full = self.prefix + name
        self._mark(full)
        if full not in self.flat:
            if required:
                raise missing(full)
            return default
        value = self.flat[full]
        if max_len is not None and len(value) > max_len:
            raise invalid("%s is longer than %d characters" % (full, max_len))
        return value

    def bool(self, name, default=False):
        value = self.str(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered not in ("true", "false"):
            raise invalid("%s%s must be true or false, not %s" % (self.prefix, name, shown(value)))
        return lowered == "true"

    def int(self, name, default=None, low=None, high=None, required=False):
        value = self.str(name, required=required)
        if value is None:
            return default
        if not re.fullmatch(r"-?[0-9]{1,9}", value):
            raise invalid("%s%s must be a whole number, not %s" % (self.prefix, name, shown(value)))
        number = int(value)
        if (low is not None and number < low) or (high is not None and number > high):
            raise invalid("%s%s must be from %s to %s, not %d" % (self.prefix, name, low, high, number))
        return number

    def _indexes(self, name):
        """The sorted indexes N of name.N[...] (1..MAX_INDEX)."""
        start = self.prefix + name + "."
        found = set()
        for key in self.flat:
            if key.startswith(start):
                index = key[len(start):].split(".", 1)[0]
                if not index.isdigit() or not 1 <= int(index) <= MAX_INDEX or index != str(int(index)):
                    raise invalid("%s: the index must be a number from 1 to %d" % (shown(key), MAX_INDEX))
                found.add(int(index))
        return sorted(found)

    def list(self, name, max_len=None):
        """The values of name.1, name.2, ... in index order."""
        values = []
        for index in self._indexes(name):
            key = "%s.%d" % (name, index)
            if not self.has(key):
                raise invalid("%s%s.%d is not a single value" % (self.prefix, name, index))
            values.append(self.str(key, max_len=max_len))
        return values

    def structs(self, name):
        """Sub-Params of name.1., name.2., ... in index order."""
        items = []
        for index in self._indexes(name):
            sub = Params(self.flat, "%s%s.%d." % (self.prefix, name, index))
            sub.read = self._root_read()
            items.append(sub)
        return items

    def _root_read(self):
        return self.read

    def unknown(self):
        """Names no action read, and none of the protocol's own."""
        return sorted(n for n in self.flat if n not in self.read and n not in PROTOCOL_PARAMS)


# -- XML ---------------------------------------------------------------------------------------------------------
def _text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape(clean_text(str(value)))


def element(name, value):
    """XML of one element. value: None (left out), a scalar, a dict or list of (name, value) pairs (children in
    order), or Items (a list of <item> children)."""
    if value is None:
        return ""
    if isinstance(value, Items):
        inner = "".join(element("item", v) for v in value)
    elif isinstance(value, dict):
        inner = "".join(element(k, v) for k, v in value.items())
    elif isinstance(value, list):
        inner = "".join(element(k, v) for k, v in value)
    else:
        inner = _text(value)
    return "<%s>%s</%s>" % (name, inner, name)


class Items(list):
    """A list rendered as <item> children (EC2's lists)."""


def response(action, request_id, body):
    """The document of a successful action: body is a dict of the response's members."""
    inner = element("requestId", request_id) + "".join(element(k, v) for k, v in body.items())
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<%sResponse xmlns="%s">%s</%sResponse>\n'
            % (action, NAMESPACE, inner, action)).encode("utf-8")


def error_document(code, message, request_id):
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>%s%s</Error></Errors>%s</Response>\n'
            % (element("Code", code), element("Message", message), element("RequestID", request_id))).encode("utf-8")
