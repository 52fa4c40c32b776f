"""Settings of the API and the CLI: HTCondor configuration knobs named CLOUD_API_*, read with htcondor2.param
(like condor_cloud.core.config; CONDOR_CONFIG or _CONDOR_<KNOB> in the environment redirect them).

Knobs (defaults in DEFAULTS, the one place they live; config.d/25condor_cloud_api.config shows the same values):
  CLOUD_API_LISTEN            address:port gunicorn binds (default 0.0.0.0:3002; the Deltacloud port)
  CLOUD_API_TLS_CERT          the server's certificate (PEM; `condor-cloud api-cert create` makes one)
  CLOUD_API_TLS_KEY           its private key (PEM, readable by the API's account only)
  CLOUD_API_PLAIN_HTTP        true: serve plain HTTP instead of HTTPS (for a TLS front end on this host); false
  CLOUD_API_WORKERS           gunicorn worker processes
  CLOUD_API_USERS             the user file (condor_cloud.master.users)
  CLOUD_API_KEYS_DIR          per-user SSH public keys (condor_cloud.master.keys)
  CLOUD_API_HARDWARE_PROFILES whitespace-separated NAME:MEMORY_MB:CPUS[:STORAGE_GB]; the first is the default
  CLOUD_API_MAX_USER_DATA     largest user_data, in bytes after base64 decoding
  CLOUD_API_REALM             the HTTP Basic realm shown by browsers
  CLOUD_API_SCHEDD            the schedd to submit to (empty: the local one)
  CLOUD_API_ACCOUNT           the account the API runs as: the Owner of the jobs it launches for its users (the
                              schedd lets only this account set Cloud* attributes; 20condor_cloud_master.config)
Quotas (config.d/22condor_cloud_quotas.config, condor_cloud/master/quotas.py): CLOUD_QUOTA_INSTANCES, CLOUD_QUOTA_CPUS,
CLOUD_QUOTA_MEMORY (the pool-wide defaults, read when the API starts) and CLOUD_QUOTA_FILE (the per-user
overrides, read on every launch and listing, so `condor-cloud user quota` applies at once).
The EC2 Query API (condor_cloud/ec2/config.py reads them; its defaults live here too, so the snippet shows them):
  CLOUD_EC2_LISTEN, CLOUD_EC2_WORKERS, CLOUD_EC2_REGION, CLOUD_EC2_ACCESS_KEYS, CLOUD_EC2_TERMINATED_SECONDS,
  CLOUD_EC2_MAX_COUNT (see docs/EC2.txt)
"""

import ipaddress
import re
from dataclasses import dataclass
from typing import Tuple

from condor_cloud.core import config as cloud_config
from condor_cloud.core import errors
from condor_cloud.core.errors import CloudError, shown
from condor_cloud.master import quotas
from condor_cloud.master.jobs import Profile

API_VERSION = "1.1.3"

DEFAULTS = {
    "CLOUD_API_LISTEN": "0.0.0.0:3002",
    "CLOUD_API_TLS_CERT": "/etc/condor-cloud/tls/api.crt",
    "CLOUD_API_TLS_KEY": "/etc/condor-cloud/tls/api.key",
    "CLOUD_API_PLAIN_HTTP": "false",
    "CLOUD_API_WORKERS": "2",
    "CLOUD_API_USERS": "/etc/condor-cloud/users",
    "CLOUD_API_KEYS_DIR": "/var/lib/condor-cloud/keys",
    "CLOUD_API_HARDWARE_PROFILES": "small:512:1 medium:1024:2 large:2048:4",
    "CLOUD_API_MAX_USER_DATA": "16384",
    "CLOUD_API_REALM": "Condor Cloud",
    "CLOUD_API_SCHEDD": "",
    "CLOUD_API_ACCOUNT": "condor-cloud-api",
    "CLOUD_EC2_LISTEN": "0.0.0.0:8773",
    "CLOUD_EC2_WORKERS": "2",
    "CLOUD_EC2_REGION": "condor-cloud",
    "CLOUD_EC2_ACCESS_KEYS": "/var/lib/condor-cloud/ec2/access-keys",
    "CLOUD_EC2_TERMINATED_SECONDS": "3600",
    "CLOUD_EC2_MAX_COUNT": "10",
}

_PROFILE_RE = re.compile(r"([a-z0-9][a-z0-9_.-]{0,31}):([0-9]{1,7}):([0-9]{1,3})(?::([0-9]{1,6}))?")


def parse_profiles(text):
    profiles = []
    for item in str(text).split():
        m = _PROFILE_RE.fullmatch(item)
        if not m or int(m.group(2)) < 1 or int(m.group(3)) < 1:
            raise CloudError("CLOUD_API_HARDWARE_PROFILES entry %s must be NAME:MEMORY_MB:CPUS[:STORAGE_GB], e.g. "
                             "small:512:1" % shown(item))
        if any(p.id == m.group(1) for p in profiles):
            raise CloudError("CLOUD_API_HARDWARE_PROFILES names profile %s twice" % m.group(1))
        profiles.append(Profile(m.group(1), int(m.group(2)), int(m.group(3)),
                                int(m.group(4)) if m.group(4) else None))
    if not profiles:
        raise CloudError("CLOUD_API_HARDWARE_PROFILES defines no profile")
    return tuple(profiles)


def parse_listen(text, name="CLOUD_API_LISTEN"):
    host, sep, port = str(text).strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise CloudError("%s must be ADDRESS:PORT, e.g. 0.0.0.0:3002, not %s" % (name, shown(text)))
    return host.strip("[]") or "0.0.0.0", int(port)


def is_loopback(host):
    """True for an address only this host can reach (127.0.0.0/8, ::1, localhost); False for wildcards and names."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ApiSettings:
    image_store: str
    listen: Tuple[str, int]
    workers: int
    users_file: str
    keys_dir: str
    profiles: Tuple[Profile, ...]
    max_user_data: int
    realm: str
    schedd: str
    qemu_img: str = "/usr/bin/qemu-img"
    image_cache: str = "/var/lib/condor-cloud/local_cache"
    instance_dir: str = "/var/lib/condor-cloud/instances"
    cache_max_size: int = 0
    tls_cert: str = DEFAULTS["CLOUD_API_TLS_CERT"]
    tls_key: str = DEFAULTS["CLOUD_API_TLS_KEY"]
    plain_http: bool = False
    api_account: str = DEFAULTS["CLOUD_API_ACCOUNT"]
    quota_defaults: quotas.Quota = quotas.Quota()   # pool-wide (CLOUD_QUOTA_*): unlimited unless set
    quota_file: str = ""                            # the per-user overrides (CLOUD_QUOTA_FILE); "" none

    def quotas_now(self):
        """A function user -> effective Quota, over the overrides file as it is now (read once per call of this:
        the file is small, and `condor-cloud user quota` changes it while the API runs)."""
        qf = quotas.load(self.quota_file) if self.quota_file else quotas.QuotaFile({}, {})
        return lambda user: quotas.quota_of(user, self.quota_defaults, qf)

    @property
    def scheme(self):
        return "http" if self.plain_http else "https"

    def profile(self, profile_id):
        for p in self.profiles:
            if p.id == profile_id:
                return p
        return None


def knob(name):
    """The value of an API or EC2 knob (DEFAULTS when unset)."""
    return cloud_config.knob(name, DEFAULTS)


def number_knob(name, low=0):
    """A whole-number API or EC2 knob, at least low."""
    return cloud_config.whole_number(name, knob(name), low)


def load_tls_paths():
    """(certificate, key) paths: what `condor-cloud api-cert` needs, without the rest of the settings."""
    return knob("CLOUD_API_TLS_CERT"), knob("CLOUD_API_TLS_KEY")


def load_listen():
    return parse_listen(knob("CLOUD_API_LISTEN"))


def load_api_settings(reload=False):
    base = cloud_config.load_settings(reload=reload)
    realm = knob("CLOUD_API_REALM")
    if not re.fullmatch(r"[A-Za-z0-9 ._-]{1,64}", realm):
        raise CloudError("CLOUD_API_REALM may only contain letters, digits, spaces and ._-", errors.INTERNAL)
    return ApiSettings(
        image_store=base.image_store,
        listen=load_listen(),
        workers=number_knob("CLOUD_API_WORKERS", 1),
        users_file=knob("CLOUD_API_USERS"),
        keys_dir=knob("CLOUD_API_KEYS_DIR"),
        profiles=parse_profiles(knob("CLOUD_API_HARDWARE_PROFILES")),
        max_user_data=number_knob("CLOUD_API_MAX_USER_DATA", 0),
        realm=realm,
        schedd=knob("CLOUD_API_SCHEDD").strip(),
        qemu_img=base.qemu_img,
        image_cache=base.image_cache,
        instance_dir=base.instance_dir,
        cache_max_size=base.cache_max_size,
        tls_cert=knob("CLOUD_API_TLS_CERT"),
        tls_key=knob("CLOUD_API_TLS_KEY"),
        plain_http=cloud_config.boolean("CLOUD_API_PLAIN_HTTP", knob("CLOUD_API_PLAIN_HTTP")),
        api_account=_account(knob("CLOUD_API_ACCOUNT")),
        quota_defaults=quota_defaults(),
        quota_file=quota_file(),
    )


def quota_defaults():
    """The pool-wide Quota (CLOUD_QUOTA_*; unset or empty: unlimited)."""
    import htcondor2

    return quotas.defaults_from_params(htcondor2.param)


def quota_file():
    """The per-user overrides file (CLOUD_QUOTA_FILE, default quotas.DEFAULT_FILE)."""
    import htcondor2

    return (htcondor2.param.get("CLOUD_QUOTA_FILE") or "").strip() or quotas.DEFAULT_FILE


def _account(name):
    if not re.fullmatch(r"[a-z_][a-z0-9_.-]{0,31}", name):
        raise CloudError("CLOUD_API_ACCOUNT %s is not an account name" % shown(name), errors.INTERNAL)
    return name
