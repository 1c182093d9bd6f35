"""`nmt serve`: the process around the routes. It listens first (a port in use fails at once, and
`/health` answers "loading"), loads and warms up the model in the model thread, then serves until
SIGTERM or Ctrl-C: it stops accepting connections, finishes the requests in flight (up to
`drain` seconds) and returns 0."""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import signal
import socket
from dataclasses import dataclass, field

from aiohttp import web

from nmt.errors import NmtError
from nmt.serving import protocol
from nmt.serving.app import State, make_app
from nmt.serving.batcher import Batcher
from nmt.serving.metrics import Metrics
from nmt.serving.model import ServedModel

log = logging.getLogger("nmt.serve")
TOKEN_VARIABLE = "NMT_SERVE_TOKEN"


@dataclass(frozen=True)
class Settings:
    models: tuple
    host: str = "127.0.0.1"
    port: int = 8080
    threads: int | None = None
    token: str | None = None
    decode: dict = field(default_factory=dict)  # beam_size, alpha, ...: overrides of the recipe
    limits: protocol.Limits = protocol.Limits()
    max_body: int = 1 << 20  # bytes (413 above)
    batch_wait: float = 0.005  # seconds a batch that is not full waits for more requests
    max_queue: int = 1024  # sentences waiting (503 above)
    timeout: float = 60.0  # seconds per request, queueing included (504 after)
    drain: float = 10.0  # seconds given to the requests in flight at SIGTERM


def read_token(token_file: str | None) -> str | None:
    """The access token: from `token_file` if given, else $NMT_SERVE_TOKEN, else None (never
    from the command line, where other users' `ps` would see it)."""
    if token_file is None:
        token = os.environ.get(TOKEN_VARIABLE)
        source = f"${TOKEN_VARIABLE}"
    else:
        try:
            with open(token_file, encoding="utf-8") as handle:
                token = handle.read()
        except (OSError, UnicodeDecodeError) as err:
            raise NmtError(f"{token_file}: cannot read the token "
                           f"({getattr(err, 'strerror', None) or err})") from None
        source = token_file
    if token is None:
        return None
    token = token.strip()
    if len(token) < 16 or any(c.isspace() for c in token):
        raise NmtError(f"{source}: the token must be at least 16 characters, without spaces")
    return token


def serve(settings: Settings) -> int:
    logging.basicConfig(format="%(asctime)s %(message)s", datefmt="%Y-%m-%d %H:%M:%S",
                        level=logging.INFO)
    logging.getLogger("aiohttp.server").addFilter(_one_line)
    return asyncio.run(_serve(settings))


async def _serve(settings: Settings) -> int:
    loop = asyncio.get_running_loop()
    metrics, model = Metrics(), ServedModel()
    batch_size = settings.decode.get("batch_size")
    batcher = Batcher(model.translate, batch_size or 64, settings.batch_wait, settings.max_queue,
                      metrics.batches.observe)
    state = State(model, batcher, metrics, settings.limits, settings.timeout, settings.token,
                  models=[str(m) for m in settings.models])
    runner = web.AppRunner(make_app(state, settings.max_body), handler_cancellation=True,
                           shutdown_timeout=settings.drain, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
    except OSError as err:
        await runner.cleanup()
        # Not asyncio's long form; a host name not found has a negative errno of its own.
        reason = (err.strerror if isinstance(err, socket.gaierror) else
                  os.strerror(err.errno) if err.errno else str(err))
        raise NmtError(f"cannot listen on {settings.host}:{settings.port}: {reason}") from None
    if settings.token is None and not _loopback(settings.host):
        log.warning("warning: listening on %s without a token: anyone who reaches this port can "
                    "translate (set $%s or --token-file)", settings.host, TOKEN_VARIABLE)
    log.info("listening on http://%s:%d/ (loading the model)", settings.host, settings.port)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    batching = asyncio.create_task(batcher.run())
    try:
        loading = loop.run_in_executor(batcher.executor, lambda: model.load(
            settings.models, settings.threads, **settings.decode))
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait([loading, stopped], return_when=asyncio.FIRST_COMPLETED)
        if loading.done():
            loading.result()  # a model that cannot be loaded: its NmtError, one line
            batcher.max_sentences = batch_size or model.translator.decode.batch_size
            state.status = "ready"
            log.info("ready: %s (beam %d, alpha %g, batches of up to %d sentences)",
                     " + ".join(state.models), model.translator.decode.beam_size,
                     model.translator.decode.alpha, batcher.max_sentences)
            await stopped
        state.status = "stopping"
        log.info("stopping: finishing the requests in flight (up to %g s)", settings.drain)
    finally:
        await runner.cleanup()  # stops listening, waits for the handlers in flight
        batching.cancel()
        batcher.executor.shutdown(wait=True, cancel_futures=True)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    log.info("stopped")
    return 0


def _one_line(record: logging.LogRecord) -> bool:
    """aiohttp logs a request it cannot parse (a bad chunk, a body it cannot decode) with a
    traceback: here it is one line, as every other error."""
    if record.exc_info and record.exc_info[1] is not None:
        err = record.exc_info[1]
        words = " ".join(line.strip() for line in str(err).splitlines() if line.strip(" ^"))
        record.msg, record.args = f"{record.getMessage()}: {type(err).__name__}: {words}", None
        record.exc_info = record.exc_text = None
    return True

def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
