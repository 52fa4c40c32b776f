"""HTTP errors of the API, each rendered as a Deltacloud error body."""

from http import HTTPStatus


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
