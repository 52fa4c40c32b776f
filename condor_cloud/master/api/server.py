"""condor-cloud-api: serve the API with gunicorn (python3-gunicorn in Fedora and EPEL 9).
Its contract (arguments, input, output, user, exit status) is written in bin/condor-cloud-api, which runs it.

HTTPS by default, with gunicorn's own TLS (its sync workers wrap each accepted connection): TLS 1.2 or newer, the
ciphers of Python's default server context (on EL9 the system-wide crypto policy). Plain HTTP only with
CLOUD_API_PLAIN_HTTP = true, for a TLS front end on this host (then listen on 127.0.0.1; a non-loopback address
is served but logged as a warning, because passwords would cross the network in clear).
"""

import logging
import ssl
import sys

from condor_cloud.core.errors import CloudError

log = logging.getLogger("condor_cloud.master.api.server")


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from condor_cloud.master.config import load_api_settings

    try:
        settings = load_api_settings()
        options = gunicorn_tls_options(settings)
    except CloudError as exc:
        print("condor-cloud-api: %s" % exc, file=sys.stderr)
        return 1
    if not _have_gunicorn("condor-cloud-api"):
        return 1
    from condor_cloud.master.api import create_app

    _let_the_app_name_the_server()
    app = create_app(settings)
    _announce(settings)
    serve(app, settings.listen, settings.workers, options, "condor-cloud-api")
    return 0


def _have_gunicorn(program):
    import importlib

    try:
        importlib.import_module("gunicorn.app.base")
    except ImportError:
        print("%s: gunicorn is not installed (dnf install python3-gunicorn)" % program, file=sys.stderr)
        return False
    return True


def serve(app, listen, workers, options, proc_name):
    """Run app under gunicorn on listen (host, port) with workers processes and the settings options (from
    gunicorn_tls_options: every listener of the master serves HTTPS the same way); returns when it stops."""
    from gunicorn.app.base import BaseApplication

    host, port = listen
    bind = "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)

    class Server(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", [bind])
            self.cfg.set("workers", workers)
            self.cfg.set("accesslog", "-")
            self.cfg.set("proc_name", proc_name)
            # Launching waits for the schedd; give it time but never hang a worker forever.
            self.cfg.set("timeout", 120)
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self):
            return app

    Server().run()


def modern_tls(config, default_ssl_context_factory):
    """gunicorn's ssl_context hook (gunicorn >= 21): its default context, never below TLS 1.2."""
    context = default_ssl_context_factory()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def gunicorn_tls_options(settings):
    """gunicorn settings for settings' scheme; raises CloudError when HTTPS is on and the certificate and key are
    not a readable pair (so the server refuses to start instead of failing every connection)."""
    if settings.plain_http:
        return {}
    from condor_cloud.master.tls import check_pair

    check_pair(settings.tls_cert, settings.tls_key)
    return {
        "certfile": settings.tls_cert,
        "keyfile": settings.tls_key,
        "ssl_context": modern_tls,
        # No proxy sits in front of gunicorn's own TLS: never let a (loopback) client's X-Forwarded-Proto turn
        # the request's scheme into http (the app marks its cookies Secure by the scheme).
        "forwarded_allow_ips": "",
    }


def _announce(settings, listen=None, path="/api"):
    """Log where the server listens and the certificate's fingerprints (listen: another listener of the master,
    e.g. the EC2 API's, that serves with these TLS settings)."""
    from condor_cloud.master.config import is_loopback

    host, port = listen or settings.listen
    url = "%s://%s:%d%s" % (settings.scheme, "[%s]" % host if ":" in host else host, port, path)
    if settings.plain_http:
        if is_loopback(host):
            log.info("serving plain HTTP on %s (CLOUD_API_PLAIN_HTTP = true; for a TLS front end)", url)
        else:
            log.warning("serving plain HTTP on %s (CLOUD_API_PLAIN_HTTP = true): passwords and user data cross the "
                        "network in clear; listen on 127.0.0.1 behind a TLS front end, or serve HTTPS", url)
        return
    from condor_cloud.master.tls import describe

    try:
        info = describe(settings.tls_cert)
    except CloudError as exc:  # python3-cryptography missing: the server itself does not need it
        log.info("serving HTTPS on %s with %s (%s)", url, settings.tls_cert, exc)
        return
    log.info("serving HTTPS on %s; certificate %s, SHA-256 fingerprint %s, public key pin sha256//%s, valid "
             "until %s", url, info.path, info.sha256, info.spki_sha256, info.not_after)
    if info.expired:
        log.warning("the API's TLS certificate %s expired on %s: clients will refuse it; replace it (e.g. '%s "
                    "--force')", info.path, info.not_after, "condor-cloud api-cert create")


def _let_the_app_name_the_server():
    """Deltacloud clients read `Server: Apache-Deltacloud/<version>`, but gunicorn treats Server as a hop-by-hop
    header: it drops the application's and writes its own from gunicorn.http.wsgi's SERVER (gunicorn >= 22) or
    SERVER_SOFTWARE (older, e.g. EPEL 9's 21.2). Name the server there."""
    from gunicorn.http import wsgi

    from condor_cloud.master.config import API_VERSION

    name = "Apache-Deltacloud/%s" % API_VERSION
    for attr in ("SERVER", "SERVER_SOFTWARE"):
        if hasattr(wsgi, attr):
            setattr(wsgi, attr, name)


if __name__ == "__main__":
    sys.exit(main())
