"""condor-cloud-ec2: serve the EC2 Query API with gunicorn, over HTTPS like the Deltacloud API.
Its contract (arguments, input, output, user, exit status) is written in bin/condor-cloud-ec2, which runs it.

It is condor_cloud.master.api.server's machinery (serve, gunicorn_tls_options) with another application and listener:
the same certificate and key (CLOUD_API_TLS_CERT/KEY), TLS 1.2 or newer, and CLOUD_API_PLAIN_HTTP.
"""

import logging
import sys

from condor_cloud.master.api import server as api_server
from condor_cloud.core.errors import CloudError


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from condor_cloud.master.ec2.config import load_ec2_settings

    try:
        settings = load_ec2_settings()
        options = api_server.gunicorn_tls_options(settings.api)
    except CloudError as exc:
        print("condor-cloud-ec2: %s" % exc, file=sys.stderr)
        return 1
    if not api_server._have_gunicorn("condor-cloud-ec2"):
        return 1
    from condor_cloud.master.ec2 import create_app

    app = create_app(settings)
    api_server._announce(settings.api, listen=settings.listen, path="/")
    api_server.serve(app, settings.listen, settings.workers, options, "condor-cloud-ec2")
    return 0


if __name__ == "__main__":
    sys.exit(main())
