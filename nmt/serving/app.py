"""The routes of `nmt serve` (aiohttp): `POST /translate`, `GET /health`, `GET /metrics`, the web
page at `/` and its files under `/static/`.

Every error is answered as JSON `{"error": "one line"}` with its status and logged as one line;
no traceback reaches a client. With a token, `/translate` and `/metrics` need the header
`Authorization: Bearer TOKEN` (compared in constant time); the page and `/health` stay open.
"""
from __future__ import annotations

import asyncio
import functools
import hmac
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from nmt.serving import protocol
from nmt.serving.batcher import Batcher, QueueFull
from nmt.serving.metrics import CONTENT_TYPE, Metrics
from nmt.serving.model import ServedModel

log = logging.getLogger("nmt.serve")
STATIC = Path(__file__).parent / "static"
ROUTES = {"/", "/translate", "/health", "/metrics"}  # the paths metrics count by name
RETRY_AFTER = "1"  # seconds: a full queue drains in about a batch's time
# The page loads nothing from elsewhere (it works offline), and may not be framed.
SECURITY_HEADERS = {"Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
                    "X-Content-Type-Options": "nosniff"}
dumps = functools.partial(json.dumps, ensure_ascii=False, allow_nan=False)


@dataclass
class State:
    model: ServedModel
    batcher: Batcher
    metrics: Metrics
    limits: protocol.Limits
    timeout: float  # seconds a translation may take, queueing included
    token: str | None = None
    status: str = "loading"  # loading -> ready -> stopping
    models: list = field(default_factory=list)


STATE = web.AppKey("state", State)
MAX_BODY = web.AppKey("max_body", int)


def make_app(state: State, max_body: int) -> web.Application:
    app = web.Application(client_max_size=max_body, middlewares=[_answered, _authorized])
    app[STATE], app[MAX_BODY] = state, max_body
    app.router.add_get("/", _page)
    app.router.add_static("/static/", STATIC, append_version=False)
    app.router.add_get("/health", _health)
    app.router.add_get("/metrics", _metrics)
    app.router.add_post("/translate", _translate)
    return app


def _error(status: int, message: str, headers: dict | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers, dumps=dumps)


@web.middleware
async def _answered(request: web.Request, handler) -> web.StreamResponse:
    """Turns every failure into a JSON error, logs it (one line), counts every answer."""
    state: State = request.app[STATE]
    try:
        response = await handler(request)
    except protocol.Refused as refused:
        response = _error(refused.status, str(refused), refused.headers)
    except web.HTTPException as err:  # aiohttp's own: 404, 405, 413 (body too large)
        message = {404: f"not found: {request.path}",
                   405: f"{request.method} is not allowed on {request.path}",
                   413: f"body: larger than the limit of {request.app[MAX_BODY]} bytes"
                   }.get(err.status, err.reason)
        response = _error(err.status, message, {"Allow": err.headers["Allow"]}
                          if "Allow" in err.headers else None)
    except asyncio.CancelledError:  # the client disconnected: nobody to answer
        state.metrics.client_gone += 1
        log.info("%s %s: client disconnected; its translation was cancelled", request.method,
                 request.path)
        raise
    except Exception as err:  # a bug or a model failure: one line here, no details out
        log.error("%s %s: 500: %s: %s", request.method, request.path, type(err).__name__,
                  str(err).splitlines()[0] if str(err) else "")
        response = _error(500, "internal error (logged on the server)")
    # A 503 of /health is a state, not an error; a 500 has its line already.
    if response.status >= 400 and response.status != 500 and request.path != "/health":
        log.warning("%s %s: %d: %s", request.method, request.path, response.status,
                    getattr(response, "text", "") or "")
    response.headers.update(SECURITY_HEADERS)
    path = request.path if request.path in ROUTES else (
        "/static" if request.path.startswith("/static/") else "other")
    state.metrics.answered(path, response.status)
    return response


@web.middleware
async def _authorized(request: web.Request, handler) -> web.StreamResponse:
    token = request.app[STATE].token
    if token is not None and request.path in ("/translate", "/metrics"):
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if not (scheme.lower() == "bearer" and
                # A header's bytes that are not UTF-8 come as surrogates: no token, not a 500.
                hmac.compare_digest(given.strip().encode("utf-8", "surrogatepass"),
                                    token.encode())):
            raise protocol.Refused(401, "missing or wrong token (send 'Authorization: Bearer "
                                   "TOKEN')", {"WWW-Authenticate": "Bearer"})
    return await handler(request)


async def _page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html")


async def _health(request: web.Request) -> web.Response:
    state: State = request.app[STATE]
    body = {"status": state.status, "models": state.models}
    if state.status == "ready":
        body["decode"] = {"beam_size": state.model.translator.decode.beam_size,
                          "alpha": state.model.translator.decode.alpha,
                          "page_nbest": state.model.page_nbest,
                          "max_lines": state.limits.max_lines}
    return web.json_response(body, status=200 if state.status == "ready" else 503, dumps=dumps)


async def _metrics(request: web.Request) -> web.Response:
    state: State = request.app[STATE]
    return web.Response(text=state.metrics.render(state.batcher.queued),
                        headers={"Content-Type": CONTENT_TYPE})


async def _translate(request: web.Request) -> web.Response:
    state: State = request.app[STATE]
    if state.status != "ready":
        raise protocol.Refused(503, f"the server is {state.status}", {"Retry-After": RETRY_AFTER})
    start = time.perf_counter()
    model = state.model
    asked = protocol.parse(await _body(request), state.limits,
                           model.translator.decode.beam_size)
    settings = model.default(beam_size=asked.beam_size, alpha=asked.alpha, nbest=asked.nbest,
                             attention=asked.attention)
    try:
        future = state.batcher.submit(settings, asked.lines)
    except QueueFull as full:
        raise protocol.Refused(503, f"busy: {full}; retry later",
                               {"Retry-After": RETRY_AFTER}) from None
    timeout = min(asked.timeout or state.timeout, state.timeout)
    try:
        results = await asyncio.wait_for(future, timeout)
    except asyncio.TimeoutError:
        raise protocol.Refused(504, f"timeout: not translated within {timeout:g} s") from None
    state.metrics.sentences += len(results)
    state.metrics.latency.observe(time.perf_counter() - start)
    return web.json_response({"translations": [
        protocol.translation_json(r.found, asked, r.attention, r.source_tokens, r.target_tokens)
        for r in results]}, dumps=dumps)


async def _body(request: web.Request) -> bytes:
    try:
        return await request.read()
    except web.RequestPayloadError as err:  # a Content-Encoding that fails, a broken chunk
        # aiohttp would read the rest of the body again after the answer, and log the same
        # error with a traceback: there is no rest to read.
        request.content.feed_eof()
        reason = str(err.__cause__ or err).strip().splitlines()[-1].strip()
        raise protocol.Refused(400, f"body: cannot be decoded ({reason})") from None
