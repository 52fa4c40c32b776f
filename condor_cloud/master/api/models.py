"""Plain dicts describing each resource, shared by the XML, JSON and HTML renderers."""

import datetime
import os
import pwd

from condor_cloud.master import quotas
from condor_cloud.master.jobs import PENDING, RUNNING, STOPPED

DRIVER = "condor"
DRIVER_NAME = "Condor"
PROVIDER = "default"
REALM = {"id": "default", "name": "Default Condor Realm", "state": "AVAILABLE"}

# The instance state machine served at /api/instance_states (lower-case state names, as Deltacloud did).
INSTANCE_STATES = [
    ("start", [("pending", "auto")]),
    ("pending", [("running", "auto"), ("finish", "destroy")]),
    ("running", [("stopped", "destroy"), ("stopped", "auto")]),
    ("stopped", [("finish", "auto")]),
    ("finish", []),
]


def iso_time(epoch):
    if epoch is None:
        return None
    return datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def human_size(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return ("%d %s" if unit == "B" else "%.1f %s") % (n, unit)
        n /= 1024.0
    return str(n)


def _owner_of(store, name):
    try:
        uid = os.stat(os.path.join(store, name)).st_uid
    except OSError:
        return ""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def image_model(base, store, iid, info, profiles):
    description = "%s, %s" % (info.name, human_size(info.size))
    if info.sha256:
        description += ", sha256 %s" % info.sha256
    return {
        "id": iid,
        "href": base + "/api/images/" + iid,
        "name": info.name,
        "description": description,
        "owner_id": _owner_of(store, info.name),
        "architecture": "x86_64",
        "state": "AVAILABLE",
        "root_type": "transient",
        "creation_time": iso_time(info.mtime),
        "size": info.size,
        "size_text": human_size(info.size),
        "sha256": info.sha256,
        "hardware_profiles": [{"id": p.id, "href": base + "/api/hardware_profiles/" + p.id} for p in profiles],
        "create_href": base + "/api/instances;image_id=" + iid,
    }


def profile_model(base, p):
    props = [("architecture", "label", p.architecture), ("memory", "MB", str(p.memory)), ("cpu", "count", str(p.cpus))]
    if p.storage is not None:
        props.append(("storage", "GB", str(p.storage)))
    return {
        "id": p.id,
        "href": base + "/api/hardware_profiles/" + p.id,
        "name": p.id,
        "properties": [{"name": n, "unit": u, "value": v, "kind": "fixed"} for n, u, v in props],
    }


def instance_actions(state):
    return ["destroy"] if state in (PENDING, RUNNING) else []


def instance_model(base, info):
    href = base + "/api/instances/" + info.id
    actions = [{"rel": a, "method": "delete" if a == "destroy" else "post",
                "href": href if a == "destroy" else href + "/" + a} for a in instance_actions(info.state)]
    properties = []
    if info.memory is not None:
        properties.append({"name": "memory", "unit": "MB", "value": str(info.memory)})
    if info.cpus is not None:
        properties.append({"name": "cpu", "unit": "count", "value": str(info.cpus)})
    profile = info.profile or "custom"
    return {
        "id": info.id,
        "href": href,
        "name": info.name,
        "owner_id": info.owner,
        "state": info.state,
        "image": {"id": info.image_id, "href": base + "/api/images/" + info.image_id, "name": info.image},
        "realm": {"id": REALM["id"], "href": base + "/api/realms/" + REALM["id"]},
        "hardware_profile": {"id": profile, "href": base + "/api/hardware_profiles/" + profile,
                             "properties": properties},
        "actions": actions,
        "launch_time": iso_time(info.launch_time),
        "public_addresses": [{"address": a, "type": "ipv6" if ":" in a else "ipv4"} for a in info.addresses],
        "private_addresses": [],
        "keyname": info.keyname,
        "job": "%d.%d" % (info.cluster, info.proc),
        "hold_reason": info.hold_reason,
        # why a PENDING instance waits: its owner's quota, or no node with room (jobs.set_pending_reasons)
        "state_reason": (info.pending_reason or info.no_room_reason) if info.state == PENDING else "",
        "stopped": info.state == STOPPED,
    }


def key_model(base, key):
    return {
        "id": key.name,
        "href": base + "/api/keys/" + key.name,
        "name": key.name,
        "owner_id": key.owner,
        "fingerprint": key.fingerprint,
        "public_key": key.public_key,
        "private_key": None,  # set only in the response that created the pair
        "state": "AVAILABLE",
    }


def usage_entry(name, quota, in_use, used):
    """One user's line of /api/usage: their quota (None: unlimited), what they run now, their usage in the period."""
    return {
        "user": name,
        "quota": quotas.quota_dict(quota),
        "quota_text": {f: quotas.format_quota_value(f, getattr(quota, f)) for f in quotas.FIELDS},
        "in_use": quotas.use_dict(in_use),
        "in_use_text": {f: quotas.format_quota_value(f, getattr(in_use, f)) for f in quotas.FIELDS},
        "usage": used.as_dict(),
    }
