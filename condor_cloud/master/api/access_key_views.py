"""Each user's EC2 access keys, in the Deltacloud API's pages (an extension; the EC2 API itself is condor_cloud/ec2):

  GET    /api/access_keys           the user's keys (ids and creation times, never secrets) and a Create button
  POST   /api/access_keys           create one: the answer shows its secret, once (Cache-Control: no-store)
  DELETE /api/access_keys/:id       delete one of the user's keys (also POST with _method=delete, or POST
                                    /api/access_keys/:id/destroy, for forms)

HTML for browsers (a session's forms carry the CSRF token, checked by app.py for every state change), JSON and XML
for programs. A user sees and deletes only their own keys; another user's key id answers 404 like a missing one.
The keys live in CLOUD_EC2_ACCESS_KEYS (condor_cloud/access_keys.py), which the API's account writes.
"""

from flask import g

from condor_cloud.master.access_keys import AccessKeyStore, NoSuchAccessKey
from condor_cloud.core.errors import shown
from condor_cloud.master.api.http import context, current_user, html_redirect, no_content, params, respond
from condor_cloud.master.api.errors import ApiError
from condor_cloud.master.api.models import iso_time


def _store():
    ctx = context()
    if "access_keys" not in ctx:
        from condor_cloud.master.ec2.config import load_access_keys_path

        ctx["access_keys"] = AccessKeyStore(load_access_keys_path())
    return ctx["access_keys"]


def _model(key, secret=False):
    item = dict(key.public(), href=g.base + "/api/access_keys/" + key.id, created_text=iso_time(key.created))
    if secret:
        item["secret"] = key.secret
    return item


def _render(status, items, created=None, headers=None):
    context = {"items": items, "created": created}
    json_data = {"access_key": created} if created else {"access_keys": items}
    return respond(status, xml=("access_keys.xml", context), json_data=json_data,
                   html=("access_keys.html", context), headers=headers)


def index():
    user = current_user()
    return _render(200, [_model(k) for k in _store().list(user.name)])


def create():
    user = current_user()
    key = _store().create(user.name)
    created = _model(key, secret=True)
    # The only time the secret is shown: never cached, never a redirect (the secret would be in a URL).
    return _render(201, [_model(k) for k in _store().list(user.name)], created,
                   headers={"Cache-Control": "no-store", "Location": created["href"]})


def delete(key_id):
    user = current_user()
    try:
        _store().delete(key_id, user=user.name)
    except NoSuchAccessKey:
        raise ApiError(404, "no access key %s" % shown(key_id)) from None
    return html_redirect(g.base + "/api/access_keys") if g.format == "html" else no_content()


def member_post(key_id):
    current_user()
    if params().get("_method", "").lower() != "delete":
        raise ApiError(405, "POST on an access key needs _method=delete (or use DELETE)")
    return delete(key_id)


def register(app):
    rule = app.add_url_rule
    rule("/api/access_keys", "access_keys", index, methods=["GET"])
    rule("/api/access_keys", "access_key_create", create, methods=["POST"])
    rule("/api/access_keys/<key_id>", "access_key_delete", delete, methods=["DELETE"])
    rule("/api/access_keys/<key_id>", "access_key_post", member_post, methods=["POST"])
    rule("/api/access_keys/<key_id>/destroy", "access_key_destroy", delete, methods=["POST"])

