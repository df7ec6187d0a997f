"""HTTP-style status codes carried in every reply's ``status`` field."""

from enum import IntEnum

__all__ = ["StatusCodes", "is_success"]


class StatusCodes(IntEnum):
    """The codes the router and its users answer with; they mean what they mean in HTTP.

    Members are plain ``int`` values, so ``{"status": StatusCodes.CREATED}`` and
    ``{"status": 201}`` are the same reply.
    """

    OK = 200
    CREATED = 201
    ACCEPTED = 202
    NO_CONTENT = 204
    NOT_MODIFIED = 304
    BAD_REQUEST = 400
    UNAUTHORIZED = 401
    FORBIDDEN = 403
    NOT_FOUND = 404
    METHOD_NOT_ALLOWED = 405
    NOT_ACCEPTABLE = 406
    CONFLICT = 409
    GONE = 410
    PRECONDITION_FAILED = 412
    PAYLOAD_TOO_LARGE = 413
    UNSUPPORTED_MEDIA_TYPE = 415
    UNPROCESSABLE_ENTITY = 422
    TOO_MANY_REQUESTS = 429
    INTERNAL_SERVER_ERROR = 500
    NOT_IMPLEMENTED = 501
    BAD_GATEWAY = 502
    SERVICE_UNAVAILABLE = 503
    GATEWAY_TIMEOUT = 504


def is_success(status: int) -> bool:
    """True for 2xx: the statuses on which a route's dehydrate runs."""
    return 200 <= status < 300
