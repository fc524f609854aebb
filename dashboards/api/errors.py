"""The one error type of the management API: a status and a sentence saying what is wrong.

Answered as `{"detail": "..."}`, the shape Sentry's API uses, so tools that print `detail`
show our messages too.
"""

from __future__ import annotations


class ApiError(Exception):
    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


def bad_request(detail: str) -> ApiError:
    return ApiError(400, detail)


def not_found(what: str) -> ApiError:
    # The same answer for "does not exist" and "belongs to another organization", so ids of
    # other tenants' objects reveal nothing.
    return ApiError(404, f"{what} not found")


def unauthenticated(detail: str = "authentication required: send Authorization: Bearer "
                    "<token>, or sign in") -> ApiError:
    return ApiError(401, detail, {"WWW-Authenticate": 'Bearer realm="pulsetrace"'})


def forbidden(detail: str) -> ApiError:
    return ApiError(403, detail)
