"""Cross-site rules: a page on another site can neither make the API act nor read or frame its pages.

The API has two kinds of clients:
- programs (curl -u, the PyPI deltacloud client, ...): HTTP Basic on every request, no cookies, and none of the
  browsers' fetch metadata (Origin, Sec-Fetch-*); they keep working unchanged;
- browsers: the login form (POST /api/login) sets a session cookie (sessions.py). HTML responses never carry a
  `WWW-Authenticate: Basic` challenge, nor does any response to a request with browser fetch metadata, so a browser
  is never asked for (and never caches) Basic credentials for the site.

The rule:
1. check_request(), before every request: a request whose fetch metadata shows that it was made for another site
   is refused (403) whatever it authenticates with: an Origin header that is `null` or not this server's own origin
   (scheme, host and port), or Sec-Fetch-Site `cross-site` or `same-site` (same-site includes other ports of the
   same host). One exception: a GET or HEAD that is a top-level navigation (Sec-Fetch-Mode: navigate and
   Sec-Fetch-Dest: document), i.e. following a link from elsewhere. It carries no session cookie (SameSite=Strict)
   and the page it gets cannot be framed (X-Frame-Options: DENY, CSP frame-ancestors 'none').
2. require_token(): a state-changing request (any method but GET, HEAD, OPTIONS) authenticated by the session cookie
   needs BOTH the session's CSRF token (form field csrf_token, or header X-CSRF-Token) AND a same-origin proof: an
   Origin header equal to this server's origin, or Sec-Fetch-Site: same-origin. Absent or `null`: refused (403).
3. The login form (POST /api/login) needs the same-origin proof of rule 2 (there is no session, so no token yet).
4. A request with an Authorization header is authenticated by that header alone (the session cookie is ignored)
   and needs no token: programs send no fetch metadata, and a browser that sends one is held to rule 1.
"""

from urllib.parse import urlsplit

from condor_cloud.master.api.errors import ApiError
from condor_cloud.master.api.sessions import CSRF_FIELD, Sessions

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin_tuple(scheme, netloc):
    try:
        parts = urlsplit("%s://%s" % (scheme, netloc))
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    scheme = scheme.lower()
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS.get(scheme)


def own_origin(request):
    return _origin_tuple(request.scheme, request.host or "")


def origin_is_ours(request, origin):
    if not origin or origin.strip().lower() == "null":
        return False
    try:
        parts = urlsplit(origin.strip())
    except ValueError:
        return False
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return False
    theirs = _origin_tuple(parts.scheme, parts.netloc)
    return theirs is not None and theirs == own_origin(request)


def check_request(request):
    """Rule 1: refuse a request that fetch metadata marks as coming from another site."""
    origin = request.headers.get("Origin")
    if origin is not None and not origin_is_ours(request, origin):
        raise ApiError(403, "cross-site request refused (Origin %s is not this server)" % origin[:100])
    site = request.headers.get("Sec-Fetch-Site", "").strip().lower()
    if site in ("cross-site", "same-site"):
        navigation = (request.headers.get("Sec-Fetch-Mode", "").lower() == "navigate"
                      and request.headers.get("Sec-Fetch-Dest", "").lower() == "document")
        if request.method not in ("GET", "HEAD") or not navigation:
            raise ApiError(403, "cross-site request refused (Sec-Fetch-Site: %s)" % site)


def has_same_origin_proof(request):
    """Rule 2's proof: Origin equal to ours, or (without Origin) Sec-Fetch-Site: same-origin."""
    origin = request.headers.get("Origin")
    if origin is not None:
        return origin_is_ours(request, origin)
    return request.headers.get("Sec-Fetch-Site", "").strip().lower() == "same-origin"


def require_same_origin(request):
    """Rule 3 (and half of rule 2)."""
    if not has_same_origin_proof(request):
        raise ApiError(403, "this form must be sent from this site's own pages (the request shows no same-origin "
                            "Origin or Sec-Fetch-Site header)")


def require_token(request, session):
    """Rule 2, for a state-changing request authenticated by the session cookie."""
    require_same_origin(request)
    given = request.form.get(CSRF_FIELD) or request.headers.get("X-CSRF-Token")
    if not Sessions.token_matches(session, given):
        raise ApiError(403, "the form's CSRF token is missing or stale: reload the page and try again")
