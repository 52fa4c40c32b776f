"""The JSON shapes of Deltacloud 1.x (the models' to_hash), built from the dicts in models.py."""

from condor_cloud.master.api.models import DRIVER, DRIVER_NAME, INSTANCE_STATES, PROVIDER, REALM


def api(base, version, links):
    out = []
    for rel, features in links:
        out.append({
            "rel": rel,
            "href": base + "/api/" + rel,
            "features": [[{"name": name, "rel": "create", "params": ["%s:string:optional" % param],
                           "constraints": {}}] for name, param in features],
        })
    return {"api": {"version": version, "driver": DRIVER, "provider": PROVIDER, "links": out}}


def drivers(base):
    return {DRIVER: {"name": DRIVER_NAME}}


def driver(base):
    return {"driver": {"id": DRIVER, "name": DRIVER_NAME}}


def realm(base):
    return {"id": REALM["id"], "href": base + "/api/realms/" + REALM["id"], "name": REALM["name"],
            "state": REALM["state"]}


def profile(p):
    return {"id": p["id"], "href": p["href"], "name": p["name"],
            "properties": {prop["name"]: prop["value"] for prop in p["properties"]}}


def image(i):
    return {
        "id": i["id"], "href": i["href"], "name": i["name"], "description": i["description"],
        "owner": i["owner_id"], "architecture": i["architecture"], "state": i["state"],
        "root_type": i["root_type"], "creation_time": i["creation_time"],
        "hardware_profiles": [{"id": p["id"], "href": p["href"], "rel": "hardware_profile"}
                              for p in i["hardware_profiles"]],
    }


def instance_states():
    out = []
    for name, transitions in INSTANCE_STATES:
        items = []
        for to, how in transitions:
            items.append({"to": to, "auto": "true"} if how == "auto" else {"to": to, "action": how})
        out.append({"name": name, "transitions": items})
    return out


def instance(i):
    out = {
        "id": i["id"], "href": i["href"], "name": i["name"], "state": i["state"], "owner": i["owner_id"],
        "image": {"href": i["image"]["href"], "id": i["image"]["id"], "rel": "image"},
        "realm": {"href": i["realm"]["href"], "id": i["realm"]["id"], "rel": "realm"},
        "actions": [{"href": a["href"], "rel": a["rel"], "method": a["method"]} for a in i["actions"]],
        "hardware_profile": {"id": i["hardware_profile"]["id"], "href": i["hardware_profile"]["href"],
                             "rel": "hardware_profile",
                             "properties": {p["name"]: p["value"] for p in i["hardware_profile"]["properties"]}},
        "public_addresses": [{"address": a["address"], "type": a["type"]} for a in i["public_addresses"]],
        "private_addresses": [],
        "create_time": i["launch_time"],
    }
    if i["keyname"]:
        out["authentication"] = {"keyname": i["keyname"]}
    if i["state_reason"]:
        out["state_reason"] = i["state_reason"]
    return out


def usage(u):
    """GET /api/usage (an extension of the Deltacloud API)."""
    out = {"href": u["href"], "since": u["since"], "until": u["until"],
           "users": [{"user": e["user"], "quota": e["quota"], "in_use": e["in_use"], "usage": e["usage"]}
                     for e in u["users"]]}
    if u["total"] is not None:
        out["total"] = u["total"]
    return out


def key(k, private_pem=None):
    return {
        "id": k["id"], "href": k["href"], "name": k["name"], "credential_type": "key",
        "fingerprint": k["fingerprint"], "public_key": k["public_key"],
        # The key material; the PyPI deltacloud client reads this field. This cloud holds public keys only: a pair
        # it made (POST /api/keys without public_key) shows its private key here once, in the creating response.
        "pem_rsa_key": k.get("private_key") or k["public_key"],
        "state": k["state"],
    }
