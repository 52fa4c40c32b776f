"""Settings of the EC2 Query API: the CLOUD_EC2_* knobs (defaults in condor_cloud/master/config.py DEFAULTS, the one
place; config.d/25condor_cloud_api.config shows them) plus the Deltacloud API's settings it shares (image store,
hardware profiles, user file, SSH key store, user data limit, schedd, API account, TLS certificate and key).

  CLOUD_EC2_LISTEN              address:port gunicorn binds (default 0.0.0.0:8773)
  CLOUD_EC2_WORKERS             gunicorn worker processes
  CLOUD_EC2_REGION              the region name clients sign for and DescribeRegions shows
  CLOUD_EC2_ACCESS_KEYS         the access key file (condor_cloud.master.access_keys)
  CLOUD_EC2_TERMINATED_SECONDS  how long terminated instances stay listed (from the schedd's history)
  CLOUD_EC2_MAX_COUNT           most instances one RunInstances launches
"""

import re
from dataclasses import dataclass
from typing import Tuple

from condor_cloud.core import errors
from condor_cloud.master import config as api_config
from condor_cloud.master.config import ApiSettings
from condor_cloud.core.errors import CloudError, shown

API_VERSION = "2016-11-15"
_REGION_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


@dataclass(frozen=True)
class Ec2Settings:
    api: ApiSettings
    listen: Tuple[str, int] = ("0.0.0.0", 8773)
    workers: int = 2
    region: str = "condor-cloud"
    access_keys: str = api_config.DEFAULTS["CLOUD_EC2_ACCESS_KEYS"]
    terminated_seconds: int = 3600
    max_count: int = 10


def check_region(name):
    if not isinstance(name, str) or not _REGION_RE.fullmatch(name):
        raise CloudError("CLOUD_EC2_REGION %s must be lower-case letters, digits and '-' (at most 63)" % shown(name),
                         errors.INTERNAL)
    return name


def load_ec2_settings(reload=False):
    """The EC2 settings from the knobs; CloudError naming the knob when one is wrong."""
    api = api_config.load_api_settings(reload=reload)
    return Ec2Settings(
        api=api,
        listen=api_config.parse_listen(api_config.knob("CLOUD_EC2_LISTEN"), "CLOUD_EC2_LISTEN"),
        workers=api_config.number_knob("CLOUD_EC2_WORKERS", 1),
        region=check_region(api_config.knob("CLOUD_EC2_REGION").strip()),
        access_keys=api_config.knob("CLOUD_EC2_ACCESS_KEYS").strip(),
        terminated_seconds=api_config.number_knob("CLOUD_EC2_TERMINATED_SECONDS", 3600),
        max_count=api_config.number_knob("CLOUD_EC2_MAX_COUNT", 1),
    )


def load_access_keys_path():
    """Just the access key file's path (the CLI and the browser page need nothing else)."""
    return api_config.knob("CLOUD_EC2_ACCESS_KEYS").strip()
