"""The API's request helpers, used by the views while a request is served: the application's context, the caller's
identity (HTTP Basic or the login session), request parameters, and responses in the negotiated format (XML, JSON,
HTML) with their headers and Deltacloud error bodies. The application itself is built in app.py."""

import base64
import binascii
import hashlib
import json
import logging

from flask import Response, g, redirect, render_template, request
from markupsafe import Markup

from condor_cloud.master.api import models, sanitize
from condor_cloud.master.api.errors import ApiError, reason
from condor_cloud.master.api.sessions import CSRF_FIELD, SESSION_COOKIE, fingerprint
from condor_cloud.master.api.throttle import Throttled
from condor_cloud.master.users import is_valid_name

log = logging.getLogger("condor_cloud.api")

CONTENT_TYPES = {"xml": "application/xml", "json": "application/json", "html": "text/html; charset=utf-8"}


# -- helpers used inside requests ---------------------------------------------------------------------------
def context():
    from flask import current_app

    return current_app.extensions["condor_cloud"]


def base_url():
    return g.base


def params():
    merged = {}
    merged.update(request.environ.get("condor_cloud.matrix", {}))
    merged.update(request.args.to_dict())
    if request.method in ("POST", "PUT", "DELETE"):
        merged.update(request.form.to_dict())
    merged.pop(CSRF_FIELD, None)
    return merged


def csrf_field():
    """The hidden CSRF field of a form on a page of a session (nothing for a page fetched with Basic auth)."""
    session = g.get("session")
    if session is None:
        return Markup("")
    return Markup('<input type="hidden" name="%s" value="%s">') % (CSRF_FIELD, session.csrf)


def is_browser():
    """Only browsers send fetch metadata."""
    return any(h in request.headers for h in ("Sec-Fetch-Mode", "Sec-Fetch-Site", "Sec-Fetch-Dest"))


def _basic_credentials(header):
    """(name, password) of an Authorization header; None when it is not Basic; ApiError 401 when malformed.
    Nothing of the header's value is ever logged: without the ':' there is no telling name from password."""
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = None
    if raw is None or b":" not in raw:
        log.warning("malformed Basic credentials from %s (%s; not logged)", request.remote_addr,
                    "not base64" if raw is None else "no ':' between user name and password")
        raise _unauthorized("malformed HTTP Basic credentials: send base64 of NAME:PASSWORD")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    name, _, password = text.partition(":")
    return name, password


def _unauthorized(message="Authentication required: log in with a Condor Cloud user name and password"):
    headers = {}
    # Never challenge a browser (it would cache Basic credentials and send them with cross-site forms) nor an
    # HTML page (the page is the login form).
    if g.get("format") != "html" and not is_browser():
        headers["WWW-Authenticate"] = 'Basic realm="%s"' % context()["settings"].realm
    return ApiError(401, message, headers)


def _throttled(exc):
    return ApiError(429, "too many failed logins from your address: try again in %d seconds" % exc.retry_after,
                    {"Retry-After": str(exc.retry_after)})


def check_password(name, password, required=True):
    """The User of name/password, through the login throttle. Raises 429 when throttled (None instead when not
    required: public pages then render as for an anonymous visitor); None on wrong credentials."""
    ctx = context()
    try:
        ctx["throttle"].check(request.remote_addr, name)
    except Throttled as exc:
        if not required:
            return None
        raise _throttled(exc) from None
    user = ctx["users"].authenticate(name, password)
    if user is None:
        plausible = is_valid_name(name)
        known = plausible and ctx["users"].get(name) is not None
        # Only a name that exists is logged: one that does not may be a password typed in the wrong field.
        log.warning("failed login for %s from %s", "user %s" % name if known else "an unknown user name",
                    request.remote_addr)
        ctx["throttle"].failed(request.remote_addr, name if plausible else "")
    return user


def session_user():
    """The User of a live session cookie (sets g.session), or None."""
    if "session_user" in g:
        return g.session_user
    ctx = context()
    token = request.cookies.get(SESSION_COOKIE)
    user = None
    session = ctx["sessions"].lookup(token) if token else None
    if session is not None:
        user = ctx["users"].get(session.user)
        if user is None or fingerprint(user) != session.fingerprint:
            ctx["sessions"].end_key(session.key)  # password changed or user removed: the session ends
            user, session = None, None
    g.session = session
    g.session_user = user
    return user


def authorization():
    """The Authorization header, '' when absent or blank (then the session cookie counts: one rule for both the
    CSRF check and authentication)."""
    return request.headers.get("Authorization", "").strip()


def current_user(required=True):
    """The authenticated User, or None; raises 401 when required and the credentials are missing or wrong.
    An Authorization header wins; without one, the session cookie counts."""
    if "user" in g:
        if g.user is None and required:
            raise _unauthorized()
        return g.user
    header = authorization()
    user = None
    if header:
        creds = _basic_credentials(header)
        if creds is not None:
            user = check_password(creds[0], creds[1], required)
        g.session = None  # the Authorization header alone counts: pages get no CSRF field, no logout button
    else:
        user = session_user()
    g.user = user
    if user is None and required:
        raise _unauthorized()
    return user


def _etag_headers(resp, status, body):
    if status in (200, 201) and body:
        resp.headers["ETag"] = hashlib.md5(body).hexdigest()


def respond(status=200, xml=None, json_data=None, html=None, headers=None):
    """Render for the negotiated format. xml/html: (template, context); json_data: a JSON-able value."""
    fmt = g.format
    if fmt == "xml":
        template, context = xml
        body = render_template("xml/" + template, base=g.base, **context).strip() + "\n"
    elif fmt == "json":
        body = json.dumps(sanitize.clean_json(json_data), sort_keys=False)
    else:
        template, context = html
        body = render_template("html/" + template, base=g.base, user=g.get("user"),
                               logged_in=g.get("session") is not None, **context)
    # Defense in depth: sanitize cleaned every value, so nothing is left for "replace" to do.
    data = body.encode("utf-8", "replace")
    resp = Response(data, status=status, content_type=CONTENT_TYPES[fmt])
    _etag_headers(resp, status, data)
    for name, value in (headers or {}).items():
        resp.headers[name] = value
    return resp


def no_content():
    return Response(b"", status=204)


def html_redirect(location):
    return redirect(location, code=303)


def error_response(status, message, headers, quota=None):
    """The Deltacloud error body; quota: errors.details_of a QuotaExceeded (XML <quota .../>, JSON "quota")."""
    fmt = g.get("format", "xml")
    if fmt not in CONTENT_TYPES:
        fmt = "xml"
    if status == 406:
        fmt = "xml"
    g.format = fmt
    base = g.get("base", "")
    if base == "" and request.environ.get("HTTP_HOST"):
        g.base = base = request.host_url.rstrip("/")
    g.base = base
    if status == 401 and fmt == "html":
        # A browser gets the login form, never a Basic challenge.
        headers = {k: v for k, v in headers.items() if k.lower() != "www-authenticate"}
        return respond(401, html=("login.html", {"message": message, "next": login_next()}), headers=headers)
    context = {"status": status, "url": request.path, "message": message, "driver": models.DRIVER,
               "provider": models.PROVIDER, "reason": reason(status), "quota": quota}
    json_data = {"code": status, "message": message, "error": reason(status)}
    if quota:
        json_data["quota"] = quota
    resp = respond(status, xml=("error.xml", context), json_data=json_data,
                   html=("error.html", context), headers=headers)
    return resp


def login_next():
    """Where the login form returns to: this page for a GET, else the start page."""
    if request.method == "GET" and request.path.startswith("/api"):
        return request.full_path.rstrip("?")
    return "/api"
