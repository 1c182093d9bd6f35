"""The server's parts without a model or a process: request checking, dynamic batching, the
Prometheus text."""
from __future__ import annotations

import asyncio
import json
import threading

import pytest

from nmt.serving import protocol
from nmt.serving.batcher import Batcher, QueueFull
from nmt.serving.metrics import Metrics

LIMITS = protocol.Limits(max_lines=3, max_line_chars=10)


def _parse(values, beam: int = 5):
    body = values if isinstance(values, bytes) else json.dumps(values).encode()
    return protocol.parse(body, LIMITS, beam)


def test_a_free_port_is_never_handed_out_twice(monkeypatch):
    """The kernel can offer the port it just offered, since nobody has bound it yet: two servers
    started one after the other would then clash."""
    from nmt.serving import load
    offered = iter([40_001, 40_001, 40_002])

    class Probe:
        def __init__(self):
            self.port = next(offered)

        def bind(self, address):
            pass

        def getsockname(self):
            return "127.0.0.1", self.port

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

    monkeypatch.setattr(load, "_HANDED_OUT", set())
    monkeypatch.setattr(load.socket, "socket", Probe)
    assert (load.free_port(), load.free_port()) == (40_001, 40_002)


def test_a_request_with_every_field():
    found = _parse({"text": ["a b", "", "\tc"], "beam_size": 4, "alpha": 0, "nbest": 4,
                    "scores": True, "attention": True, "timeout": 2})
    assert found == protocol.Request(("a b", "", "\tc"), 4, 0.0, 4, True, True, 2.0)
    assert _parse({"text": "one line"}) == protocol.Request(("one line",), None, None, 1, False,
                                                            False, None)


@pytest.mark.parametrize("body, status, message", [
    (b'{"text": "\xff"}', 400, "body: invalid UTF-8 at byte 10"),
    (b'{"text": ', 400, "body: not JSON"),
    (b'[1]', 400, "body: expected a JSON object, got a list"),
    ({"text": "a", "beam": 2}, 400, "beam: unknown field"),
    ({}, 400, "text: missing"),
    ({"text": 3}, 400, "text: expected a string or a list of strings, got a number"),
    ({"text": []}, 400, "text: empty list"),
    ({"text": ["a", None]}, 400, "text[1]: expected a string, got null"),
    ({"text": ["a", "b\nc"]}, 400, "text[1]: contains a line break"),
    ({"text": "a\rb"}, 400, "text: contains a carriage return"),
    ({"text": "a\0b"}, 400, "text: contains a NUL character"),
    ({"text": "\ud800"}, 400, "text: contains a lone surrogate"),
    ({"text": ["a"] * 4}, 413, "text: 4 lines, more than the limit of 3 per request"),
    ({"text": ["a", "x" * 11]}, 413, "text[1]: 11 characters, more than the limit of 10"),
    ({"text": "a", "beam_size": 0}, 400, "beam_size: expected an integer from 1 to 64, got 0"),
    ({"text": "a", "beam_size": "3"}, 400, 'beam_size: expected an integer from 1 to 64, got "3"'),
    ({"text": "a", "beam_size": True}, 400, "beam_size: expected an integer"),
    ({"text": "a", "nbest": 6}, 400, "nbest: 6 is larger than the beam size 5"),
    ({"text": "a", "beam_size": 2, "nbest": 3}, 400, "nbest: 3 is larger than the beam size 2"),
    ({"text": "a", "alpha": -1}, 400, "alpha: expected a finite number >= 0, got -1"),
    (b'{"text": "a", "alpha": NaN}', 400, "alpha: expected a finite number >= 0, got NaN"),
    ({"text": "a", "scores": "yes"}, 400, 'scores: expected true or false, got "yes"'),
    ({"text": "a", "attention": 1}, 400, "attention: expected true or false, got 1"),
    ({"text": "a", "timeout": 0}, 400, "timeout: expected seconds > 0, got 0"),
])
def test_a_bad_request_is_refused_naming_its_field(body, status, message):
    with pytest.raises(protocol.Refused) as refused:
        _parse(body)
    assert refused.value.status == status
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)


def _batcher(work, max_sentences=4, max_wait=0.05, max_queue=8, sizes=None):
    return Batcher(work, max_sentences, max_wait, max_queue, sizes.append if sizes is not None
                   else None)


def test_concurrent_requests_with_the_same_settings_share_a_batch():
    batches = []

    def work(key, lines):
        batches.append((key, list(lines)))
        return [f"{key}:{line}" for line in lines]

    async def scenario():
        sizes = []
        batcher = _batcher(work, sizes=sizes)
        running = asyncio.create_task(batcher.run())
        futures = [batcher.submit("k", ["a", "b"]), batcher.submit("j", ["c"]),
                   batcher.submit("k", ["d"]), batcher.submit("k", ["e", "f"])]
        results = await asyncio.gather(*futures)
        running.cancel()
        batcher.executor.shutdown()
        return results, sizes

    results, sizes = asyncio.run(scenario())
    # Each request gets its own lines back; the first batch takes the oldest request's settings
    # and the next ones with them that fit (4 sentences); the others wait their turn.
    assert results == [["k:a", "k:b"], ["j:c"], ["k:d"], ["k:e", "k:f"]]
    assert batches == [("k", ["a", "b", "d"]), ("j", ["c"]), ("k", ["e", "f"])]
    assert sizes == [3, 1, 2]


def test_the_queue_is_bounded_and_a_cancelled_request_is_never_decoded():
    release, decoded = threading.Event(), []

    def work(key, lines):
        release.wait(5)
        decoded.extend(lines)
        return list(lines)

    async def scenario():
        batcher = _batcher(work, max_sentences=2, max_wait=0)
        running = asyncio.create_task(batcher.run())
        first = batcher.submit("k", ["busy", "model"])
        await asyncio.sleep(0.05)  # the model thread has taken it
        waiting = batcher.submit("k", ["a"] * 5)
        with pytest.raises(QueueFull):
            batcher.submit("k", ["b"] * 4)  # 5 + 4 sentences queued > 8
        queued_before = batcher.queued
        waiting.cancel()  # its client left
        await asyncio.sleep(0)
        queued_after = batcher.queued
        last = batcher.submit("k", ["c"])
        release.set()
        results = await asyncio.gather(first, last)
        running.cancel()
        batcher.executor.shutdown()
        return queued_before, queued_after, results

    queued_before, queued_after, results = asyncio.run(scenario())
    assert (queued_before, queued_after) == (5, 0)
    assert results == [["busy", "model"], ["c"]]
    assert decoded == ["busy", "model", "c"]


def test_a_failing_batch_fails_its_requests_only():
    def work(key, lines):
        if "bad" in lines:
            raise RuntimeError("model failure")
        return list(lines)

    async def scenario():
        batcher = _batcher(work, max_wait=0)
        running = asyncio.create_task(batcher.run())
        bad = batcher.submit("k", ["bad"])
        with pytest.raises(RuntimeError, match="model failure"):
            await bad
        good = await batcher.submit("k", ["good"])
        running.cancel()
        batcher.executor.shutdown()
        return good

    assert asyncio.run(scenario()) == ["good"]


def test_metrics_in_the_prometheus_text_format():
    metrics = Metrics()
    metrics.answered("/translate", 200)
    metrics.answered("/translate", 200)
    metrics.answered("/translate", 413)
    for seconds in (0.003, 0.2, 100):
        metrics.latency.observe(seconds)
    metrics.batches.observe(3)
    text = metrics.render(queued=7)
    lines = text.splitlines()
    assert 'nmt_requests_total{path="/translate",code="200"} 2' in lines
    assert 'nmt_requests_total{path="/translate",code="413"} 1' in lines
    # Buckets count cumulatively, +Inf counts all.
    assert 'nmt_request_seconds_bucket{le="0.005"} 1' in lines
    assert 'nmt_request_seconds_bucket{le="0.25"} 2' in lines
    assert 'nmt_request_seconds_bucket{le="30.0"} 2' in lines
    assert 'nmt_request_seconds_bucket{le="+Inf"} 3' in lines
    assert "nmt_request_seconds_count 3" in lines
    assert 'nmt_batch_sentences_bucket{le="2"} 0' in lines
    assert 'nmt_batch_sentences_bucket{le="4"} 1' in lines
    assert "nmt_queue_sentences 7" in lines
    # Every sample line is `name{labels} value` under a TYPE line of its family.
    families = {line.split()[2] for line in lines if line.startswith("# TYPE")}
    for line in lines:
        if not line.startswith("#"):
            name = line.split("{")[0].split()[0]
            assert any(name == f or name.startswith(f + "_") for f in families), line
            float(line.rsplit(" ", 1)[1])


def test_the_token_comes_from_a_file_or_the_environment(tmp_path, monkeypatch):
    from nmt.errors import NmtError
    from nmt.serving.server import TOKEN_VARIABLE, read_token
    monkeypatch.delenv(TOKEN_VARIABLE, raising=False)
    assert read_token(None) is None
    monkeypatch.setenv(TOKEN_VARIABLE, "from-the-environment-1")
    assert read_token(None) == "from-the-environment-1"
    (tmp_path / "token").write_text("from-a-file-0123456789\n")
    assert read_token(str(tmp_path / "token")) == "from-a-file-0123456789"
    with pytest.raises(NmtError, match="none: cannot read the token"):
        read_token(str(tmp_path / "none"))
    (tmp_path / "token").write_text("short\n")
    with pytest.raises(NmtError, match="at least 16 characters"):
        read_token(str(tmp_path / "token"))


def test_a_batch_waits_for_as_many_sentences_as_the_last_one_had():
    batches = []

    def work(key, lines):
        batches.append(list(lines))
        return list(lines)

    async def scenario():
        batcher = _batcher(work, max_sentences=8, max_wait=5)
        running = asyncio.create_task(batcher.run())
        loop = asyncio.get_running_loop()
        start = loop.time()
        await batcher.submit("k", ["lone"])  # the first batch waits for nobody
        alone = loop.time() - start
        await asyncio.gather(batcher.submit("k", ["a"]), batcher.submit("k", ["b", "c"]))
        # The last batch had 3 sentences: the next waits (up to 5 s) until 3 have come.
        later = [batcher.submit("k", ["d"])]
        await asyncio.sleep(0.1)
        later += [batcher.submit("k", ["e"]), batcher.submit("k", ["f"])]
        await asyncio.gather(*later)
        running.cancel()
        batcher.executor.shutdown()
        return alone

    assert asyncio.run(scenario()) < 4  # not the 5 s a waiting first batch would take
    assert batches == [["lone"], ["a", "b", "c"], ["d", "e", "f"]]


def test_a_failure_inside_the_server_is_one_log_line_and_nothing_for_the_client(caplog):
    import logging
    from types import SimpleNamespace

    from aiohttp.test_utils import TestClient, TestServer

    from nmt.serving.app import State, make_app
    from nmt.serving.model import Settings

    class Broken:  # a model whose search fails
        translator = SimpleNamespace(decode=SimpleNamespace(beam_size=2, alpha=0.5))

        def default(self, **changes):
            return Settings(2, 0.5, 1, False)

        def translate(self, settings, lines):
            raise RuntimeError("kernel failed\nwith a long story")

    async def scenario():
        batcher = Batcher(Broken().translate, 4, 0, 8)
        state = State(Broken(), batcher, Metrics(), protocol.Limits(), 5.0, status="ready")
        running = asyncio.create_task(batcher.run())
        async with TestClient(TestServer(make_app(state, 1024))) as client:
            answer = await client.post("/translate", json={"text": "a"})
            found = answer.status, await answer.json()
        running.cancel()
        batcher.executor.shutdown()
        return found

    with caplog.at_level(logging.INFO, logger="nmt.serve"):
        assert asyncio.run(scenario()) == (500, {"error": "internal error (logged on the server)"})
    assert [r.getMessage() for r in caplog.records if r.name == "nmt.serve"] == [
        "POST /translate: 500: RuntimeError: kernel failed"]


def test_a_host_name_not_found_is_named_in_one_line(monkeypatch):
    import socket

    from nmt.errors import NmtError
    from nmt.serving import server

    def not_found(host, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", not_found)
    settings = server.Settings(models=("unused",), host="no-such-host.invalid", port=8080)
    with pytest.raises(NmtError, match=r"^cannot listen on no-such-host.invalid:8080: "
                                       r"Name or service not known$"):
        asyncio.run(server._serve(settings))


def test_a_token_that_is_not_utf8_is_a_wrong_token():
    from aiohttp.test_utils import TestServer

    from nmt.serving.app import State, make_app

    async def scenario():
        state = State(None, None, Metrics(), protocol.Limits(), 5.0, token="t" * 16,
                      status="ready")
        async with TestServer(make_app(state, 1024)) as server:
            reader, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(b"POST /translate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe"
                         b"\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
            answer = await reader.read()
            writer.close()
        return answer

    answer = asyncio.run(scenario())
    assert answer.startswith(b"HTTP/1.1 401 ") and b'"missing or wrong token' in answer
