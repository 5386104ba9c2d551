"""One exception tree for the gateway, rendered in the shape the client's SDK parses."""

from __future__ import annotations

import json
from enum import StrEnum

from starlette.responses import JSONResponse


class Vendor(StrEnum):
    OPENAI = "openai"
    ANTHROPIC = "anthropic"


class GatewayError(Exception):
    status = 500
    openai_type = "server_error"
    anthropic_type = "api_error"
    code: str | None = None

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InternalError(GatewayError):
    """A bug in privgate: the request fails, in the vendor's shape, and nothing is sent raw."""

    code = "privgate_internal_error"


class BadRequest(GatewayError):
    status, openai_type, anthropic_type = 400, "invalid_request_error", "invalid_request_error"


class UnknownDomain(BadRequest):
    code = "unknown_domain"


class NotFound(GatewayError):
    status, openai_type, anthropic_type = 404, "invalid_request_error", "not_found_error"
    code = "not_found"


class Unauthorized(GatewayError):
    status, openai_type, anthropic_type = 401, "invalid_request_error", "authentication_error"
    code = "invalid_api_key"


class RateLimited(GatewayError):
    status, openai_type, anthropic_type = 429, "rate_limit_error", "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class BodyTooLarge(GatewayError):
    status, openai_type, anthropic_type = 413, "invalid_request_error", "request_too_large"
    code = "request_too_large"


class PolicyRefused(GatewayError):
    """The policy forbids sending this request (a `block` label, or a value that would leak)."""

    status, openai_type, anthropic_type = 403, "permission_error", "permission_error"
    code = "privgate_policy_refused"


class DetectionFailed(GatewayError):
    """Detection or rewriting failed on a protected request: refused, never sent raw."""

    status, openai_type, anthropic_type = 503, "server_error", "api_error"
    code = "privgate_detection_failed"


class UpstreamUnavailable(GatewayError):
    status, openai_type, anthropic_type = 502, "server_error", "api_error"
    code = "upstream_unavailable"


class UpstreamTimeout(GatewayError):
    status, openai_type, anthropic_type = 504, "timeout_error", "timeout_error"
    code = "upstream_timeout"


def error_body(error: GatewayError, vendor: Vendor) -> dict[str, object]:
    message = f"privgate: {error.message}"
    if vendor is Vendor.ANTHROPIC:
        return {"type": "error", "error": {"type": error.anthropic_type, "message": message}}
    return {"error": {"message": message, "type": error.openai_type, "param": None, "code": error.code}}


def error_response(error: GatewayError, vendor: Vendor, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(error, vendor), status_code=error.status, headers=headers)


def stream_error_event(error: GatewayError, vendor: Vendor) -> bytes:
    """The event that ends a broken stream; both SDKs raise on it instead of hanging."""
    data = json.dumps(error_body(error, vendor), ensure_ascii=False)
    if vendor is Vendor.ANTHROPIC:
        return f"event: error\ndata: {data}\n\n".encode()
    return f"data: {data}\n\n".encode()
