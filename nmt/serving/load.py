"""Driving a server from outside, for `nmt bench serve` and the tests: `nmt serve` started as a
child process on a free loopback port (`ServerProcess`), and concurrent clients sending one
request each at a time (`drive`)."""
from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Callable, Sequence

import aiohttp

from nmt.errors import NmtError


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the kernel's choice), never one this process handed out
    before: servers started one after the other, each binding later, would otherwise get the
    same port about once in 14,000 pairs."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


class ServerProcess:
    """`python -m nmt serve ARGS --port P` on 127.0.0.1; its stderr (the log) goes to a file,
    `log()`. `env`: the child's environment (default: this one's)."""

    def __init__(self, args: Sequence[str], env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "nmt", "serve", "--host", "127.0.0.1", "--port",
             str(self.port), *map(str, args)], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=self._log, env=env)

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def wait_ready(self, timeout: float = 300) -> None:
        """Until `GET /health` says ready; an NmtError with the log's last line if the process
        ends first or `timeout` seconds pass."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise NmtError(f"nmt serve exited with status {self.process.returncode}: "
                               f"{self._last_line()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=5) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise NmtError(f"nmt serve not ready after {timeout:g} s: {self._last_line()}")

    def _last_line(self) -> str:
        lines = self.log().strip().splitlines()
        return lines[-1] if lines else "(nothing logged)"

    def metrics(self, headers: dict | None = None) -> dict[str, float]:
        """The samples of `GET /metrics`: {'name{labels}': value}."""
        request = urllib.request.Request(self.url + "/metrics", headers=headers or {})
        with urllib.request.urlopen(request, timeout=30) as answer:
            text = answer.read().decode("utf-8")
        return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                for line in text.splitlines() if line and not line.startswith("#")}

    def memory_mib(self) -> tuple[float, float]:
        """(resident memory now, its peak so far) of the server process, MiB."""
        values = {}
        with open(f"/proc/{self.process.pid}/status", encoding="ascii") as status:
            for line in status:
                name, _, rest = line.partition(":")
                if name in ("VmRSS", "VmHWM"):
                    values[name] = int(rest.split()[0]) / 1024
        return values["VmRSS"], values["VmHWM"]

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then the exit status (SIGKILL after `timeout` seconds: -9)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def close(self) -> None:
        """Stops the server and drops its log."""
        self.stop()
        self._log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class Driven:
    seconds: float
    latencies: list = field(default_factory=list)  # seconds per request, in completion order
    statuses: dict = field(default_factory=dict)  # HTTP status -> count
    answers: dict = field(default_factory=dict)  # request index -> (status, JSON), if kept


async def drive(url: str, lines: Sequence[str], clients: int, count: int,
                body: Callable[[str], dict] = lambda line: {"text": line},
                token: str | None = None, keep: bool = False, timeout: float = 120) -> Driven:
    """`clients` concurrent clients send `count` requests in all to `url`/translate, each the
    next line of `lines` (cycling), one request at a time per client, on one connection each."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    result, sent = Driven(0.0), iter(range(count))

    async def client(session):
        for index in sent:
            start = time.perf_counter()
            async with session.post(url + "/translate", headers=headers,
                                    data=json.dumps(body(lines[index % len(lines)]))) as answer:
                found = await answer.read()
            result.latencies.append(time.perf_counter() - start)
            result.statuses[answer.status] = result.statuses.get(answer.status, 0) + 1
            if keep:
                result.answers[index] = answer.status, json.loads(found)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        start = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        result.seconds = time.perf_counter() - start
    return result


def percentile(values: Sequence[float], share: float) -> float:
    """The value below which `share` (0..1) of `values` lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]

