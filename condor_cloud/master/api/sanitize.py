"""Text that is safe in every output format, whatever a job ad holds.

Job attributes (CloudName, HoldReason, Owner, Cmd, ...) are written by people and daemons the API does not control.
XML 1.0 cannot carry most control characters at all (not even as character references, nor inside CDATA), a lone
surrogate cannot be encoded as UTF-8, and JSON parsers disagree about escaped lone surrogates. So every string that
reaches a response goes through clean_text() once, at the renderer (a Jinja finalize hook for XML and HTML, a walk
of the document for JSON): such characters become U+FFFD. Markup characters, quotes and "]]>" stay as they are; the
templates' autoescaping and the cdata filter deal with those.
"""

import re

from markupsafe import Markup

# Not allowed in XML 1.0 (C0 controls except tab, newline and return; lone surrogates; U+FFFE, U+FFFF), plus DEL and
# the C1 controls, which a terminal or a browser may act on.
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
REPLACEMENT = "\ufffd"


def clean_text(text):
    """text with every character that is unsafe in XML, HTML or JSON replaced by U+FFFD."""
    return _UNSAFE.sub(REPLACEMENT, text)


def finalize(value):
    """Jinja's finalize hook: applied to the value of every {{ expression }} before it is escaped."""
    if isinstance(value, Markup):
        return Markup(clean_text(str(value)))
    if isinstance(value, str):
        return clean_text(value)
    return value


def clean_json(value):
    """A copy of a JSON-able value with every string (keys too) cleaned."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_json(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_json(v) for v in value]
    return value


def cdata(value):
    """The cdata filter: a CDATA section that any text, "]]>" included, cannot end early."""
    text = "" if value is None else clean_text(str(value))
    return Markup("<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>")
