"""The EC2 Query API as a WSGI application: one endpoint, /, GET or POST.

Every request: read the body (at most MAX_BODY), check its AWS Signature Version 4 against the access key file,
find the key's user in the user file (a removed user's keys stop working), decode the parameters, run the action,
answer XML. Every failure is an EC2 error document with the code clients act on; a request can make a 500 only
through a bug or a broken server configuration (both logged). A stopped schedd is Unavailable (503).
"""

import datetime
import logging
import re
import time
import uuid

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request, Response

from condor_cloud.core import errors as cloud_errors
from condor_cloud.core.errors import CloudError
from condor_cloud.master.jobs import BackendError, InstanceStateError, NoSuchInstance
from condor_cloud.master.ec2 import actions, query, sigv4
from condor_cloud.master.ec2.config import API_VERSION
from condor_cloud.master.ec2.query import Ec2Error

log = logging.getLogger("condor_cloud.master.ec2")

MAX_BODY = 1 << 20
_VERSION_RE = r"\d{4}-\d{2}-\d{2}"


def _headers_of(environ):
    """Lower-case header names -> values, as the client sent them (WSGI keeps Content-Type/-Length apart)."""
    headers = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers[key[5:].replace("_", "-").lower()] = value
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").lower()] = environ[key]
    return headers


class Ec2App:
    """settings: Ec2Settings; users: UserFile; keys: KeyStore; access_keys: AccessKeyStore; jobs: Ec2Jobs;
    clock: seconds since the epoch (tests set it); lock_dir: where ClientToken launches take their lock."""

    def __init__(self, settings, users, keys, access_keys, jobs, clock=time.time, lock_dir=None):
        self.settings = settings
        self.users = users
        self.keys = keys
        self.access_keys = access_keys
        self.jobs = jobs
        self.clock = clock
        self.lock_dir = lock_dir

    def __call__(self, environ, start_response):
        request_id = str(uuid.uuid4())
        try:
            status, body = 200, self.handle(Request(environ), request_id)
        except Ec2Error as exc:
            status, body = exc.status, query.error_document(exc.code, exc.message, request_id)
        except CloudError as exc:   # an unreadable user or access key file: the administrator's to fix
            log.error("server problem (request %s): %s", request_id, exc)
            status, body = 500, query.error_document("InternalError", "the server is misconfigured (the "
                                                     "administrator finds the details in the condor-cloud-ec2 log, "
                                                     "request %s)" % request_id, request_id)
        except Exception:   # a bug: logged with its request id, never shown
            log.exception("internal error (request %s)", request_id)
            status, body = 500, query.error_document("InternalError", "An internal error has occurred (request %s)"
                                                     % request_id, request_id)
        resp = Response(body, status=status, content_type="text/xml;charset=UTF-8")
        resp.headers["x-amzn-RequestId"] = request_id
        resp.headers["Cache-Control"] = "no-store"    # CreateKeyPair answers carry a private key
        resp.headers["X-Content-Type-Options"] = "nosniff"
        return resp(environ, start_response)

    def handle(self, request, request_id):
        if request.method not in ("GET", "POST"):
            raise Ec2Error("MethodNotAllowed", "use GET or POST", 405)
        if request.path not in ("/", ""):
            raise Ec2Error("InvalidAction", "the EC2 Query API is served at /, not %s" % query.shown(request.path))
        request.max_content_length = MAX_BODY
        try:
            body = request.get_data(cache=True)
        except RequestEntityTooLarge:
            raise Ec2Error("RequestEntityTooLarge", "the request body is larger than %d bytes" % MAX_BODY) from None
        environ = request.environ
        raw_query = environ.get("QUERY_STRING", "")
        user = self.authenticate(request, raw_query, body)
        form = b""
        if body:
            if request.mimetype not in ("application/x-www-form-urlencoded", ""):
                raise query.invalid("the body must be application/x-www-form-urlencoded")
            form = body
        try:
            form_text = form.decode("utf-8")
        except UnicodeDecodeError:
            raise query.invalid("parameters must be UTF-8") from None
        params = query.Params(query.decode(raw_query, form_text))
        action = params.str("Action", max_len=64)
        if not action:
            raise Ec2Error("MissingAction", "The request must contain the parameter Action")
        version = params.str("Version", max_len=32)
        if not version:
            raise query.missing("Version")
        if not re.fullmatch(_VERSION_RE, version):
            raise query.invalid("Version %s is not an API version (this server speaks %s)"
                                % (query.shown(version), API_VERSION))
        handler = actions.ACTIONS.get(action)
        if handler is None:
            if action in actions.UNSUPPORTED:
                raise Ec2Error("Unsupported", "%s is not supported by this cloud (see docs/EC2.txt)" % action)
            raise Ec2Error("InvalidAction", "The action %s is not valid for this web service" % query.shown(action))
        dry_run = params.bool("DryRun")
        call = actions.Call(self.settings, self.jobs, self.keys, user.name, params, dry_run=dry_run,
                            host=request.host, now=self.clock(), lock_dir=self.lock_dir)
        try:
            result = handler(call)
        except BackendError as exc:
            log.error("schedd problem in %s for %s (request %s): %s", action, user.name, request_id, exc)
            raise Ec2Error("Unavailable", "The service is unavailable: the HTCondor schedd cannot be reached or "
                           "refused the request; try again later") from None
        except NoSuchInstance as exc:
            raise Ec2Error("InvalidInstanceID.NotFound", str(exc)) from None
        except InstanceStateError as exc:
            raise Ec2Error("IncorrectInstanceState", str(exc)) from None
        except CloudError as exc:
            if exc.code == cloud_errors.NO_SPACE:
                log.error("%s for %s (request %s): %s", action, user.name, request_id, exc)
                raise Ec2Error("Unavailable", "%s; try again later" % exc) from None
            if exc.code == cloud_errors.INTERNAL:
                log.error("server problem in %s (request %s): %s", action, request_id, exc)
                raise Ec2Error("InternalError", "the server is misconfigured (the administrator finds the details "
                               "in the condor-cloud-ec2 log, request %s)" % request_id) from None
            raise query.invalid(str(exc)) from None
        log.info("%s %s by %s (request %s)", action, "dry run" if dry_run else "done", user.name, request_id)
        return query.response(action, request_id, result)

    def authenticate(self, request, raw_query, body):
        """The User the request's signature belongs to; Ec2Error AuthFailure/RequestExpired otherwise."""
        found = {}

        def lookup(key_id):
            key = self.access_keys.get(key_id)
            if key is None:
                return None
            found["key"] = key
            return key.secret

        now = datetime.datetime.fromtimestamp(self.clock(), datetime.timezone.utc)
        signed = sigv4.Request(request.method, request.environ.get("PATH_INFO", "/") or "/", raw_query,
                               _headers_of(request.environ), body)
        try:
            sigv4.verify(signed, lookup, now, self.settings.region)
        except sigv4.SignatureError as exc:
            log.warning("refused request from %s: %s (%s)", request.remote_addr, exc.code, exc.message)
            raise Ec2Error(exc.code, exc.message) from None
        user = self.users.get(found["key"].user)
        if user is None:
            log.warning("refused access key %s of %s from %s: no such user any more", found["key"].id,
                        found["key"].user, request.remote_addr)
            raise Ec2Error("AuthFailure", "AWS was not able to validate the provided access credentials: the key's "
                           "user does not exist")
        return user
