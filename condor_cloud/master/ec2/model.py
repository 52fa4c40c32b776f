"""EC2's view of this cloud's resources: ids, states, filters, and the XML members of an instance.

Ids are EC2-shaped (clients and tools expect i-/ami-/key-/r-/vpc-/subnet- and hex) and deterministic: the prefix
and the first 17 hex digits of the SHA-256 of what they name (the Deltacloud id of an instance, the image's name,
owner/name of a key, the region and realm). They are never parsed back: a request's id is looked up among what
its user may see.

States: 0 pending (idle or held job), 16 running, 32 shutting-down (removed, still in the queue; or transferring
output), 48 terminated (completed, or out of the queue: the history), 80 stopped (suspended).
"""

import hashlib
import re

from condor_cloud.master.api.models import REALM, iso_time
from condor_cloud.master.ec2.query import Ec2Error, Items, invalid, shown

PENDING, RUNNING, SHUTTING_DOWN, TERMINATED, STOPPED = ((0, "pending"), (16, "running"), (32, "shutting-down"),
                                                        (48, "terminated"), (80, "stopped"))
_BY_STATUS = {1: PENDING, 2: RUNNING, 3: SHUTTING_DOWN, 4: TERMINATED, 5: PENDING, 6: SHUTTING_DOWN, 7: STOPPED}
INSTANCE_ID_RE = re.compile(r"i-[0-9a-f]{8,17}")
IMAGE_ID_RE = re.compile(r"ami-[0-9a-f]{8,17}")
ROOT_DEVICE = "/dev/vda"


def ec2_id(prefix, text):
    return prefix + hashlib.sha256(text.encode("utf-8")).hexdigest()[:17]


def instance_id(inst):
    return ec2_id("i-", inst.info.id)


def image_ec2_id(image_name):
    return ec2_id("ami-", "image/" + image_name)


def key_pair_id(owner, name):
    return ec2_id("key-", "%s/%s" % (owner, name))


def reservation_id(inst):
    return inst.reservation or ec2_id("r-", inst.info.id)


def vpc_id(region):
    return ec2_id("vpc-", "vpc/" + region)


def subnet_id(region, zone):
    return ec2_id("subnet-", "subnet/%s/%s" % (region, zone))


def zones():
    """The availability zones: the realms."""
    return [REALM["id"]]


def state(inst):
    if inst.finished:
        return TERMINATED
    return _BY_STATUS.get(inst.info.job_status, SHUTTING_DOWN)


def state_element(code_name):
    return [("code", code_name[0]), ("name", code_name[1])]


def state_reason(inst):
    """(code, message) explaining a pending or ended instance, or None."""
    code = state(inst)
    if code == PENDING and inst.info.hold_reason:
        return ("Server.HeldByHTCondor", "held: %s" % inst.info.hold_reason)
    if code == PENDING and inst.info.pending_reason:
        return ("Client.InstanceLimitExceeded", inst.info.pending_reason)
    if code == PENDING and inst.info.no_room_reason:
        return ("Server.InsufficientInstanceCapacity", inst.info.no_room_reason)
    if code in (SHUTTING_DOWN, TERMINATED):
        if inst.info.job_status == 4:
            return ("Client.InstanceInitiatedShutdown", "Client.InstanceInitiatedShutdown: Instance initiated "
                                                        "shutdown")
        return ("Client.UserInitiatedShutdown", "Client.UserInitiatedShutdown: User initiated shutdown")
    return None


# -- filters ---------------------------------------------------------------------------------------------------
def parse_filters(params, allowed):
    """[(name, [compiled patterns])] of Filter.N.Name/Value.M; names must be in allowed (or tag:KEY when allowed
    has 'tag:*'). Values may use EC2's wildcards * and ? (\\ escapes them)."""
    filters = []
    for sub in params.structs("Filter"):
        name = sub.str("Name", required=True, max_len=255)
        values = sub.list("Value", max_len=1024)
        if not (name in allowed or (name.startswith("tag:") and len(name) > 4 and "tag:*" in allowed)):
            raise invalid("The filter '%s' is invalid" % shown(name))
        if not values:
            raise invalid("The filter '%s' needs at least one Value" % shown(name))
        filters.append((name, [_pattern(v) for v in values]))
    return filters


def _pattern(value):
    out, i = [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            out.append(re.escape(value[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "*" else "." if ch == "?" else re.escape(ch))
        i += 1
    return re.compile("".join(out), re.S)


def matches(filters, values_of):
    """True when every filter matches one of the resource's values. values_of(name) -> list of str."""
    for name, patterns in filters:
        values = [str(v) for v in values_of(name)]
        if not any(p.fullmatch(v) for p in patterns for v in values):
            return False
    return True


# -- instances -------------------------------------------------------------------------------------------------
INSTANCE_FILTERS = {"instance-id", "instance-state-name", "instance-state-code", "image-id", "instance-type",
                    "key-name", "reservation-id", "availability-zone", "subnet-id", "vpc-id", "client-token",
                    "ip-address", "private-ip-address", "architecture", "owner-id", "tag-key", "tag-value", "tag:*"}


class InstanceView:
    """One instance as EC2 shows it to its owner."""

    def __init__(self, inst, owner, region):
        self.inst = inst
        self.owner = owner
        self.region = region
        self.id = instance_id(inst)
        self.state = state(inst)
        self.image_id = image_ec2_id(inst.info.image) if inst.info.image else ""
        self.zone = zones()[0]
        self.ipv4 = [a for a in inst.info.addresses if ":" not in a]

    @property
    def instance_type(self):
        return self.inst.info.profile or "custom"

    def filter_values(self, name):
        info, inst = self.inst.info, self.inst
        if name.startswith("tag:"):
            key = name[4:]
            return [inst.tags[key]] if key in inst.tags else []
        return {
            "instance-id": [self.id], "instance-state-name": [self.state[1]],
            "instance-state-code": [str(self.state[0])], "image-id": [self.image_id],
            "instance-type": [self.instance_type], "key-name": [info.keyname] if info.keyname else [],
            "reservation-id": [reservation_id(inst)], "availability-zone": [self.zone],
            "subnet-id": [subnet_id(self.region, self.zone)], "vpc-id": [vpc_id(self.region)],
            "client-token": [inst.client_token] if inst.client_token else [],
            "ip-address": self.ipv4[:1], "private-ip-address": self.ipv4[:1], "architecture": ["x86_64"],
            "owner-id": [self.owner], "tag-key": list(inst.tags), "tag-value": list(inst.tags.values()),
        }.get(name, [])

    def tag_set(self):
        return Items([("key", k), ("value", v)] for k, v in self.inst.tags.items())

    def element(self):
        info = self.inst.info
        reason = state_reason(self.inst)
        address = self.ipv4[0] if self.ipv4 else None
        members = [
            ("instanceId", self.id),
            ("imageId", self.image_id),
            ("instanceState", state_element(self.state)),
            ("privateDnsName", ""),
            ("dnsName", ""),
            ("reason", reason[1] if reason else ""),
            ("keyName", info.keyname or None),
            ("amiLaunchIndex", 0),
            ("productCodes", Items()),
            ("instanceType", self.instance_type),
            ("launchTime", iso_time(info.launch_time) or "1970-01-01T00:00:00Z"),
            ("placement", [("availabilityZone", self.zone), ("groupName", ""), ("tenancy", "default")]),
            ("monitoring", [("state", "disabled")]),
            ("subnetId", subnet_id(self.region, self.zone)),
            ("vpcId", vpc_id(self.region)),
            ("privateIpAddress", address),
            ("ipAddress", address),
            ("sourceDestCheck", True),
            ("groupSet", Items()),
            ("stateReason", [("code", reason[0]), ("message", reason[1])] if reason else None),
            ("architecture", "x86_64"),
            ("rootDeviceType", "instance-store"),
            ("rootDeviceName", ROOT_DEVICE),
            ("blockDeviceMapping", Items()),
            ("virtualizationType", "hvm"),
            ("clientToken", self.inst.client_token or None),
            ("tagSet", self.tag_set() if self.inst.tags else None),
            ("networkInterfaceSet", Items()),
            ("ebsOptimized", False),
            ("cpuOptions", [("coreCount", info.cpus or 1), ("threadsPerCore", 1)]),
        ]
        return members


def reservations(views):
    """Items of reservations, instances grouped by reservation in the order given."""
    groups = []
    for view in views:
        rid = reservation_id(view.inst)
        if groups and groups[-1][0] == rid:
            groups[-1][1].append(view)
        else:
            groups.append((rid, [view]))
    return Items([("reservationId", rid), ("ownerId", members[0].owner), ("groupSet", Items()),
                  ("instancesSet", Items(v.element() for v in members))] for rid, members in groups)


def not_found(kind, ids):
    codes = {"instance": ("InvalidInstanceID.NotFound", "The instance ID%s %s do%s not exist"),
             "image": ("InvalidAMIID.NotFound", "The image id%s %s do%s not exist"),
             "key": ("InvalidKeyPair.NotFound", "The key pair%s %s do%s not exist")}
    code, text = codes[kind]
    quoted = ", ".join("'%s'" % shown(i) for i in ids)
    plural = len(ids) > 1
    return Ec2Error(code, text % ("s" if plural else "", quoted, "" if plural else "es"))


def check_instance_ids(ids):
    bad = [i for i in ids if not INSTANCE_ID_RE.fullmatch(i)]
    if bad:
        raise Ec2Error("InvalidInstanceID.Malformed", "Invalid id: \"%s\" (expecting \"i-...\")" % shown(bad[0]))
    return ids
