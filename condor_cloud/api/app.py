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
"""

import hashlib
import json
import logging
import time
from urllib.parse import urlsplit

import jinja2
from flask import Flask, Response, g, redirect, render_template, request
from markupsafe import Markup
from werkzeug.exceptions import HTTPException

from ..errors import CloudError
from ..instances_api import BackendError, CloudJobs, InstanceStateError, NoSuchInstance
from ..keys import KeyStore
from ..users import UserFile
from . import models
from .config import API_VERSION
from .errors import ApiError, reason
from .negotiation import NotAcceptable, choose_format

log = logging.getLogger("condor_cloud.api")

CONTENT_TYPES = {"xml": "application/xml", "json": "application/json", "html": "text/html; charset=utf-8"}
MAX_BODY = 1 << 20


def _cdata(value):
    text = "" if value is None else str(value)
    return Markup("<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>")


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

    return CloudJobs(factory)


def create_app(settings=None, users=None, keys=None, jobs=None):
    if settings is None:
        from .config import load_api_settings

        settings = load_api_settings()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.jinja_env.undefined = jinja2.StrictUndefined
    app.jinja_env.filters["cdata"] = _cdata
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    app.extensions["condor_cloud"] = {
        "settings": settings,
        "users": users or UserFile(settings.users_file),
        "keys": keys or KeyStore(settings.keys_dir),
        "jobs": jobs or _default_jobs(settings),
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
    return merged


def current_user(required=True):
    """The authenticated User, or None; raises 401 when required and the credentials are missing or wrong."""
    if "user" in g:
        return g.user
    auth = request.authorization
    user = None
    if auth is not None and auth.type == "basic":
        user = _ctx()["users"].authenticate(auth.username or "", auth.password or "")
        if user is None:
            log.warning("failed login for %r from %s", (auth.username or "")[:40], request.remote_addr)
    g.user = user
    if user is None and required:
        raise ApiError(401, "Authentication required: log in with a Condor Cloud user name and password",
                       {"WWW-Authenticate": 'Basic realm="%s"' % _ctx()["settings"].realm})
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
        body = json.dumps(json_data, sort_keys=False)
    else:
        template, context = html
        body = render_template("html/" + template, base=g.base, user=g.get("user"), **context)
    data = body.encode("utf-8")
    resp = Response(data, status=status, content_type=CONTENT_TYPES[fmt])
    _etag_headers(resp, status, data)
    for name, value in (headers or {}).items():
        resp.headers[name] = value
    return resp


def no_content():
    return Response(b"", status=204)


def html_redirect(location):
    return redirect(location, code=303)


def _check_csrf():
    """Browsers send Basic credentials with any form post; refuse one that comes from another site."""
    if request.method not in ("POST", "PUT", "DELETE"):
        return
    if request.headers.get("Sec-Fetch-Site", "") == "cross-site":
        raise ApiError(403, "cross-site request refused")
    origin = request.headers.get("Origin")
    if origin and origin != "null":
        if urlsplit(origin).netloc.lower() != (request.host or "").lower():
            raise ApiError(403, "cross-site request refused (Origin %s)" % origin[:100])


def _install(app):
    @app.before_request
    def _before():
        g.start = time.monotonic()
        g.format = "xml"
        try:
            g.format = choose_format(request.args.get("format"), request.headers.get("Accept"))
        except NotAcceptable as exc:
            raise ApiError(406, str(exc))
        if not request.environ.get("HTTP_HOST"):
            g.base = ""
            raise ApiError(400, "the request has no Host header")
        g.base = request.host_url.rstrip("/")
        _check_csrf()

    @app.after_request
    def _after(resp):
        resp.headers["Server"] = "Apache-Deltacloud/%s" % API_VERSION
        resp.headers["X-Deltacloud-Driver"] = models.DRIVER
        resp.headers["Cache-Control"] = "max-age=0, private, must-revalidate"
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
        return _error_response(405, str(exc), {})

    @app.errorhandler(CloudError)
    def _cloud_error(exc):
        return _error_response(400, str(exc), {})

    @app.errorhandler(Exception)
    def _bug(exc):
        log.exception("internal error on %s %s", request.method, request.path)
        return _error_response(500, "Internal Server Error (a bug: see the condor-cloud-api log)", {})

    from . import views

    views.register(app)


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
    context = {"status": status, "url": request.path, "message": message, "driver": models.DRIVER,
               "provider": models.PROVIDER, "reason": reason(status)}
    resp = respond(status, xml=("error.xml", context),
                   json_data={"code": status, "message": message, "error": reason(status)},
                   html=("error.html", context), headers=headers)
    return resp

