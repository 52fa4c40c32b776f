"""HTTP errors of the API, each rendered as a Deltacloud error body, and the one table from the errors of the
layers below (the job layer, CloudError codes) to HTTP statuses."""

from http import HTTPStatus

from condor_cloud.core import errors
from condor_cloud.master.jobs import BackendError, InstanceStateError, NoSuchInstance
from condor_cloud.master.quotas import QuotaExceeded


class ApiError(Exception):
    def __init__(self, status, message=None, headers=None):
        super().__init__(message or reason(status))
        self.status = status
        self.message = message or reason(status)
        self.headers = headers or {}


def reason(status):
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


# The job layer's errors, most specific first (each is a CloudError). A launch over its owner's quota is 403
# Forbidden, as Nova answers it: the request is understood, and refused for this user.
_BY_CLASS = ((BackendError, 502), (NoSuchInstance, 404), (InstanceStateError, 409), (QuotaExceeded, 403))
# Other CloudErrors by code: a server problem, the master's disk full, a node that did not answer in time.
_BY_CODE = {errors.INTERNAL: 500, errors.NO_SPACE: 507, errors.TIMEOUT: 503}


def status_of(exc):
    """The HTTP status of a CloudError: the one place the API decides it (anything else the client asked is 400)."""
    for cls, status in _BY_CLASS:
        if isinstance(exc, cls):
            return status
    return _BY_CODE.get(exc.code, 400)


def details_of(exc):
    """What an error body says besides its message, for programs: the limit a QuotaExceeded names, else None."""
    if isinstance(exc, QuotaExceeded):
        return {"kind": "quota_exceeded", "field": exc.field, "limit": exc.limit, "in_use": exc.current,
                "requested": exc.requested}
    return None
