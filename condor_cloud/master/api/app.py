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
import hashlib
import logging
import time

import jinja2
from flask import Flask, g, request
from markupsafe import Markup
from werkzeug.exceptions import HTTPException

from condor_cloud.core.errors import CloudError
from condor_cloud.master.api import csrf, models, sanitize
from condor_cloud.master.config import API_VERSION
from condor_cloud.master.api.errors import ApiError, details_of, reason, status_of
from condor_cloud.master.api.http import authorization, context, csrf_field, error_response, session_user
from condor_cloud.master.api.negotiation import NotAcceptable, choose_format
from condor_cloud.master.api.sessions import Sessions
from condor_cloud.master.api.state import StateStore
from condor_cloud.master.api.throttle import LoginThrottle
from condor_cloud.master.jobs import CloudJobs
from condor_cloud.master.keys import KeyStore
from condor_cloud.master.users import UserFile

log = logging.getLogger("condor_cloud.master.api")

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


def default_jobs(settings):
    """The job layer on the schedd CLOUD_API_SCHEDD names (the local one when empty)."""
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
        from condor_cloud.master.config import load_api_settings

        settings = load_api_settings()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.jinja_env.undefined = jinja2.StrictUndefined
    app.jinja_env.filters["cdata"] = sanitize.cdata
    # Every {{ value }} of every XML and HTML template is cleaned of characters XML cannot carry (sanitize.py).
    app.jinja_env.finalize = sanitize.finalize
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    app.jinja_env.globals["csrf_field"] = csrf_field
    style, style_hash = _style(app)
    app.jinja_env.globals["style"] = style
    state = state or StateStore()
    app.extensions["condor_cloud"] = {
        "settings": settings,
        "users": users or UserFile(settings.users_file),
        "keys": keys or KeyStore(settings.keys_dir),
        "jobs": jobs or default_jobs(settings),
        "sessions": Sessions(state),
        "throttle": LoginThrottle(state),
        "csp": ("default-src 'none'; style-src %s; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
                % style_hash),
    }
    app.wsgi_app = MatrixParams(app.wsgi_app)
    _install(app)
    return app


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
            resp.headers["Content-Security-Policy"] = context()["csp"]
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "same-origin"
        resp.headers["Cross-Origin-Resource-Policy"] = "same-origin"
        resp.headers["Cross-Origin-Opener-Policy"] = "same-origin"
        resp.vary.add("Cookie")
        return resp

    @app.errorhandler(ApiError)
    def _api_error(exc):
        return error_response(exc.status, exc.message, exc.headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc):
        message = reason(exc.code or 500)
        if exc.code == 413:
            message = "the request body is larger than %d bytes" % MAX_BODY
        elif exc.code == 405:
            message = "method %s is not allowed on %s" % (request.method, request.path)
        return error_response(exc.code or 500, message, {})

    @app.errorhandler(CloudError)
    def _cloud_error(exc):
        status = status_of(exc)
        if status == 500:
            # A problem of the server (a damaged or unreadable user file, an unreadable store): the administrator
            # reads the details in the log; clients get no paths.
            log.error("server problem on %s %s: %s", request.method, request.path, exc)
            return error_response(500, "Internal Server Error: the server is misconfigured (the administrator "
                                       "finds the details in the condor-cloud-api log)", {})
        if status == 507:
            # The master's disk is full (keys, users, staging): nothing was changed; not the client's fault.
            log.error("disk full on %s %s: %s", request.method, request.path, exc)
            return error_response(507, "Insufficient Storage: the server's disk is full; nothing was changed. "
                                       "Try again later (the administrator finds the details in the log)", {})
        if status == 502:
            log.error("backend error: %s", exc)
        return error_response(status, str(exc), {}, details_of(exc))

    @app.errorhandler(Exception)
    def _bug(exc):
        log.exception("internal error on %s %s", request.method, request.path)
        return error_response(500, "Internal Server Error (a bug: see the condor-cloud-api log)", {})

    from condor_cloud.master.api import access_key_views, views

    views.register(app)
    access_key_views.register(app)


