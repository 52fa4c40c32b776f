"""The collections of the API (see app.py for the list of endpoints)."""

import base64
import re
import time

from flask import g, request

from condor_cloud.core import errors
from condor_cloud.core.errors import CloudError, shown
from condor_cloud.core.images import check_image_name
from condor_cloud.master import quotas, usage
from condor_cloud.master.jobs import (InstanceStateError, check_instance_name, running_use, set_pending_reasons,
                                      store_images, user_data_for_job)
from condor_cloud.master.keys import NoSuchKey, check_keyname
from condor_cloud.master.api import csrf, json_format, models
from condor_cloud.master.api.http import context, check_password, current_user, html_redirect, no_content, params, respond
from condor_cloud.master.config import API_VERSION
from condor_cloud.master.api.errors import ApiError
from condor_cloud.master.api.sessions import SESSION_COOKIE

LINKS = [
    ("drivers", []),
    ("hardware_profiles", []),
    ("images", []),
    ("instance_states", []),
    ("realms", []),
    ("keys", []),
    ("instances", [("user_data", "user_data"), ("authentication_key", "keyname")]),
    ("usage", []),
]
UNSUPPORTED_ACTIONS = ("start", "stop", "reboot")


def _settings():
    return context()["settings"]


def _collection(tag, macro, items, json_key, json_items, html_template, **html_context):
    return respond(xml=("collection.xml", {"tag": tag, "macro": macro, "items": items}),
                   json_data={json_key: json_items},
                   html=(html_template, dict(items=items, **html_context)))


def _member(macro, item, json_key, json_item, html_template, status=200, headers=None, **html_context):
    return respond(status, xml=("member.xml", {"macro": macro, "item": item}),
                   json_data={json_key: json_item} if json_key else json_item,
                   html=(html_template, dict(item=item, **html_context)), headers=headers)


def _filter(items, args, names):
    for name in names:
        value = args.get(name)
        if value:
            items = [i for i in items if str(i.get(name, "")) == value or
                     (name == "state" and str(i.get(name, "")).upper() == value.upper())]
    return items


# -- entry point, drivers, realms, states, profiles -------------------------------------------------------
def api_root():
    if request.args.get("force_auth"):
        current_user(required=True)
    else:
        current_user(required=False)
    context = {"driver": models.DRIVER, "provider": models.PROVIDER, "version": API_VERSION, "links": LINKS}
    return respond(xml=("api.xml", context), json_data=json_format.api(g.base, API_VERSION, LINKS),
                   html=("api.html", context))


def drivers_index():
    current_user(required=False)
    context = {"driver": models.DRIVER, "driver_name": models.DRIVER_NAME}
    return respond(xml=("drivers.xml", context), json_data=json_format.drivers(g.base), html=("drivers.html", context))


def driver_show(driver_id):
    current_user(required=False)
    if driver_id != models.DRIVER:
        raise ApiError(404, "no driver %s" % shown(driver_id))
    context = {"driver": models.DRIVER, "driver_name": models.DRIVER_NAME}
    return respond(xml=("driver.xml", context), json_data=json_format.driver(g.base), html=("drivers.html", context))


def _realms():
    return [json_format.realm(g.base)]


def realms_index():
    current_user()
    items = _filter(_realms(), request.args, ["id", "state"])
    return _collection("realms", "realm", items, "realms", items, "realms.html")


def realm_show(realm_id):
    current_user()
    for r in _realms():
        if r["id"] == realm_id:
            return _member("realm", r, "realm", r, "realms.html", items=[r])
    raise ApiError(404, "no realm %s" % shown(realm_id))


def instance_states():
    current_user(required=False)
    return respond(xml=("instance_states.xml", {"states": models.INSTANCE_STATES}),
                   json_data=json_format.instance_states(),
                   html=("instance_states.html", {"states": models.INSTANCE_STATES}))


def _profiles():
    return [models.profile_model(g.base, p) for p in _settings().profiles]


def profiles_index():
    current_user()
    items = _profiles()
    if request.args.get("id"):
        items = [p for p in items if p["id"] == request.args["id"]]
    arch = request.args.get("architecture")
    if arch:
        items = [p for p in items if any(x["name"] == "architecture" and x["value"] == arch
                                         for x in p["properties"])]
    return _collection("hardware_profiles", "profile", items, "hardware_profiles",
                       [json_format.profile(p) for p in items], "hardware_profiles.html")


def profile_show(profile_id):
    current_user()
    for p in _profiles():
        if p["id"] == profile_id:
            return _member("profile", p, "hardware_profile", json_format.profile(p), "hardware_profiles.html",
                           items=[p])
    raise ApiError(404, "no hardware profile %s" % shown(profile_id))


# -- images --------------------------------------------------------------------------------------------
def _images():
    settings = _settings()
    found = store_images(settings.image_store)
    return [models.image_model(g.base, settings.image_store, iid, info, settings.profiles)
            for iid, info in found.items()]


def _launch_form_context(user):
    keys = context()["keys"].list(user.name)
    return {"profiles": _settings().profiles, "keys": keys, "max_user_data": _settings().max_user_data}


def images_index():
    user = current_user()
    items = _filter(_images(), request.args, ["id", "architecture", "owner_id"])
    return _collection("images", "image", items, "images", [json_format.image(i) for i in items], "images.html",
                       **_launch_form_context(user))


def image_show(image_id):
    user = current_user()
    for i in _images():
        if i["id"] == image_id:
            return _member("image", i, "image", json_format.image(i), "image.html", **_launch_form_context(user))
    raise ApiError(404, "no image %s" % shown(image_id))


# -- instances -----------------------------------------------------------------------------------------
def _owner_filter(user):
    return None if user.is_admin else user.name


def _instance_models(user):
    infos = context()["jobs"].list(_owner_filter(user))
    # One listing holds every instance of each owner shown, so it also says what each owner runs now.
    set_pending_reasons(infos, _settings().quotas_now())
    return [models.instance_model(g.base, i) for i in infos]


def instances_index():
    user = current_user()
    items = _filter(_instance_models(user), request.args, ["id", "state"])
    return _collection("instances", "instance", items, "instances", [json_format.instance(i) for i in items],
                       "instances.html", refresh=any(i["state"] == "PENDING" for i in items))


def _get_instance(instance_id, user, unknown_status=404):
    from condor_cloud.master.jobs import NoSuchInstance

    try:
        return context()["jobs"].get(instance_id, _owner_filter(user))
    except NoSuchInstance:
        raise ApiError(unknown_status, "no instance %s" % shown(instance_id)) from None


def instance_show(instance_id):
    user = current_user()
    info = _get_instance(instance_id, user)
    if info.job_status == 1 and info.owner:
        # Idle: is its owner's quota what holds it? (Their other instances say; one more query, idle ones only.)
        others = [i for i in context()["jobs"].list(info.owner) if i.id != info.id]
        set_pending_reasons([info] + others, _settings().quotas_now())
    item = models.instance_model(g.base, info)
    return _member("instance", item, "instance", json_format.instance(item), "instance.html",
                   refresh=item["state"] == "PENDING")


def _user_data(args):
    settings = _settings()
    if args.get("user_data"):
        return user_data_for_job(args["user_data"], settings.max_user_data)
    text = args.get("user_data_text", "")
    if text:
        # The browser form sends plain text (no JavaScript to encode it).
        raw = text.replace("\r\n", "\n").encode("utf-8")
        if len(raw) > settings.max_user_data:
            raise ApiError(400, "user data is larger than %d bytes" % settings.max_user_data)
        return base64.b64encode(raw).decode("ascii")
    return ""


def instance_create():
    user = current_user()
    args = params()
    settings = _settings()
    image_id = args.get("image_id", "")
    if not image_id:
        raise ApiError(400, "parameter image_id is required")
    found = store_images(settings.image_store)
    info = found.get(image_id)
    if info is None:
        raise ApiError(400, "no image with id %s" % shown(image_id))
    check_image_name(info.name)
    hwp_id = args.get("hwp_id") or settings.profiles[0].id
    profile = settings.profile(hwp_id)
    if profile is None:
        raise ApiError(400, "no hardware profile %s (see /api/hardware_profiles)" % shown(hwp_id))
    realm_id = args.get("realm_id") or models.REALM["id"]
    if realm_id != models.REALM["id"]:
        raise ApiError(400, "no realm %s (the only realm is %s)" % (shown(realm_id), models.REALM["id"]))
    name = args.get("name") or "i-%d" % int(time.time())
    check_instance_name(name)
    user_data = _user_data(args)
    key = None
    if args.get("keyname"):
        try:
            key = context()["keys"].get(user.name, check_keyname(args["keyname"]))
        except NoSuchKey:
            raise ApiError(400, "you have no key %s (see /api/keys)" % shown(args["keyname"])) from None
    _check_quota(user.name, profile)
    created = context()["jobs"].submit(user.name, info.name, profile, name, user_data, key)
    item = models.instance_model(g.base, created)
    if g.format == "html":
        return html_redirect(item["href"])
    return _member("instance", item, "instance", json_format.instance(item), "instance.html", status=201,
                   headers={"Location": item["href"]}, refresh=True)


def _check_quota(owner, profile):
    """Refuse (QuotaExceeded: 403) a launch its owner's quota cannot hold beside what they run now. A courtesy:
    HTCondor enforces the quota (a launch that slips past this check in a race waits PENDING)."""
    quota = _settings().quotas_now()(owner)
    if quota == quotas.Quota():
        return      # unlimited: no query
    current = running_use(context()["jobs"].list(owner), owner)
    refusal = quotas.check_launch(quota, current, quotas.launch_request(profile.cpus, profile.memory))
    if refusal is not None:
        raise refusal


def _destroy(instance_id, user, unknown_status=404):
    info = _get_instance(instance_id, user, unknown_status)
    context()["jobs"].destroy(info, "destroyed through the Condor Cloud API by %s" % user.name)
    return info


def instance_member_post(instance_id):
    """POST /api/instances/:id with _method=delete (HTML forms cannot send DELETE)."""
    user = current_user()
    if params().get("_method", "").lower() != "delete":
        raise ApiError(405, "POST on an instance needs _method=delete (or use DELETE)")
    _destroy(instance_id, user)
    return html_redirect(g.base + "/api/instances") if g.format == "html" else no_content()


def instance_delete(instance_id):
    user = current_user()
    _destroy(instance_id, user)
    return html_redirect(g.base + "/api/instances") if g.format == "html" else no_content()


def instance_action(instance_id, action):
    user = current_user()
    if action == "destroy":
        _destroy(instance_id, user, unknown_status=403)
        return html_redirect(g.base + "/api/instances") if g.format == "html" else no_content()
    if action not in UNSUPPORTED_ACTIONS:
        raise ApiError(404, "no action %s on instances" % shown(action))
    _get_instance(instance_id, user, unknown_status=403)
    raise ApiError(412, "the condor driver cannot %s an instance (a VM-universe job can only be destroyed)" % action)


# After a 503 (the node did not answer within console.REQUEST_TIMEOUT), the client is told to ask again this late.
CONSOLE_RETRY = 5


def instance_console(instance_id):
    """GET /api/instances/:id/console: the end of a running instance's serial console as plain text (an extension
    of the Deltacloud API). Escape sequences and control characters are removed; ?bytes=N (default 16 KiB)."""
    from flask import Response

    from condor_cloud.master.console import DEFAULT_BYTES, MAX_BYTES, REQUEST_TIMEOUT, clean

    user = current_user()
    info = _get_instance(instance_id, user)
    try:
        max_bytes = int(request.args.get("bytes", DEFAULT_BYTES))
    except ValueError:
        max_bytes = 0
    if not 1 <= max_bytes <= MAX_BYTES:
        raise ApiError(400, "bytes must be a number from 1 to %d" % MAX_BYTES)
    try:
        text = context()["jobs"].console(info, max_bytes, timeout=REQUEST_TIMEOUT)
    except InstanceStateError:
        raise
    except CloudError as exc:
        if exc.code == errors.TIMEOUT:
            # Never hold one of the server's few workers while HTCondor is busy: say "not yet", and when.
            raise ApiError(503, "the console of instance %s cannot be read yet: its node is busy starting it "
                           "(HTCondor's starter waits 30 s after a domain starts); try again in %d s"
                           % (info.id, CONSOLE_RETRY), {"Retry-After": str(CONSOLE_RETRY)}) from None
        raise ApiError(502, str(exc)) from None
    resp = Response(clean(text).encode("utf-8"), content_type="text/plain; charset=utf-8")
    # Guest output is untrusted: never let a browser sniff it into HTML, and never cache it.
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    resp.headers["Cache-Control"] = "no-store"
    return resp


# -- usage ----------------------------------------------------------------------------------------------
def usage_show():
    """GET /api/usage[?since=&until=&user=]: instance count, instance-hours, vCPU-hours and GiB-hours over the period
    (default: this month so far), with each user's quota and what they run now. A user sees their own only; an
    admin everyone's (users of the user file and anybody with instances), or one user's with ?user=."""
    user = current_user()
    now = time.time()
    since, until = usage.period(request.args.get("since"), request.args.get("until"), now)
    wanted = request.args.get("user") or None
    if not user.is_admin:
        if wanted not in (None, user.name):
            raise ApiError(403, "you can see only your own usage")
        wanted = user.name
    elif wanted is not None:
        quotas.check_user_name(wanted)
    jobs = context()["jobs"]
    used = jobs.usage(since, until, now, wanted)
    infos = jobs.list(wanted)
    if wanted is not None:
        names = [wanted]
    else:
        names = sorted(set(context()["users"].load()) | set(used) | {i.owner for i in infos if i.owner})
    quota_of = _settings().quotas_now()
    entries = [models.usage_entry(name, quota_of(name), running_use(infos, name),
                                  used.get(name) or usage.UserUsage(name)) for name in names]
    total = usage.totals(used.values()).as_dict() if user.is_admin and wanted is None else None
    item = {"href": g.base + "/api/usage", "since": usage.iso(since), "until": usage.iso(min(until, now)),
            "users": entries, "total": total, "admin": user.is_admin}
    return respond(xml=("usage.xml", {"item": item}), json_data={"usage": json_format.usage(item)},
                   html=("usage.html", {"item": item}))


# -- keys -----------------------------------------------------------------------------------------------
def _key_models(user):
    return [models.key_model(g.base, k) for k in context()["keys"].list(user.name)]


def keys_index():
    user = current_user()
    items = _filter(_key_models(user), request.args, ["id"])
    return _collection("keys", "key", items, "keys", [json_format.key(k) for k in items], "keys.html")


def key_show(key_id):
    user = current_user()
    try:
        key = context()["keys"].get(user.name, check_keyname(key_id))
    except (NoSuchKey, CloudError):
        raise ApiError(404, "no key %s" % shown(key_id)) from None
    item = models.key_model(g.base, key)
    return _member("key", item, "key", json_format.key(item), "key.html")


def key_create():
    user = current_user()
    args = params()
    name = args.get("name", "")
    if not name:
        raise ApiError(400, "parameter name is required")
    name = check_keyname(name)
    private_key = None
    public_key = args.get("public_key", "")
    if not public_key.strip():
        # Deltacloud's create-key: a new pair, made in memory; the private key is in this response only, never
        # stored anywhere (keypairs.generate); a refused name (duplicate, too many keys) discards the pair.
        from condor_cloud.master.keypairs import generate

        private_key, public_key = generate("rsa", "%s@condor-cloud" % name)
    key = context()["keys"].add(user.name, name, public_key)
    item = models.key_model(g.base, key)
    headers = {"Location": item["href"]}
    if private_key is not None:
        item["private_key"] = private_key
        headers["Cache-Control"] = "no-store"
    elif g.format == "html":
        return html_redirect(g.base + "/api/keys")
    return _member("key", item, "key", json_format.key(item), "key.html", status=201, headers=headers)


def key_delete(key_id):
    user = current_user()
    try:
        context()["keys"].remove(user.name, check_keyname(key_id))
    except (NoSuchKey, CloudError):
        raise ApiError(404, "no key %s" % shown(key_id)) from None
    return html_redirect(g.base + "/api/keys") if g.format == "html" else no_content()


def key_member_post(key_id):
    current_user()
    if params().get("_method", "").lower() != "delete":
        raise ApiError(405, "POST on a key needs _method=delete (or use DELETE)")
    return key_delete(key_id)


# -- browser login --------------------------------------------------------------------------------------------
_NEXT_RE = re.compile(r"/api(?:[/?;][\x21-\x5b\x5d-\x7e]*)?")  # a path of this API: printable, no backslash


def _safe_next(value):
    """Where to go after logging in: a path of this API only (never another site)."""
    return value if isinstance(value, str) and _NEXT_RE.fullmatch(value) else "/api"


def login_form():
    g.format = "html"
    current_user(required=False)
    return respond(html=("login.html", {"message": "", "next": _safe_next(request.args.get("next"))}))


def login_post():
    """The login form: on success a session cookie (sessions.py) and a redirect to the page that asked."""
    g.format = "html"
    csrf.require_same_origin(request)
    next_path = _safe_next(request.form.get("next"))
    user = check_password(request.form.get("username", ""), request.form.get("password", ""))
    if user is None:
        return respond(401, html=("login.html", {"message": "Wrong user name or password.", "next": next_path}))
    sessions = context()["sessions"]
    sessions.end(request.cookies.get(SESSION_COOKIE))
    token, _ = sessions.create(user)
    resp = html_redirect(g.base + next_path)
    resp.set_cookie(SESSION_COOKIE, token, path="/", httponly=True, samesite="Strict", secure=request.is_secure)
    return resp


def logout_post():
    """End the session (its CSRF token was checked before this view, csrf.py rule 2)."""
    context()["sessions"].end(request.cookies.get(SESSION_COOKIE))
    resp = html_redirect(g.base + "/api/login")
    resp.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="Strict", secure=request.is_secure)
    return resp


def register(app):
    rule = app.add_url_rule
    rule("/", "root", lambda: html_redirect(g.base + "/api"))
    rule("/api", "api", api_root)
    rule("/api/", "api_slash", api_root)
    rule("/api/login", "login", login_form, methods=["GET"])
    rule("/api/login", "login_post", login_post, methods=["POST"])
    rule("/api/logout", "logout", logout_post, methods=["POST"])
    rule("/api/drivers", "drivers", drivers_index)
    rule("/api/drivers/<driver_id>", "driver", driver_show)
    rule("/api/realms", "realms", realms_index)
    rule("/api/realms/<realm_id>", "realm", realm_show)
    rule("/api/instance_states", "instance_states", instance_states)
    rule("/api/hardware_profiles", "hardware_profiles", profiles_index)
    rule("/api/hardware_profiles/<profile_id>", "hardware_profile", profile_show)
    rule("/api/images", "images", images_index)
    rule("/api/images/<image_id>", "image", image_show)
    rule("/api/instances", "instances", instances_index, methods=["GET"])
    rule("/api/instances", "instance_create", instance_create, methods=["POST"])
    rule("/api/instances/<instance_id>", "instance", instance_show, methods=["GET"])
    rule("/api/instances/<instance_id>", "instance_delete", instance_delete, methods=["DELETE"])
    rule("/api/instances/<instance_id>", "instance_post", instance_member_post, methods=["POST"])
    rule("/api/instances/<instance_id>/console", "instance_console", instance_console, methods=["GET"])
    rule("/api/instances/<instance_id>/<action>", "instance_action", instance_action, methods=["POST"])
    rule("/api/usage", "usage", usage_show, methods=["GET"])
    rule("/api/keys", "keys", keys_index, methods=["GET"])
    rule("/api/keys", "key_create", key_create, methods=["POST"])
    rule("/api/keys/<key_id>", "key", key_show, methods=["GET"])
    rule("/api/keys/<key_id>", "key_delete", key_delete, methods=["DELETE"])
    rule("/api/keys/<key_id>", "key_post", key_member_post, methods=["POST"])
    rule("/api/keys/<key_id>/destroy", "key_destroy", key_member_post_destroy, methods=["POST"])


def key_member_post_destroy(key_id):
    current_user()
    return key_delete(key_id)
