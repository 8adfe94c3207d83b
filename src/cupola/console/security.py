"""The console's own checks, before anything reaches the API: the sign-in cookie, same-origin
writes, and headers that keep pages out of frames and scripts to the console's own files.

The key a user signs in with is kept in an ``HttpOnly``, ``SameSite=Strict`` cookie scoped to
``/console``: page scripts cannot read it and other sites' pages never send it. Every request
that changes something (sign in, sign out, a playground turn) must also come from the
console's own origin: ``Origin`` equal to the request's scheme and ``Host``, or, from a client
that sends no ``Origin``, no ``Sec-Fetch-Site`` other than ``same-origin``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

COOKIE = "cupola_console_key"
COOKIE_PATH = "/console"
MAX_KEY_LENGTH = 512

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)
HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}
"""Sent with every page: no framing (clickjacking), no inline or foreign scripts, no caching
of pages that show a project's data."""


def own_origin(request: Request) -> str | None:
    """The origin the browser used to reach this page (scheme and ``Host``)."""
    host = request.headers.get("host")
    return f"{request.url.scheme}://{host}".lower() if host else None


def same_origin(request: Request) -> bool:
    """Whether a state-changing request comes from the console's own pages."""
    origin = request.headers.get("origin")
    if origin is not None:
        return origin.lower() == own_origin(request)
    return request.headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")


def cookie_key(request: Request) -> str | None:
    """The key the browser signed in with, if any."""
    key = request.cookies.get(COOKIE)
    return key if key and len(key) <= MAX_KEY_LENGTH else None


def set_key_cookie(response: Response, request: Request, key: str) -> None:
    """Keep ``key`` for this browser: HttpOnly, SameSite=Strict, Secure over HTTPS."""
    response.set_cookie(
        COOKIE,
        key,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_key_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        COOKIE,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a console path, never another site."""
    if (
        target
        and target.startswith(COOKIE_PATH + "/")
        and "//" not in target
        and "\\" not in target
    ):
        return target
    return COOKIE_PATH + "/"
