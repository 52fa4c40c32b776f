"""The EC2 actions. Each takes a Call (the authenticated user, the parameters, the shared services) and returns the
members of its response. Every action validates all of its parameters, then calls call.commit() before it
changes anything: commit() refuses parameters nobody read (UnknownParameter) and ends a DryRun
(DryRunOperation). Users see and act on only their own instances and keys (as in the Deltacloud API, through
the job layer's ownership rule (condor_cloud/master/jobs.py)); values reach job attributes only through jobs.plain_literal.
"""

import base64
import binascii
import contextlib
import datetime
import fcntl
import json
import logging
import os
import re
import time
import uuid

from condor_cloud.master.api import models as api_models
from condor_cloud.core.errors import CloudError
from condor_cloud.master import console, quotas
from condor_cloud.master.jobs import (InstanceStateError, store_images, NoSuchInstance, check_instance_name,
                                      running_use, set_pending_reasons, user_data_for_job, plain_literal)
from condor_cloud.master.keys import NoSuchKey, check_keyname, parse_public_key
from condor_cloud.master.ec2 import model
from condor_cloud.master.ec2.model import (IMAGE_ID_RE, INSTANCE_FILTERS, InstanceView, check_instance_ids, ec2_id,
                                           image_ec2_id, key_pair_id, matches, not_found, parse_filters, subnet_id,
                                           vpc_id, zones)
from condor_cloud.master.ec2.query import Ec2Error, Items, invalid, shown

log = logging.getLogger("condor_cloud.master.ec2")

MAX_TAGS = 50
CONSOLE_BYTES = 64 * 1024
_TOKEN_RE = re.compile(r"[A-Za-z0-9@._+=:,/-]{1,64}")


def unsupported(message):
    return Ec2Error("Unsupported", message)


class Call:
    """One authenticated request: user (name), params (query.Params), dry_run, and the services."""

    def __init__(self, settings, jobs, keys, user, params, dry_run=False, host="", now=None, lock_dir=None):
        self.settings = settings
        self.jobs = jobs
        self.keys = keys
        self.user = user
        self.params = params
        self.dry_run = dry_run
        self.host = host
        self.now = now if now is not None else time.time()
        self.lock_dir = lock_dir

    @property
    def region(self):
        return self.settings.region

    def commit(self):
        """The point after which an action changes or returns something: refuse unread parameters, end a dry run."""
        unknown = self.params.unknown()
        if unknown:
            raise Ec2Error("UnknownParameter", "The parameter %s is not recognized" % shown(unknown[0]))
        if self.dry_run:
            raise Ec2Error("DryRunOperation", "Request would have succeeded, but DryRun flag is set.")

    # -- what the user may see ---------------------------------------------------------------------------------
    def instances(self, with_terminated=True):
        found = self.jobs.instances(self.user, self.settings.terminated_seconds if with_terminated else None,
                                    now=self.now)
        if any(i.info.job_status == 1 for i in found):     # pending: is the user's quota why? (StateReason)
            set_pending_reasons([i.info for i in found if not i.finished], self.settings.api.quotas_now())
        return [InstanceView(i, self.user, self.region) for i in found]

    def images(self):
        """{ami id: ImageInfo} of the store's images."""
        found = store_images(self.settings.api.image_store)
        return {image_ec2_id(info.name): info for info in found.values()}


# -- helpers -------------------------------------------------------------------------------------------------
def _iso(epoch):
    return datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _token_of(kind, key):
    raw = json.dumps([kind, key], separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def paginate(items, key_of, params, kind, low=5, high=1000, combined_with=None):
    """(page, next token or None) of items sorted by key_of (a JSON-able list), from MaxResults and NextToken."""
    max_results = params.int("MaxResults", None, low, high)
    token = params.str("NextToken", max_len=1024)
    if combined_with and max_results is not None:
        raise Ec2Error("InvalidParameterCombination", "The parameter %s cannot be used with the parameter MaxResults"
                       % combined_with)
    items = sorted(items, key=key_of)
    if token:
        try:
            got_kind, after = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            if got_kind != kind or not isinstance(after, list):
                raise ValueError
            items = [i for i in items if key_of(i) > after]
        except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
            raise invalid("Invalid NextToken %s" % shown(token)) from None
    if max_results is None or len(items) <= max_results:
        return items, None
    page = items[:max_results]
    return page, _token_of(kind, key_of(page[-1]))


def _check_tags(tags):
    if len(tags) > MAX_TAGS:
        raise Ec2Error("TagLimitExceeded", "a resource has at most %d tags" % MAX_TAGS)
    for key, value in tags.items():
        if not 1 <= len(key) <= 128 or len(value) > 256:
            raise invalid("Tag keys have 1 to 128 characters and values at most 256 (%s)" % shown(key))
        if key.lower().startswith("aws:"):
            raise invalid("Tag keys starting with 'aws:' are reserved (%s)" % shown(key))
        for text in (key, value):
            try:
                plain_literal(text)
            except ValueError:
                raise invalid("Tag %s: keys and values may contain only letters, digits, spaces and @._+=:,/-"
                              % shown(text)) from None
    return tags


def _tags_of(params, name="Tag", need_value=True):
    tags = {}
    for sub in params.structs(name):
        key = sub.str("Key", required=True, max_len=1024)
        value = sub.str("Value", default="" if need_value else None, max_len=1024)
        if key in tags:
            raise invalid("Tag key %s is given twice" % shown(key))
        tags[key] = value
    return tags


def _tag_specifications(params, allowed):
    """{resource type: tags} of TagSpecification.N; types outside allowed are refused."""
    found = {}
    for sub in params.structs("TagSpecification"):
        rtype = sub.str("ResourceType", required=True, max_len=64)
        if rtype not in allowed:
            raise invalid("'%s' is not a valid taggable resource type for this operation" % shown(rtype))
        tags = _tags_of(sub)
        found.setdefault(rtype, {}).update(tags)
    return found


def _view(call, instance_id, with_terminated=True):
    check_instance_ids([instance_id])
    for view in call.instances(with_terminated):
        if view.id == instance_id:
            return view
    raise not_found("instance", [instance_id])


def _select(call, ids, with_terminated=True):
    """The views of the ids (all of them exist, or InvalidInstanceID.NotFound), or every view for no ids."""
    views = call.instances(with_terminated)
    if not ids:
        return views
    by_id = {v.id: v for v in views}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise not_found("instance", missing)
    return [by_id[i] for i in dict.fromkeys(ids)]


def _status(state):
    return {16: ("ok", "passed"), 0: ("initializing", "initializing")}.get(state[0], ("not-applicable", None))


@contextlib.contextmanager
def _token_lock(call, token):
    """Serialize launches with a ClientToken (gunicorn's workers are processes): check-then-submit is atomic."""
    if not token or not call.lock_dir:
        yield
        return
    fd = os.open(os.path.join(call.lock_dir, "ec2-client-token.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# -- instances -----------------------------------------------------------------------------------------------
def run_instances(call):
    p, settings = call.params, call.settings
    image_param = p.str("ImageId", required=True, max_len=64)
    if not IMAGE_ID_RE.fullmatch(image_param):
        raise Ec2Error("InvalidAMIID.Malformed", "Invalid id: \"%s\" (expecting \"ami-...\")" % shown(image_param))
    image = call.images().get(image_param)
    if image is None:
        raise not_found("image", [image_param])
    itype = p.str("InstanceType", default=settings.api.profiles[0].id, max_len=64)
    profile = settings.api.profile(itype)
    if profile is None:
        raise invalid("Invalid value '%s' for InstanceType (DescribeInstanceTypes lists them: %s)"
                      % (shown(itype), ", ".join(x.id for x in settings.api.profiles)))
    min_count = p.int("MinCount", required=True, low=1, high=1000)
    max_count = p.int("MaxCount", required=True, low=1, high=1000)
    if max_count < min_count:
        raise invalid("MaxCount (%d) must not be less than MinCount (%d)" % (max_count, min_count))
    if min_count > settings.max_count:
        raise Ec2Error("InstanceLimitExceeded", "Your requested instance count (%d) is more than the %d one request "
                       "may launch" % (min_count, settings.max_count))
    count = min(max_count, settings.max_count)
    key = None
    key_name = p.str("KeyName", max_len=255)
    if key_name:
        try:
            key = call.keys.get(call.user, check_keyname(key_name))
        except (NoSuchKey, CloudError):
            raise not_found("key", [key_name]) from None
    user_data = p.str("UserData")
    user_data = user_data_for_job(user_data, settings.api.max_user_data) if user_data else ""
    client_token = p.str("ClientToken", max_len=64)
    if client_token is not None and not _TOKEN_RE.fullmatch(client_token):
        raise invalid("ClientToken must be 1 to 64 letters, digits or @._+=:,/-")
    specs = _tag_specifications(p, ("instance", "volume", "network-interface"))
    tags = _check_tags(specs.get("instance", {}))    # volume and interface tags: no such resources here
    zone = p.str("Placement.AvailabilityZone", default=zones()[0], max_len=64)
    if zone not in zones():
        raise invalid("Invalid availability zone: [%s]" % shown(zone))
    if p.str("Placement.Tenancy", default="default") != "default":
        raise unsupported("only default tenancy is supported")
    subnets = [p.str("SubnetId", max_len=64)]
    interfaces = p.structs("NetworkInterface")
    if len(interfaces) > 1:
        raise unsupported("an instance has one network interface here")
    for ni in interfaces:
        if ni.int("DeviceIndex", 0, 0, 1000) != 0 or ni.str("NetworkInterfaceId") or not ni.bool("DeleteOnTermination",
                                                                                              True):
            raise unsupported("only a new network interface at DeviceIndex 0, deleted on termination, is supported")
        ni.bool("AssociatePublicIpAddress")   # the node's network gives the address either way
        subnets.append(ni.str("SubnetId", max_len=64))
        if ni.list("SecurityGroupId"):
            raise unsupported("security groups are not supported")
    for sid in subnets:
        if sid is not None and sid != subnet_id(call.region, zone):
            raise Ec2Error("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist" % shown(sid))
    for name in ("SecurityGroupId", "SecurityGroup"):
        if p.list(name):
            raise unsupported("security groups are not supported")
    if p.bool("Monitoring.Enabled"):
        raise unsupported("detailed monitoring is not supported")
    if p.bool("DisableApiTermination"):
        raise unsupported("termination protection is not supported")
    if p.bool("EbsOptimized"):
        raise unsupported("EBS is not supported")
    if p.str("InstanceInitiatedShutdownBehavior", default="terminate") != "terminate":
        raise unsupported("an instance that shuts itself down is terminated here (InstanceInitiatedShutdownBehavior "
                          "terminate)")
    name = tags.get("Name")
    try:
        name = check_instance_name(name) if name else None
    except CloudError:
        name = None    # the Name tag keeps any text; the job's executable name needs the short alphabet
    call.commit()
    with _token_lock(call, client_token):
        if client_token:
            existing = call.jobs.instances(call.user, settings.terminated_seconds,
                                           extra="CloudClientToken == %s" % plain_literal(client_token),
                                           now=call.now)
            if existing:
                views = [InstanceView(i, call.user, call.region) for i in existing]
                return _reservation_body(call, model.reservation_id(existing[0]), views)
        count = _fit_quota(call, profile, min_count, count)
        reservation = ec2_id("r-", uuid.uuid4().hex)
        launched = []
        try:
            for _ in range(count):
                launched.append(call.jobs.launch(call.user, image.name, profile, name or reservation, user_data, key,
                                                 tags, client_token or "", reservation))
        except Exception:
            if len(launched) < min_count:
                for inst in launched:
                    with contextlib.suppress(Exception):
                        call.jobs.remove(inst.info, "RunInstances could not launch MinCount instances")
                raise
            log.warning("RunInstances for %s launched %d of %d instances", call.user, len(launched), count)
    return _reservation_body(call, reservation, [InstanceView(i, call.user, call.region) for i in launched])


def _fit_quota(call, profile, min_count, max_count):
    """How many instances of profile to launch: as many as the user's quota holds beside what they run, up to
    max_count (AWS launches fewer than MaxCount when a limit says so); InstanceLimitExceeded (400) when not even
    min_count fit. A courtesy check: HTCondor enforces the quota (one that slips past it in a race waits pending)."""
    quota = call.settings.api.quotas_now()(call.user)
    if quota == quotas.Quota():
        return max_count
    current = running_use([i.info for i in call.jobs.instances(call.user)], call.user)

    def refusal(n):
        return quotas.check_launch(quota, current, quotas.launch_request(profile.cpus, profile.memory, n))

    refused = refusal(min_count)
    if refused is not None:
        raise Ec2Error("InstanceLimitExceeded", str(refused))
    count = max_count
    while count > min_count and refusal(count) is not None:
        count -= 1
    return count


def _reservation_body(call, reservation, views):
    return {"reservationId": reservation, "ownerId": call.user, "groupSet": Items(),
            "instancesSet": Items(v.element() for v in views)}


def describe_instances(call):
    p = call.params
    ids = check_instance_ids(p.list("InstanceId", max_len=64))
    filters = parse_filters(p, INSTANCE_FILTERS)
    views = _select(call, ids)
    views = [v for v in views if matches(filters, v.filter_values)]
    page, token = paginate(views, lambda v: [v.inst.info.cluster, v.inst.info.proc], p, "instances",
                           combined_with="InstanceId" if ids else None)
    call.commit()
    return {"reservationSet": model.reservations(page), "nextToken": token}


def terminate_instances(call):
    ids = check_instance_ids(call.params.list("InstanceId", max_len=64))
    if not ids:
        raise Ec2Error("MissingParameter", "The request must contain the parameter InstanceId")
    views = _select(call, ids)
    for view in views:
        if not view.inst.launched_by_api and view.state not in (model.TERMINATED, model.SHUTTING_DOWN):
            raise Ec2Error("UnauthorizedOperation", "instance %s was not launched through the API: remove it with "
                           "condor_rm %d.%d" % (view.id, view.inst.info.cluster, view.inst.info.proc))
    call.commit()
    items = Items()
    for view in views:
        previous = current = view.state
        if previous in (model.PENDING, model.RUNNING, model.STOPPED):
            try:
                call.jobs.destroy(view.inst.info, "terminated through the EC2 API by %s" % call.user)
                current = model.SHUTTING_DOWN
            except InstanceStateError:
                current = model.SHUTTING_DOWN
            except NoSuchInstance:
                current = model.TERMINATED
        items.append([("instanceId", view.id), ("currentState", model.state_element(current)),
                      ("previousState", model.state_element(previous))])
    return {"instancesSet": items}


STATUS_FILTERS = {"instance-state-name", "instance-state-code", "availability-zone", "instance-status.status",
                  "system-status.status", "instance-id"}


def describe_instance_status(call):
    p = call.params
    ids = check_instance_ids(p.list("InstanceId", max_len=64))
    filters = parse_filters(p, STATUS_FILTERS)
    include_all = p.bool("IncludeAllInstances")
    views = _select(call, ids)
    if not include_all:
        views = [v for v in views if v.state == model.RUNNING]

    def values(view, name):
        status = _status(view.state)[0]
        return {"instance-status.status": [status], "system-status.status": [status]}.get(
            name, view.filter_values(name))

    views = [v for v in views if matches(filters, lambda name, v=v: values(v, name))]
    page, token = paginate(views, lambda v: [v.inst.info.cluster, v.inst.info.proc], p, "status",
                           combined_with="InstanceId" if ids else None)
    call.commit()
    items = Items()
    for view in page:
        status, detail = _status(view.state)
        summary = [("status", status),
                   ("details", Items([[("name", "reachability"), ("status", detail)]]) if detail else Items())]
        items.append([("instanceId", view.id), ("availabilityZone", view.zone),
                      ("instanceState", model.state_element(view.state)), ("systemStatus", summary),
                      ("instanceStatus", summary)])
    return {"instanceStatusSet": items, "nextToken": token}


_ATTRIBUTES = {
    "disableApiTermination": [("value", False)], "disableApiStop": [("value", False)],
    "instanceInitiatedShutdownBehavior": [("value", "terminate")], "rootDeviceName": [("value", model.ROOT_DEVICE)],
    "ebsOptimized": [("value", False)], "sourceDestCheck": [("value", True)], "enaSupport": [("value", False)],
    "groupSet": Items(), "blockDeviceMapping": Items(), "productCodes": Items(), "kernel": "", "ramdisk": "",
    "sriovNetSupport": "", "enclaveOptions": [("enabled", False)],
}


def describe_instance_attribute(call):
    p = call.params
    instance_id = p.str("InstanceId", required=True, max_len=64)
    attribute = p.str("Attribute", required=True, max_len=64)
    if attribute not in _ATTRIBUTES and attribute not in ("instanceType", "userData"):
        raise invalid("Value (%s) for parameter attribute is invalid. Unknown attribute." % shown(attribute))
    view = _view(call, instance_id)
    call.commit()
    if attribute == "instanceType":
        value = [("value", view.instance_type)]
    elif attribute == "userData":
        data = call.jobs.user_data(view.inst, call.settings.api.max_user_data)
        value = [("value", base64.b64encode(data).decode("ascii"))] if data else ""
    else:
        value = _ATTRIBUTES[attribute]
    return {"instanceId": view.id, attribute: value}


def get_console_output(call):
    p = call.params
    instance_id = p.str("InstanceId", required=True, max_len=64)
    p.bool("Latest")
    view = _view(call, instance_id)
    call.commit()
    text = ""
    if view.state == model.RUNNING:
        try:
            text = call.jobs.console(view.inst.info, CONSOLE_BYTES, timeout=console.REQUEST_TIMEOUT)
        except InstanceStateError:
            text = ""
        except CloudError as exc:  # no console yet, or the node busy (timeout): EC2 shows no output then
            log.warning("console of %s (job %d.%d) not readable: %s", view.id, view.inst.info.cluster,
                        view.inst.info.proc, exc)
    output = base64.b64encode(text.encode("utf-8", "replace")).decode("ascii") if text else None
    return {"instanceId": view.id, "timestamp": _iso(call.now), "output": output}


# -- images and instance types ---------------------------------------------------------------------------------
IMAGE_FILTERS = {"image-id", "name", "state", "architecture", "is-public", "image-type", "owner-id",
                 "root-device-type", "virtualization-type", "description"}


def describe_images(call):
    p = call.params
    ids = p.list("ImageId", max_len=64)
    owners = p.list("Owner", max_len=64)
    p.list("ExecutableBy", max_len=64)   # every user may launch every image
    p.bool("IncludeDeprecated")
    p.bool("IncludeDisabled")
    filters = parse_filters(p, IMAGE_FILTERS)
    bad = [i for i in ids if not IMAGE_ID_RE.fullmatch(i)]
    if bad:
        raise Ec2Error("InvalidAMIID.Malformed", "Invalid id: \"%s\" (expecting \"ami-...\")" % shown(bad[0]))
    store = call.settings.api.image_store
    images = call.images()
    missing = [i for i in ids if i not in images]
    if missing:
        raise not_found("image", missing)
    found = []
    for ami, info in images.items():
        owner = api_models._owner_of(store, info.name)
        values = {"image-id": [ami], "name": [info.name], "state": ["available"], "architecture": ["x86_64"],
                  "is-public": ["true"], "image-type": ["machine"], "owner-id": [owner],
                  "root-device-type": ["instance-store"], "virtualization-type": ["hvm"],
                  "description": [info.name]}
        if ids and ami not in ids:
            continue
        if owners and not any(o == owner or (o == "self" and owner == call.user) for o in owners):
            continue
        if matches(filters, lambda name, values=values: values.get(name, [])):
            found.append((ami, info, owner))
    page, token = paginate(found, lambda f: [f[1].name], p, "images")
    call.commit()
    items = Items()
    for ami, info, owner in page:
        items.append([("imageId", ami), ("imageLocation", info.name), ("imageState", "available"),
                      ("imageOwnerId", owner), ("creationDate", _iso(info.mtime)), ("isPublic", True),
                      ("architecture", "x86_64"), ("imageType", "machine"), ("name", info.name),
                      ("description", "%s, %s" % (info.name, api_models.human_size(info.size))),
                      ("rootDeviceType", "instance-store"), ("rootDeviceName", model.ROOT_DEVICE),
                      ("blockDeviceMapping", Items()), ("virtualizationType", "hvm"), ("hypervisor", "xen")])
    return {"imagesSet": items, "nextToken": token}


TYPE_FILTERS = {"instance-type", "current-generation", "vcpu-info.default-vcpus", "memory-info.size-in-mib",
                "processor-info.supported-architecture"}


def describe_instance_types(call):
    p = call.params
    wanted = p.list("InstanceType", max_len=64)
    filters = parse_filters(p, TYPE_FILTERS)
    profiles = {x.id: x for x in call.settings.api.profiles}
    unknown = [t for t in wanted if t not in profiles]
    if unknown:
        raise Ec2Error("InvalidInstanceType", "The following supplied instance types do not exist: [%s]"
                       % ", ".join(shown(t) for t in unknown))
    found = []
    for index, prof in enumerate(call.settings.api.profiles):
        values = {"instance-type": [prof.id], "current-generation": ["true"],
                  "vcpu-info.default-vcpus": [str(prof.cpus)], "memory-info.size-in-mib": [str(prof.memory)],
                  "processor-info.supported-architecture": ["x86_64"]}
        if (not wanted or prof.id in wanted) and matches(filters, lambda name, values=values: values.get(name, [])):
            found.append((index, prof))
    page, token = paginate(found, lambda f: [f[0]], p, "types", high=100)
    call.commit()
    items = Items()
    for _, prof in page:
        items.append([("instanceType", prof.id), ("currentGeneration", True), ("freeTierEligible", False),
                      ("supportedUsageClasses", Items(["on-demand"])),
                      ("supportedRootDeviceTypes", Items(["instance-store"])),
                      ("supportedVirtualizationTypes", Items(["hvm"])), ("bareMetal", False),
                      ("processorInfo", [("supportedArchitectures", Items(["x86_64"]))]),
                      ("vCpuInfo", [("defaultVCpus", prof.cpus), ("defaultCores", prof.cpus),
                                    ("defaultThreadsPerCore", 1)]),
                      ("memoryInfo", [("sizeInMiB", prof.memory)]),
                      ("instanceStorageSupported", prof.storage is not None),
                      ("instanceStorageInfo", [("totalSizeInGB", prof.storage)] if prof.storage is not None else None)])
    return {"instanceTypeSet": items, "nextToken": token}


# -- key pairs -----------------------------------------------------------------------------------------------
KEY_FILTERS = {"key-name", "key-pair-id", "fingerprint", "key-type"}


def _key_item(key, include_public=False):
    from condor_cloud.master.keypairs import ec2_fingerprint, key_type

    return [("keyPairId", key_pair_id(key.owner, key.name)), ("keyType", key_type(key.public_key)),
            ("tagSet", Items()), ("keyName", key.name), ("keyFingerprint", ec2_fingerprint(key.public_key)),
            ("publicKey", key.public_key if include_public else None)]


def describe_key_pairs(call):
    from condor_cloud.master.keypairs import ec2_fingerprint, key_type

    p = call.params
    names = p.list("KeyName", max_len=255)
    ids = p.list("KeyPairId", max_len=64)
    include_public = p.bool("IncludePublicKey")
    filters = parse_filters(p, KEY_FILTERS)
    keys = call.keys.list(call.user)
    by_name = {k.name: k for k in keys}
    by_id = {key_pair_id(k.owner, k.name): k for k in keys}
    missing = [n for n in names if n not in by_name] + [i for i in ids if i not in by_id]
    if missing:
        raise not_found("key", missing)
    chosen = keys
    if names or ids:
        chosen = [k for k in keys if k.name in names or key_pair_id(k.owner, k.name) in ids]
    chosen = [k for k in chosen if matches(filters, lambda name, k=k: {
        "key-name": [k.name], "key-pair-id": [key_pair_id(k.owner, k.name)],
        "fingerprint": [ec2_fingerprint(k.public_key)], "key-type": [key_type(k.public_key)]}.get(name, []))]
    call.commit()
    return {"keySet": Items(_key_item(k, include_public) for k in chosen)}


def _new_key_name(call):
    p = call.params
    name = p.str("KeyName", required=True, max_len=255)
    check_keyname(name)
    specs = _tag_specifications(p, ("key-pair",))
    if specs.get("key-pair"):
        raise unsupported("tags on key pairs are not supported")
    try:
        call.keys.get(call.user, name)
    except NoSuchKey:
        return name
    raise Ec2Error("InvalidKeyPair.Duplicate", "The keypair '%s' already exists." % name)


def import_key_pair(call):
    from condor_cloud.master.keypairs import ec2_fingerprint

    name = _new_key_name(call)
    material = call.params.str("PublicKeyMaterial", required=True)
    text = material
    if not material.lstrip().startswith(("ssh-", "ecdsa-", "sk-")):
        try:   # the protocol sends it base64-encoded (botocore does); a raw OpenSSH line is accepted too
            text = base64.b64decode("".join(material.split()), validate=True).decode("ascii")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise invalid("PublicKeyMaterial must be an OpenSSH public key line, base64-encoded") from None
    line = parse_public_key(text)
    call.commit()
    key = call.keys.add(call.user, name, line)
    return {"keyFingerprint": ec2_fingerprint(key.public_key), "keyName": key.name,
            "keyPairId": key_pair_id(key.owner, key.name)}


def create_key_pair(call):
    from condor_cloud.master.keypairs import KEY_TYPES, ec2_fingerprint, generate

    name = _new_key_name(call)
    kind = call.params.str("KeyType", default="rsa", max_len=16)
    if kind not in KEY_TYPES:
        raise invalid("KeyType must be rsa or ed25519, not %s" % shown(kind))
    if call.params.str("KeyFormat", default="pem", max_len=16) != "pem":
        raise unsupported("only KeyFormat pem is supported")
    call.commit()
    private, public = generate(kind)
    key = call.keys.add(call.user, name, public)
    # The private key exists only in this response: the cloud keeps the public key.
    return {"keyName": key.name, "keyFingerprint": ec2_fingerprint(key.public_key), "keyMaterial": private,
            "keyPairId": key_pair_id(key.owner, key.name)}


def delete_key_pair(call):
    p = call.params
    name = p.str("KeyName", max_len=255)
    pair_id = p.str("KeyPairId", max_len=64)
    if name is None and pair_id is None:
        raise Ec2Error("MissingParameter", "The request must contain the parameter KeyName or KeyPairId")
    keys = call.keys.list(call.user)
    target = [k for k in keys if (name is None or k.name == name) and
              (pair_id is None or key_pair_id(k.owner, k.name) == pair_id)]
    call.commit()
    for key in target:   # deleting a key that does not exist succeeds, as in EC2
        with contextlib.suppress(NoSuchKey):
            call.keys.remove(call.user, key.name)
    return {"return": True, "keyPairId": key_pair_id(call.user, target[0].name) if target else None}


# -- tags ------------------------------------------------------------------------------------------------------
def _tag_targets(call, resource_ids):
    if not resource_ids:
        raise Ec2Error("MissingParameter", "The request must contain the parameter ResourceId")
    for rid in resource_ids:
        if not rid.startswith("i-"):
            if re.fullmatch(r"(ami|key|vpc|subnet|r)-[0-9a-f]{8,17}", rid):
                raise unsupported("only instances can be tagged here, not %s" % shown(rid))
            raise Ec2Error("InvalidID", "The ID '%s' is not valid" % shown(rid))
    views = _select(call, check_instance_ids(resource_ids), with_terminated=False)
    for view in views:
        if not view.inst.launched_by_api:
            raise Ec2Error("UnauthorizedOperation", "instance %s was not launched through the API and cannot be "
                           "tagged" % view.id)
    return views


def create_tags(call):
    p = call.params
    ids = p.list("ResourceId", max_len=64)
    tags = _tags_of(p)
    if not tags:
        raise Ec2Error("MissingParameter", "The request must contain the parameter Tag")
    views = _tag_targets(call, ids)
    changed = []
    for view in views:
        merged = dict(view.inst.tags)
        merged.update(tags)
        changed.append((view, _check_tags(merged)))
    call.commit()
    for view, merged in changed:
        call.jobs.set_tags(view.inst, merged)
    return {"return": True}


def delete_tags(call):
    p = call.params
    ids = p.list("ResourceId", max_len=64)
    tags = _tags_of(p, need_value=False)
    views = _tag_targets(call, ids)
    call.commit()
    for view in views:
        kept = {k: v for k, v in view.inst.tags.items()
                if tags and not (k in tags and (tags[k] is None or tags[k] == v))}
        if kept != view.inst.tags:
            call.jobs.set_tags(view.inst, kept)
    return {"return": True}


TAG_FILTERS = {"resource-id", "resource-type", "key", "value", "tag-key", "tag-value", "tag:*"}


def describe_tags(call):
    p = call.params
    filters = parse_filters(p, TAG_FILTERS)
    rows = []
    for view in call.instances():
        for key, value in view.inst.tags.items():
            values = {"resource-id": [view.id], "resource-type": ["instance"], "key": [key], "value": [value],
                      "tag-key": [key], "tag-value": [value]}

            def lookup(name, values=values, view=view):
                if name.startswith("tag:"):
                    return [view.inst.tags[name[4:]]] if name[4:] in view.inst.tags else []
                return values.get(name, [])

            if matches(filters, lookup):
                rows.append((view.id, key, value))
    page, token = paginate(rows, lambda r: [r[0], r[1]], p, "tags")
    call.commit()
    return {"tagSet": Items([("resourceId", r[0]), ("resourceType", "instance"), ("key", r[1]), ("value", r[2])]
                            for r in page), "nextToken": token}


# -- regions, zones, VPCs, subnets -----------------------------------------------------------------------------
def describe_regions(call):
    p = call.params
    names = p.list("RegionName", max_len=64)
    p.bool("AllRegions")
    filters = parse_filters(p, {"region-name", "endpoint", "opt-in-status"})
    unknown = [n for n in names if n != call.region]
    if unknown:
        raise invalid("Invalid region: %s (this cloud's region is %s)" % (shown(unknown[0]), call.region))
    values = {"region-name": [call.region], "endpoint": [call.host], "opt-in-status": ["opt-in-not-required"]}
    show = matches(filters, lambda name: values.get(name, []))
    call.commit()
    items = Items()
    if show:
        items.append([("regionName", call.region), ("regionEndpoint", call.host),
                      ("optInStatus", "opt-in-not-required")])
    return {"regionInfo": items}


def describe_availability_zones(call):
    p = call.params
    names = p.list("ZoneName", max_len=64)
    zone_ids = p.list("ZoneId", max_len=64)
    p.bool("AllAvailabilityZones")
    filters = parse_filters(p, {"zone-name", "zone-id", "state", "region-name", "zone-type", "group-name",
                                "opt-in-status"})
    zone_id = {z: "%s-%s" % (call.region, z) for z in zones()}
    unknown = [n for n in names if n not in zone_id] + [i for i in zone_ids if i not in zone_id.values()]
    if unknown:
        raise invalid("Invalid availability zone: [%s]" % shown(unknown[0]))
    items = Items()
    for zone in zones():
        values = {"zone-name": [zone], "zone-id": [zone_id[zone]], "state": ["available"],
                  "region-name": [call.region], "zone-type": ["availability-zone"], "group-name": [call.region],
                  "opt-in-status": ["opt-in-not-required"]}
        if (names or zone_ids) and zone not in names and zone_id[zone] not in zone_ids:
            continue
        if matches(filters, lambda name, values=values: values.get(name, [])):
            items.append([("zoneName", zone), ("zoneState", "available"), ("regionName", call.region),
                          ("zoneId", zone_id[zone]), ("zoneType", "availability-zone"),
                          ("optInStatus", "opt-in-not-required"), ("groupName", call.region),
                          ("messageSet", Items())])
    call.commit()
    return {"availabilityZoneInfo": items}


CIDR = "0.0.0.0/0"   # instances get whatever address the node's network gives (CLOUD_NETWORK)


def describe_vpcs(call):
    p = call.params
    ids = p.list("VpcId", max_len=64)
    filters = parse_filters(p, {"vpc-id", "isDefault", "is-default", "state", "cidr", "cidr-block-association.cidr-"
                                "block", "owner-id", "dhcp-options-id"})
    vid = vpc_id(call.region)
    unknown = [i for i in ids if i != vid]
    if unknown:
        raise Ec2Error("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist" % shown(unknown[0]))
    values = {"vpc-id": [vid], "isDefault": ["true"], "is-default": ["true"], "state": ["available"],
              "cidr": [CIDR], "cidr-block-association.cidr-block": [CIDR], "owner-id": [call.user],
              "dhcp-options-id": ["default"]}
    rows = [vid] if matches(filters, lambda name: values.get(name, [])) else []
    page, token = paginate(rows, lambda r: [r], p, "vpcs")
    call.commit()
    return {"vpcSet": Items([("vpcId", r), ("ownerId", call.user), ("state", "available"), ("cidrBlock", CIDR),
                             ("dhcpOptionsId", "default"), ("instanceTenancy", "default"), ("isDefault", True)]
                            for r in page), "nextToken": token}


def describe_subnets(call):
    p = call.params
    ids = p.list("SubnetId", max_len=64)
    filters = parse_filters(p, {"subnet-id", "vpc-id", "availability-zone", "availabilityZone", "availability-zone-id",
                                "state", "default-for-az", "defaultForAz", "cidr-block", "cidrBlock", "cidr",
                                "owner-id", "map-public-ip-on-launch"})
    subnets = {subnet_id(call.region, z): z for z in zones()}
    unknown = [i for i in ids if i not in subnets]
    if unknown:
        raise Ec2Error("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist" % shown(unknown[0]))
    rows = []
    for sid, zone in subnets.items():
        values = {"subnet-id": [sid], "vpc-id": [vpc_id(call.region)], "availability-zone": [zone],
                  "availabilityZone": [zone], "availability-zone-id": ["%s-%s" % (call.region, zone)],
                  "state": ["available"], "default-for-az": ["true"], "defaultForAz": ["true"],
                  "cidr-block": [CIDR], "cidrBlock": [CIDR], "cidr": [CIDR], "owner-id": [call.user],
                  "map-public-ip-on-launch": ["false"]}
        if (not ids or sid in ids) and matches(filters, lambda name, values=values: values.get(name, [])):
            rows.append((sid, zone))
    page, token = paginate(rows, lambda r: [r[0]], p, "subnets")
    call.commit()
    return {"subnetSet": Items([("subnetId", sid), ("state", "available"), ("ownerId", call.user),
                                ("vpcId", vpc_id(call.region)), ("cidrBlock", CIDR),
                                ("ipv6CidrBlockAssociationSet", Items()), ("availableIpAddressCount", 0),
                                ("availabilityZone", zone), ("availabilityZoneId", "%s-%s" % (call.region, zone)),
                                ("defaultForAz", True), ("mapPublicIpOnLaunch", False),
                                ("assignIpv6AddressOnCreation", False)] for sid, zone in page),
            "nextToken": token}


ACTIONS = {
    "RunInstances": run_instances,
    "DescribeInstances": describe_instances,
    "TerminateInstances": terminate_instances,
    "DescribeInstanceStatus": describe_instance_status,
    "DescribeInstanceAttribute": describe_instance_attribute,
    "GetConsoleOutput": get_console_output,
    "DescribeImages": describe_images,
    "DescribeInstanceTypes": describe_instance_types,
    "ImportKeyPair": import_key_pair,
    "CreateKeyPair": create_key_pair,
    "DescribeKeyPairs": describe_key_pairs,
    "DeleteKeyPair": delete_key_pair,
    "CreateTags": create_tags,
    "DeleteTags": delete_tags,
    "DescribeTags": describe_tags,
    "DescribeRegions": describe_regions,
    "DescribeAvailabilityZones": describe_availability_zones,
    "DescribeVpcs": describe_vpcs,
    "DescribeSubnets": describe_subnets,
}
# What this cloud cannot do: a clear Unsupported rather than InvalidAction (the action exists in EC2).
UNSUPPORTED = ("StartInstances", "StopInstances", "RebootInstances", "ModifyInstanceAttribute", "CreateImage",
               "RegisterImage", "DeregisterImage", "CreateVolume", "AttachVolume", "CreateSnapshot",
               "CreateSecurityGroup", "AuthorizeSecurityGroupIngress", "DescribeSecurityGroups", "AllocateAddress",
               "AssociateAddress", "CreateVpc", "CreateSubnet", "DescribeVolumes", "DescribeSnapshots",
               "DescribeAddresses", "DescribeNetworkInterfaces")
