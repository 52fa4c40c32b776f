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
    """Deltacloud clients read `Server: Apache-Deltacloud/<version>`, but gunicorn treats Server as a hop-by-hop
    header: it drops the application's and writes its own from gunicorn.http.wsgi's SERVER (gunicorn >= 22) or
    SERVER_SOFTWARE (older, e.g. EPEL 9's 21.2). Name the server there."""
    from gunicorn.http import wsgi

    from .config import API_VERSION

    name = "Apache-Deltacloud/%s" % API_VERSION
    for attr in ("SERVER", "SERVER_SOFTWARE"):
        if hasattr(wsgi, attr):
            setattr(wsgi, attr, name)


if __name__ == "__main__":
    sys.exit(main())
