"""One rooted hierarchy of cupola errors, mapped to HTTP status codes in one place.

Every error a user can cause is a :class:`UserError` (or a subclass) and becomes a 4xx
response in the OpenAI error shape. Anything else reaching the HTTP layer is a bug.
:func:`classify` turns any exception into an :class:`ErrorInfo`, once; each protocol's
renderer (server/render/errors.py) writes that in its own shape.
"""

from __future__ import annotations

from dataclasses import dataclass


class CupolaError(Exception):
    """Root of every error cupola raises on purpose."""

    status_code = 500
    error_type = "server_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class UserError(CupolaError):
    """Bad input: the request cannot be served as sent (HTTP 400)."""

    status_code = 400
    error_type = "invalid_request_error"


class PayloadTooLarge(UserError):
    """The request body is larger than the server accepts (HTTP 413)."""

    status_code = 413


class AuthenticationError(UserError):
    """No valid API key was presented (HTTP 401)."""

    status_code = 401
    error_type = "authentication_error"


class PermissionDenied(UserError):
    """The caller may not do this: a key of another project, a role too low, or a request
    from a browser origin the server does not allow (HTTP 403)."""

    status_code = 403
    error_type = "permission_error"


class UnsupportedMediaType(UserError):
    """The request body is not in a media type the endpoint takes (HTTP 415)."""

    status_code = 415


class NotFound(UserError):
    """The named resource does not exist (HTTP 404)."""

    status_code = 404


class Conflict(UserError):
    """The request conflicts with the current state of a resource (HTTP 409)."""

    status_code = 409


class ConfigError(CupolaError):
    """cupola.yaml or the environment is invalid; raised at start-up, never per request."""

    status_code = 500
    error_type = "config_error"


class ProviderError(CupolaError):
    """A model provider failed (unreachable, bad upstream answer). Ends a response as failed."""

    status_code = 502
    error_type = "model_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        upstream_status: int | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message, param=param, code=code)
        self.upstream_status = upstream_status
        """The HTTP status the provider answered with; None when it gave no answer (timeout,
        refused or dropped connection, malformed body)."""
        self.retry_after = retry_after
        """Seconds the provider asked to wait (``Retry-After``), when it said."""

    @property
    def retryable(self) -> bool:
        """Whether the same request may succeed if sent again: no answer at all, a timeout
        or conflict (408, 409), rate limiting (429) or a server error (5xx)."""
        status = self.upstream_status
        return status is None or status in (408, 409, 429) or status >= 500


class MissingDependency(CupolaError):
    """An optional dependency is not installed; the message names the pip command that fixes it."""

    error_type = "server_error"

    def __init__(self, package: str, extra: str):
        super().__init__(
            f"{package} is not installed; install it with: pip install 'cupola[{extra}]'",
            code="missing_dependency",
        )


class ToolError(CupolaError):
    """A tool could not be run; reported on the tool's item, not raised to the client."""

    error_type = "tool_error"


GENERIC_MESSAGE = "internal server error"
"""What a client reads for an unexpected exception: never the exception's own text."""


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """An exception classified once, in the terms every protocol's renderer needs."""

    status: int
    """The HTTP status it answers with."""
    type: str
    """The OpenAI error ``type`` (``invalid_request_error``, ``model_error``, ...)."""
    code: str | None
    """The error's own code, when it has one (renderers pick a default when not)."""
    message: str
    """What the client reads."""
    param: str | None = None
    expected: bool = True
    """False for an exception cupola did not raise on purpose: a bug, to be logged once
    with its traceback by whoever caught it, and answered with :data:`GENERIC_MESSAGE`."""


def classify(exc: BaseException) -> ErrorInfo:
    """The one place an exception becomes an error the client reads."""
    if isinstance(exc, CupolaError):
        return ErrorInfo(exc.status_code, exc.error_type, exc.code, exc.message, exc.param)
    return ErrorInfo(500, "server_error", None, GENERIC_MESSAGE, None, expected=False)
