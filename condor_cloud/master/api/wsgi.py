"""WSGI entry point for any WSGI server: `condor_cloud.master.api.wsgi:application` (settings from the CLOUD_* knobs)."""

import logging

from condor_cloud.master.api import create_app

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
application = create_app()
