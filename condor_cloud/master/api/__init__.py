"""condor-cloud-api: a Deltacloud-compatible REST API (XML, JSON) with browser pages (HTML) at the same URLs.

`create_app()` builds the Flask application; everything it talks to (settings, user file, key store, the schedd
side) can be injected, so unit tests run it with the Flask test client and a fake schedd. See
../shared/docs/deltacloud-api.md for the wire format and views.py for the endpoints.
"""

from condor_cloud.master.api.app import create_app

__all__ = ["create_app"]
