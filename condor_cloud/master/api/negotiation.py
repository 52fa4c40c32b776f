"""Content negotiation as Deltacloud did it: ?format= wins, else the Accept header by q-value, no Accept -> XML."""

FORMATS = ("xml", "json", "html")
MEDIA = {
    "application/xml": "xml",
    "text/xml": "xml",
    "application/json": "json",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "*/*": "html",
    "application/*": "xml",
    "text/*": "html",
}


class NotAcceptable(Exception):
    pass


def _entries(accept):
    for index, item in enumerate(accept.split(",")):
        parts = [p.strip() for p in item.split(";")]
        media = parts[0].lower()
        if not media:
            continue
        q = 1.0
        for param in parts[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        # A concrete type beats a wildcard of the same q; earlier beats later.
        specificity = 0 if media == "*/*" else 1 if media.endswith("/*") else 2
        yield media, q, specificity, index


def choose_format(format_param, accept):
    """'xml', 'json' or 'html'; raise NotAcceptable when nothing the client accepts is served."""
    if format_param:
        fmt = format_param.strip().lower()
        if fmt in FORMATS:
            return fmt
        raise NotAcceptable("format %r is not one of xml, json, html" % format_param)
    if accept is None or not accept.strip():
        return "xml"
    best = None
    for media, q, specificity, index in _entries(accept):
        fmt = MEDIA.get(media)
        if fmt is None or q <= 0:
            continue
        key = (q, specificity, -index)
        if best is None or key > best[0]:
            best = (key, fmt)
    if best is None:
        raise NotAcceptable("none of the media types in Accept is served: use application/xml, application/json "
                            "or text/html")
    return best[1]
