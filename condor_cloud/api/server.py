"""condor-cloud-api: serve the API with gunicorn (python3-gunicorn in Fedora and EPEL 9).

arguments:        none (all settings are CLOUD_API_* HTCondor knobs; see condor_cloud/api/config.py)
standard input:   not read
standard output:  gunicorn's access log (the journal under systemd); errors go to standard error
user:             a dedicated non-root account (the schedd refuses jobs owned by root); the unit uses
                  condor-cloud-api, which must be able to read CLOUD_API_USERS and write CLOUD_API_KEYS_DIR
exit status:      0 on a clean stop; 1 on a configuration error; gunicorn's own codes otherwise
"""

import logging
import sys

from ..errors import CloudError


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from .config import load_api_settings

    try:
        settings = load_api_settings()
    except CloudError as exc:
        print("condor-cloud-api: %s" % exc, file=sys.stderr)
        return 1
    try:
        from gunicorn.app.base import BaseApplication
    except ImportError:
        print("condor-cloud-api: gunicorn is not installed (dnf install python3-gunicorn)", file=sys.stderr)
        return 1
    from . import create_app

    _let_the_app_name_the_server()
    app = create_app(settings)
    host, port = settings.listen
    bind = "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)

    class Server(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", [bind])
            self.cfg.set("workers", settings.workers)
            self.cfg.set("accesslog", "-")
            self.cfg.set("proc_name", "condor-cloud-api")
            # Launching waits for the schedd; give it time but never hang a worker forever.
            self.cfg.set("timeout", 120)

        def load(self):
            return app

    Server().run()
    return 0


def _let_the_app_name_the_server():
    """gunicorn writes its own `Server: gunicorn` before the app's headers; Deltacloud clients read
    `Server: Apache-Deltacloud/<version>`, so drop gunicorn's line when the application sets one."""
    from gunicorn.http import wsgi

    original = wsgi.Response.default_headers
    if getattr(original, "_condor_cloud", False):
        return

    def default_headers(self):
        headers = original(self)
        if any(name.lower() == "server" for name, _ in self.headers):
            headers = [h for h in headers if not h.lower().startswith("server:")]
        return headers

    default_headers._condor_cloud = True
    wsgi.Response.default_headers = default_headers


if __name__ == "__main__":
    sys.exit(main())
