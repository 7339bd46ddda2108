"""Who may use the GUI server, and how much a request may ask: access token, Origin, headers, body limits.

- **Token**: a random token per launch, in the URL that ``matsight gui`` prints (``/?token=...``). The first
  visit trades it for an ``HttpOnly; SameSite=Strict`` cookie and is redirected to the clean URL (as
  Jupyter does); every other request needs that cookie, ``Authorization: token ...`` or ``?token=``, or
  gets 403 — so other local users and processes cannot read the data folder or start jobs.
- **Origin**: a state-changing request (anything but GET/HEAD/OPTIONS) from another web origin is refused.
- **Headers** on every response: ``nosniff``, ``Referrer-Policy: no-referrer`` and a Content-Security-Policy:
  the app's pages may load only their own scripts and styles; a user's file (``/files/``) is sandboxed with
  no scripts at all, so an ``.html`` in the data folder cannot act with the app's origin.
- **Limits**: a JSON body over :data:`MAX_BODY` bytes is refused while it streams in (413), one nested
  deeper than :data:`MAX_DEPTH` levels is refused (400).
"""

import json
import secrets
from urllib.parse import parse_qsl, urlencode

from .._errors import InputError

__all__ = ["Guard", "TooLarge", "read_json", "loads", "new_token", "MAX_BODY", "MAX_DEPTH"]

MAX_BODY = 1 << 20  # 1 MiB: the pages send a few settings and paths
DRAIN = 16 << 20  # a body over the limit but under this is read to its end before the 413 (see read_json)
MAX_DEPTH = 16  # the pages send depth 3 at most (a phase list inside a settings object)
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

APP_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# a user's file: no scripts, forms or plugins; our reports need their inline <style> and their PNG figures
# ('allow-same-origin' without 'allow-scripts' only lets the figures' requests carry the cookie)
FILES_CSP = (
    "sandbox allow-same-origin; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
    "media-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)
FORBIDDEN = (
    "not authorised: open the address that `matsight gui` printed (it holds the access token), "
    "or send the header 'Authorization: token <token>'"
)


class TooLarge(Exception):
    """A request body over the limit."""

    http_status = 413


def new_token():
    """A fresh random access token (URL-safe text)."""
    return secrets.token_urlsafe(24)


def _depth_ok(obj, limit):
    stack = [(obj, 1)]
    while stack:
        val, d = stack.pop()
        if isinstance(val, dict | list):
            if d > limit:
                return False
            stack.extend((v, d + 1) for v in (val.values() if isinstance(val, dict) else val))
    return True


def loads(text, what="the request body"):
    """``json.loads`` that refuses nesting deeper than :data:`MAX_DEPTH` with an :class:`InputError`."""
    try:
        val = json.loads(text)
    except RecursionError:
        val = None
        ok = False
    else:
        ok = _depth_ok(val, MAX_DEPTH)
    if not ok:
        raise InputError(f"{what} is nested more than {MAX_DEPTH} levels deep; send flat settings")
    return val


async def read_json(request, limit=MAX_BODY):
    """The request's JSON body, refused (:class:`TooLarge`) once it passes ``limit`` bytes.

    A body up to :data:`DRAIN` bytes is read to its end (and dropped) before the refusal: a server that
    answers while the client still sends makes the client see a reset instead of the 413. A larger one is
    refused at once.
    """
    too_large = TooLarge(f"the request body is over {limit // 1024} KiB; send only the page's settings")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max(limit, DRAIN):
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > DRAIN:
            raise too_large
        if size <= limit:
            chunks.append(chunk)
    if size > limit:
        raise too_large
    try:
        return loads(b"".join(chunks))
    except ValueError as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError("the request body must be JSON") from None


class Guard:
    """ASGI middleware: the access token, the Origin check and the security headers (see the module doc).

    Parameters
    ----------
    app : ASGI app
    token : str
        The access token of this launch.
    """

    def __init__(self, app, *, token):
        if not token:
            raise ValueError("an access token is required")
        self.app, self.token = app, token.encode()

    def _valid(self, value):
        return bool(value) and secrets.compare_digest(value.encode(), self.token)

    @staticmethod
    def cookie_name(scope):
        """The cookie's name: ``matsight-token-PORT`` (cookies ignore ports; two GUIs need two names)."""
        port = (scope.get("server") or ("", 0))[1]
        return f"matsight-token-{port}"

    async def __call__(self, scope, receive, send):
        """Refuse, redirect, or pass the request on with the headers added to its response."""
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        from starlette.datastructures import Headers
        from starlette.requests import cookie_parser
        from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse

        headers = Headers(scope=scope)
        path, method = scope["path"], scope["method"]
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        url_token = next((v for k, v in query if k == "token"), None)
        name = self.cookie_name(scope)
        auth = headers.get("authorization", "")
        authed = (
            self._valid(cookie_parser(headers.get("cookie", "")).get(name))
            or (auth[:6].lower() == "token " and self._valid(auth[6:].strip()))
            or self._valid(url_token)
        )
        api = path.startswith(("/api/", "/files/"))
        files = path.startswith("/files/")

        async def send_secured(message):
            if message["type"] == "http.response.start":
                extra = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"content-security-policy", (FILES_CSP if files else APP_CSP).encode()),
                ]
                message = {**message, "headers": list(message.get("headers", [])) + extra}
            await send(message)

        if method in ("GET", "HEAD") and not api and url_token is not None and self._valid(url_token):
            # a page opened with the token: keep it in a cookie and show the clean URL (no token in history)
            rest = urlencode([(k, v) for k, v in query if k != "token"])
            resp = RedirectResponse(path + ("?" + rest if rest else ""), status_code=303)
            resp.set_cookie(name, self.token.decode(), httponly=True, samesite="strict", path="/")
            return await resp(scope, receive, send_secured)
        if not authed and path != "/favicon.ico":
            resp = JSONResponse({"error": FORBIDDEN}, 403) if api else PlainTextResponse(FORBIDDEN, 403)
            return await resp(scope, receive, send_secured)
        origin = headers.get("origin")
        if method not in SAFE_METHODS and origin is not None:
            own = f"{scope.get('scheme', 'http')}://{headers.get('host', '')}"
            if origin != own:
                msg = f"refused a {method} from another web page ({origin[:80]}); use the matsight pages"
                return await JSONResponse({"error": msg}, 403)(scope, receive, send_secured)
        return await self.app(scope, receive, send_secured)
