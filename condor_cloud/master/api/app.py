"""The Flask application: routes, authentication, content negotiation, headers and error bodies.

Endpoints (every one also at ?format=xml|json|html, HTML for browsers by Accept):
  GET  /api                         entry point (no auth; ?force_auth=1 checks credentials)
  GET  /api/drivers[/condor]        (no auth)
  GET  /api/instance_states         (no auth)
  GET  /api/realms[/:id]
  GET  /api/hardware_profiles[/:id]
  GET  /api/images[/:id]
  GET  /api/instances[/:id]         users see their own instances, admins all
  POST /api/instances               image_id (required), hwp_id, realm_id, name, user_data (base64), keyname
  DELETE /api/instances/:id         -> 204 (also POST /api/instances/:id/destroy, or POST with _method=delete)
  POST /api/instances/:id/{start,stop,reboot} -> 412 (VM-universe jobs have no such action)
  GET  /api/keys[/:id], POST /api/keys (name, public_key), DELETE /api/keys/:id
  GET/POST /api/login, POST /api/logout   the browsers' login form and session (sessions.py)

Authentication: an Authorization: Basic header (programs), else the session cookie of the login form (browsers).
Password checks are throttled per client and per user name (throttle.py); cross-site requests are refused and
session requests that change state need a CSRF token (csrf.py). State errors (destroying a stopped instance, reading
the console of one that does not run) are 409 Conflict.
"""

import base64
import binascii
import hashlib
import json
import logging
import time

import jinja2
from flask import Flask, Response, g, redirect, render_template, request
from markupsafe import Markup
from werkzeug.exceptions import HTTPException

from condor_cloud.core import errors as cloud_errors
from condor_cloud.core.errors import CloudError
from condor_cloud.master.jobs import BackendError, CloudJobs, InstanceStateError, NoSuchInstance
from condor_cloud.master.keys import KeyStore
from condor_cloud.master.users import UserFile, is_valid_name
from condor_cloud.master.api import csrf, models, sanitize
from condor_cloud.master.api.config import API_VERSION
from condor_cloud.master.api.errors import ApiError, reason
from condor_cloud.master.api.negotiation import NotAcceptable, choose_format
from condor_cloud.master.api.sessions import CSRF_FIELD, SESSION_COOKIE, Sessions, fingerprint
from condor_cloud.master.api.state import StateStore
from condor_cloud.master.api.throttle import LoginThrottle, Throttled

log = logging.getLogger("condor_cloud.master.api")

CONTENT_TYPES = {"xml": "application/xml", "json": "application/json", "html": "text/html; charset=utf-8"}
MAX_BODY = 1 << 20
STYLE_FILE = "html/style.css"


def _style(app):
    """The pages' one inline style sheet and its CSP hash (the pages have no scripts and load nothing else)."""
    source, _, _ = app.jinja_loader.get_source(app.jinja_env, STYLE_FILE)
    text = source.strip()
    digest = base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")
    return Markup(text), "'sha256-%s'" % digest


class MatrixParams:
    """WSGI middleware: '/api/instances;image_id=X' -> path '/api/instances', params {'image_id': 'X'}."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if ";" in path:
            segments, params = [], {}
            for segment in path.split("/"):
                head, *matrix = segment.split(";")
                segments.append(head)
                for item in matrix:
                    name, _, value = item.partition("=")
                    if name:
                        params[name] = value
            environ["PATH_INFO"] = "/".join(segments)
            environ["condor_cloud.matrix"] = params
        return self.app(environ, start_response)


def _default_jobs(settings):
    def factory():
        import htcondor2

        if settings.schedd:
            ad = htcondor2.Collector().locate(htcondor2.DaemonType.Schedd, settings.schedd)
            return htcondor2.Schedd(ad)
        return htcondor2.Schedd()

    return CloudJobs(factory, api_account=settings.api_account)


def create_app(settings=None, users=None, keys=None, jobs=None, state=None):
    """The application. state: the StateStore of sessions and login counters (default: state.default_dir())."""
    if settings is None:
        from condor_cloud.master.api.config import load_api_settings

        settings = load_api_settings()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.jinja_env.undefined = jinja2.StrictUndefined
    app.jinja_env.filters["cdata"] = sanitize.cdata
    # Every {{ value }} of every XML and HTML template is cleaned of characters XML cannot carry (sanitize.py).
    app.jinja_env.finalize = sanitize.finalize
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    app.jinja_env.globals["csrf_field"] = _csrf_field
    style, style_hash = _style(app)
    app.jinja_env.globals["style"] = style
    state = state or StateStore()
    app.extensions["condor_cloud"] = {
        "settings": settings,
        "users": users or UserFile(settings.users_file),
        "keys": keys or KeyStore(settings.keys_dir),
        "jobs": jobs or _default_jobs(settings),
        "sessions": Sessions(state),
        "throttle": LoginThrottle(state),
        "csp": ("default-src 'none'; style-src %s; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
                % style_hash),
    }
    app.wsgi_app = MatrixParams(app.wsgi_app)
    _install(app)
    return app


# -- helpers used inside requests ---------------------------------------------------------------------------
def _ctx():
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


def _csrf_field():
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
        headers["WWW-Authenticate"] = 'Basic realm="%s"' % _ctx()["settings"].realm
    return ApiError(401, message, headers)


def _throttled(exc):
    return ApiError(429, "too many failed logins from your address: try again in %d seconds" % exc.retry_after,
                    {"Retry-After": str(exc.retry_after)})


def check_password(name, password, required=True):
    """The User of name/password, through the login throttle. Raises 429 when throttled (None instead when not
    required: public pages then render as for an anonymous visitor); None on wrong credentials."""
    ctx = _ctx()
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
    ctx = _ctx()
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


def _install(app):
    @app.before_request
    def _before():
        g.start = time.monotonic()
        g.format = "xml"
        try:
            g.format = choose_format(request.args.get("format"), request.headers.get("Accept"))
        except NotAcceptable as exc:
            # The console is text/plain, whatever the collections' formats are; its errors are XML.
            if request.endpoint != "instance_console":
                raise ApiError(406, str(exc))
        if not request.environ.get("HTTP_HOST"):
            g.base = ""
            raise ApiError(400, "the request has no Host header")
        g.base = request.host_url.rstrip("/")
        csrf.check_request(request)
        # A state-changing request that a session authenticates needs its CSRF token and a same-origin proof
        # (csrf.py rule 2). The login form has no session yet (rule 3, in its view).
        if (request.method not in csrf.SAFE_METHODS and not authorization()
                and request.endpoint != "login_post" and session_user() is not None):
            csrf.require_token(request, g.session)

    @app.after_request
    def _after(resp):
        resp.headers["Server"] = "Apache-Deltacloud/%s" % API_VERSION
        resp.headers["X-Deltacloud-Driver"] = models.DRIVER
        if "Cache-Control" not in resp.headers:
            resp.headers["Cache-Control"] = "max-age=0, private, must-revalidate"
        # No page may be framed (clickjacking of Destroy) or run anything; the console sets a stricter policy.
        resp.headers["X-Frame-Options"] = "DENY"
        if "Content-Security-Policy" not in resp.headers:
            resp.headers["Content-Security-Policy"] = _ctx()["csp"]
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "same-origin"
        resp.headers["Cross-Origin-Resource-Policy"] = "same-origin"
        resp.headers["Cross-Origin-Opener-Policy"] = "same-origin"
        resp.vary.add("Cookie")
        return resp

    @app.errorhandler(ApiError)
    def _api_error(exc):
        return _error_response(exc.status, exc.message, exc.headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc):
        message = reason(exc.code or 500)
        if exc.code == 413:
            message = "the request body is larger than %d bytes" % MAX_BODY
        elif exc.code == 405:
            message = "method %s is not allowed on %s" % (request.method, request.path)
        return _error_response(exc.code or 500, message, {})

    @app.errorhandler(BackendError)
    def _backend_error(exc):
        log.error("backend error: %s", exc)
        return _error_response(502, str(exc), {})

    @app.errorhandler(NoSuchInstance)
    def _no_instance(exc):
        return _error_response(404, str(exc), {})

    @app.errorhandler(InstanceStateError)
    def _bad_state(exc):
        return _error_response(409, str(exc), {})

    @app.errorhandler(CloudError)
    def _cloud_error(exc):
        if exc.code == cloud_errors.INTERNAL:
            # A problem of the server (a damaged or unreadable user file, an unreadable store): the administrator
            # reads the details in the log; clients get no paths.
            log.error("server problem on %s %s: %s", request.method, request.path, exc)
            return _error_response(500, "Internal Server Error: the server is misconfigured (the administrator "
                                        "finds the details in the condor-cloud-api log)", {})
        if exc.code == cloud_errors.NO_SPACE:
            # The master's disk is full (keys, users, staging): nothing was changed; not the client's fault.
            log.error("disk full on %s %s: %s", request.method, request.path, exc)
            return _error_response(507, "Insufficient Storage: the server's disk is full; nothing was changed. "
                                        "Try again later (the administrator finds the details in the log)", {})
        return _error_response(400, str(exc), {})

    @app.errorhandler(Exception)
    def _bug(exc):
        log.exception("internal error on %s %s", request.method, request.path)
        return _error_response(500, "Internal Server Error (a bug: see the condor-cloud-api log)", {})

    from condor_cloud.master.api import access_key_views, views

    views.register(app)
    access_key_views.register(app)


def _error_response(status, message, headers):
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
               "provider": models.PROVIDER, "reason": reason(status)}
    resp = respond(status, xml=("error.xml", context),
                   json_data={"code": status, "message": message, "error": reason(status)},
                   html=("error.html", context), headers=headers)
    return resp


def login_next():
    """Where the login form returns to: this page for a GET, else the start page."""
    if request.method == "GET" and request.path.startswith("/api"):
        return request.full_path.rstrip("?")
    return "/api"
