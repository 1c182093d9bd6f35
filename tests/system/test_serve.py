"""`nmt serve` as a real process on a free loopback port, with the session's reverse model: the
answers are `nmt translate`'s, every error is one JSON line naming the field, concurrent clients
get their own answers, a full queue says when to retry, timeouts and clients that leave cancel
their work, the token, an ensemble, SIGTERM draining, and failing at start."""
from __future__ import annotations

import asyncio
import json
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from nmt.serving import load
from tests.helpers import (SERVER_TOKEN, assert_one_line_error, nmt_translate, reverse_pairs,
                           run_nmt)

SOURCES = [source for source, _ in reverse_pairs(12, seed=31)] + [""]
TOKEN = {"Authorization": f"Bearer {SERVER_TOKEN}"}


def call(server, path: str, body=None, headers=None, method=None):
    """(status, headers, body as JSON or text) of one request."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(server.url + path, data=data, headers=headers or {},
                                     method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            status, found, raw = answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as err:
        status, found, raw = err.code, err.headers, err.read()
    text = raw.decode("utf-8")
    return status, found, json.loads(text) if "json" in found.get("Content-Type", "") else text


def links(attention) -> str:
    """`nmt translate --alignments`'s links from an answer's attention weights."""
    weights = attention["weights"]
    return " ".join(f"{max(range(len(row) - 1), key=row.__getitem__)}-{t}"
                    for t, row in enumerate(weights[:-1]))


@pytest.fixture(scope="module")
def with_scores(reverse_translator, tmp_path_factory) -> list[str]:
    """`nmt translate --scores`'s output for SOURCES."""
    return nmt_translate(reverse_translator, tmp_path_factory.mktemp("scores"), SOURCES,
                         scores=True)


def test_the_answers_are_those_of_nmt_translate(reverse_translator, with_scores, reverse_server,
                                                tmp_path):
    status, _, found = call(reverse_server, "/translate", {"text": SOURCES, "scores": True})
    assert status == 200
    assert [f"{t['score']:.4f}\t{t['text']}" for t in found["translations"]] == with_scores

    status, _, found = call(reverse_server, "/translate", {"text": SOURCES, "nbest": 3})
    expected = nmt_translate(reverse_translator, tmp_path, SOURCES, nbest=3)
    assert [f"{i} ||| {t['text']} ||| {t['score']:.4f}" for i, line in
            enumerate(found["translations"]) for t in line["nbest"]] == expected
    assert all(line["text"] == line["nbest"][0]["text"] for line in found["translations"])

    status, _, found = call(reverse_server, "/translate", {"text": SOURCES, "attention": True})
    expected = nmt_translate(reverse_translator, tmp_path, SOURCES, alignments=True)
    assert [f"{t['text']}\t{links(t['attention']) if t['attention'] else ''}"
            for t in found["translations"]] == expected
    first = found["translations"][0]["attention"]
    assert first["source"] == SOURCES[0].split() + ["</s>"]
    assert first["target"] == found["translations"][0]["text"].split() + ["</s>"]
    assert all(abs(sum(row) - 1) < 1e-3 for row in first["weights"])
    assert found["translations"][-1] == {"text": "", "attention": None}  # the blank line

    # Decode settings per request, as `nmt translate --beam-size 1 --alpha 0` would use them.
    status, _, found = call(reverse_server, "/translate",
                            {"text": SOURCES[0], "beam_size": 1, "alpha": 0, "scores": True})
    best = reverse_translator.translate(SOURCES[:1], beam_size=1, alpha=0.0)[0][0]
    assert found == {"translations": [{"text": best.text, "score": pytest.approx(best.score),
                                       "log_prob": pytest.approx(best.log_prob)}]}


BAD = [  # (body, status, the error's start); the server's limits: see `reverse_server`
    (b'{"text": "\xff"}', 400, "body: invalid UTF-8 at byte 10"),
    (b'{"text": [', 400, "body: not JSON"),
    ({"txt": "1 2"}, 400, "txt: unknown field"),
    ({"text": ["1 2", 3]}, 400, "text[1]: expected a string, got a number"),
    ({"text": "1\n2"}, 400, "text: contains a line break"),
    ({"text": "1", "beam_size": "5"}, 400, "beam_size: expected an integer"),
    ({"text": "1", "nbest": 4}, 400, "nbest: 4 is larger than the beam size 3"),
    ({"text": "1", "alpha": "high"}, 400, "alpha: expected a finite number"),
    ({"text": "1", "attention": "yes"}, 400, "attention: expected true or false"),
    ({"text": ["1"] * 17}, 413, "text: 17 lines, more than the limit of 16 per request"),
    ({"text": "1 " * 101}, 413, "text: 202 characters, more than the limit of 200"),
    ({"text": ["1"] * 8, "pad": "x" * 5000}, 413, "body: larger than the limit of 4096 bytes"),
]


def test_every_bad_request_gets_one_line_naming_its_field(reverse_server):
    for body, status, message in BAD:
        found, headers, answer = call(reverse_server, "/translate", body)
        assert (found, answer["error"][:len(message)]) == (status, message), answer
        assert "\n" not in answer["error"] and "Traceback" not in answer["error"]
        assert headers["Content-Type"].startswith("application/json")
    assert call(reverse_server, "/nowhere")[::2] == (404, {"error": "not found: /nowhere"})
    assert call(reverse_server, "/translate")[::2] == (
        405, {"error": "GET is not allowed on /translate"})
    log = reverse_server.log()
    assert "Traceback" not in log
    for _, status, message in BAD:  # one log line per error
        assert sum(f"POST /translate: {status}: " in line and message in line
                   for line in log.splitlines()) >= 1, message


def test_a_body_that_cannot_be_decoded_is_400_and_one_log_line(reverse_server):
    # Content-Encoding: gzip on a body that is not gzip: aiohttp fails while reading it.
    before = reverse_server.log().count("\n")
    found, headers, answer = call(reverse_server, "/translate", b'{"text": "1 2"}',
                                  {"Content-Encoding": "gzip"})
    assert (found, answer["error"]) == (400, "body: cannot be decoded (Can not decode "
                                             "content-encoding: gzip)")
    time.sleep(0.5)  # anything aiohttp would log after answering
    added = reverse_server.log().splitlines()[before:]
    assert "Traceback" not in "\n".join(added)
    assert [line for line in added if "POST /translate" in line] == [
        line for line in added if "400: " in line] and len(added) == 1, added
    assert call(reverse_server, "/translate", {"text": "1 2"})[0] == 200  # the server goes on

def test_a_malformed_http_request_is_one_log_line(reverse_server):
    before = reverse_server.log().count("\n")
    with socket.create_connection(("127.0.0.1", reverse_server.port), timeout=30) as connection:
        connection.sendall(b"POST /translate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                           b"\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n")
        assert connection.recv(100).startswith(b"HTTP/1.0 400 ")  # aiohttp's own answer
    time.sleep(0.5)
    added = reverse_server.log().splitlines()[before:]
    assert len(added) == 1 and "Invalid character in chunk size" in added[0], added
    assert call(reverse_server, "/translate", {"text": "1 2"})[0] == 200

def test_health_and_metrics(reverse_server, reverse_run):
    status, _, health = call(reverse_server, "/health")
    assert status == 200 and health["status"] == "ready"
    assert health["models"] == [str(reverse_run)] and health["decode"]["beam_size"] == 3
    call(reverse_server, "/translate", {"text": ["1 2", "3 4 5"]})
    call(reverse_server, "/translate", {"text": 5})
    status, headers, text = call(reverse_server, "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    values = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
              for line in text.splitlines() if not line.startswith("#")}
    assert values['nmt_requests_total{path="/translate",code="200"}'] >= 1
    assert values['nmt_requests_total{path="/translate",code="400"}'] >= 1
    assert values['nmt_requests_total{path="/health",code="200"}'] >= 1
    assert values['nmt_request_seconds_bucket{le="+Inf"}'] == values["nmt_request_seconds_count"]
    assert values["nmt_batch_sentences_sum"] >= 2 and values["nmt_sentences_total"] >= 2
    assert values["nmt_queue_sentences"] == 0


def test_concurrent_clients_each_get_their_own_answers(reverse_server, reverse_translator):
    sources = [source for source, _ in reverse_pairs(48, seed=32)]
    expected = [found[0].text for found in reverse_translator.translate(sources)]
    before = reverse_server.metrics()["nmt_batch_sentences_count"]
    driven = asyncio.run(load.drive(reverse_server.url, sources, 8, len(sources), keep=True))
    assert driven.statuses == {200: len(sources)}
    assert [driven.answers[i][1]["translations"][0]["text"] for i in range(len(sources))] == \
        expected
    # Requests were merged: fewer decoding batches than requests.
    assert reverse_server.metrics()["nmt_batch_sentences_count"] - before < len(sources)


def test_a_full_queue_answers_503_with_retry_after(reverse_server):
    import aiohttp

    async def flood():
        async with aiohttp.ClientSession() as session:
            async def one():
                async with session.post(reverse_server.url + "/translate",
                                        json={"text": ["1 2 3 4 5 6 7"] * 8}) as answer:
                    return answer.status, answer.headers.get("Retry-After"), await answer.json()
            return await asyncio.gather(*(one() for _ in range(24)))

    found = asyncio.run(flood())  # 192 sentences at once; 24 may wait
    refused = [f for f in found if f[0] == 503]
    assert refused and {f[0] for f in found} == {200, 503}
    assert all(f[1] == "1" and f[2]["error"].startswith("busy: the queue holds") for f in refused)
    assert reverse_server.metrics()["nmt_queue_sentences"] == 0


def test_a_request_that_times_out_is_answered_504(reverse_server):
    # 1 ms: less than any search takes.
    status, _, answer = call(reverse_server, "/translate", {"text": "4 5", "timeout": 0.001})
    assert (status, answer) == (504, {"error": "timeout: not translated within 0.001 s"})
    assert reverse_server.metrics()["nmt_queue_sentences"] == 0


def test_an_ensemble_with_a_token(ensemble_server, reverse_run, with_scores):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": SERVER_TOKEN}):
        status, found, answer = call(ensemble_server, "/translate", {"text": "1 2"}, headers)
        assert status == 401 and found["WWW-Authenticate"] == "Bearer", answer
        assert answer["error"].startswith("missing or wrong token")
    assert call(ensemble_server, "/metrics")[0] == 401
    assert call(ensemble_server, "/metrics", headers=TOKEN)[0] == 200
    status, _, health = call(ensemble_server, "/health")  # open: for load balancers
    assert status == 200 and health["models"] == [str(reverse_run)] * 2
    status, _, found = call(ensemble_server, "/translate", {"text": SOURCES, "scores": True},
                            TOKEN)
    assert [f"{t['score']:.4f}\t{t['text']}" for t in found["translations"]] == with_scores


def test_a_client_that_leaves_cancels_its_translation(ensemble_server):
    gone = ensemble_server.metrics(TOKEN)["nmt_client_gone_total"]
    call(ensemble_server, "/translate", {"text": SOURCES[:4]}, TOKEN)  # the next batch waits
    body = b'{"text": ["6 7 8"]}'
    with socket.create_connection(("127.0.0.1", ensemble_server.port)) as client:
        client.sendall(b"POST /translate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                       b"Content-Length: %d\r\n\r\n%s"
                       % (SERVER_TOKEN.encode(), len(body), body))
    # Gone while its request waited for 3 more sentences (up to 200 ms): taken out of the queue,
    # never decoded.
    deadline = time.monotonic() + 5
    while ensemble_server.metrics(TOKEN)["nmt_client_gone_total"] == gone and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    assert ensemble_server.metrics(TOKEN)["nmt_client_gone_total"] == gone + 1
    assert ensemble_server.metrics(TOKEN)["nmt_queue_sentences"] == 0
    assert ensemble_server.metrics(TOKEN)["nmt_sentences_total"] == \
        ensemble_server.metrics(TOKEN)["nmt_batch_sentences_sum"]
    assert "client disconnected" in ensemble_server.log()


def test_sigterm_finishes_the_requests_in_flight_and_exits_0(ensemble_server):
    answers = []
    clients = [threading.Thread(target=lambda i=i: answers.append(call(
        ensemble_server, "/translate", {"text": SOURCES[i:i + 4]}, TOKEN)[::2]))
        for i in range(4)]
    translated = ensemble_server.metrics(TOKEN)["nmt_batch_sentences_sum"]
    for client in clients:
        client.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until the server has read all 16 sentences: they wait
        counts = ensemble_server.metrics(TOKEN)  # for their batch (200 ms) when the signal comes
        if counts["nmt_queue_sentences"] + counts["nmt_batch_sentences_sum"] - translated >= 16:
            break
        time.sleep(0.01)
    start = time.monotonic()
    ensemble_server.process.terminate()
    for client in clients:
        client.join()
    assert ensemble_server.process.wait(30) == 0
    assert time.monotonic() - start < 10
    assert sorted(status for status, _ in answers) == [200] * 4
    log = ensemble_server.log()
    assert "stopping: finishing the requests in flight" in log and "stopped" in log
    assert "Traceback" not in log
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", ensemble_server.port), timeout=2)


def test_failing_at_start_is_one_line(reverse_run, tmp_path):
    assert_one_line_error(*run_nmt("serve", "--model", tmp_path / "none")[::2],
                          "no such model folder")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert_one_line_error(*run_nmt("serve", "--model", reverse_run, "--port", port)[::2],
                              f"cannot listen on 127.0.0.1:{port}: Address already in use")
    broken = tmp_path / "broken"
    shutil.copytree(reverse_run, broken)
    (broken / "best.weights.h5").write_bytes(b"not weights")
    code, _, err = run_nmt("serve", "--model", broken, "--port", load.free_port())
    assert code == 1 and "Traceback" not in err
    assert err.splitlines()[-1].startswith("nmt: error: ") and "best.weights.h5" in err


def test_the_load_benchmark_measures_a_running_server(reverse_server):
    from nmt import bench
    lines = [source for source, _ in reverse_pairs(8, seed=33)]
    found = bench._serve_memory(reverse_server, lines, clients=4, requests=40, max_seconds=60,
                                settings={})
    assert (found["requests"], found["statuses"]) == (40, {200: 40})
    assert len(found["rss_mib_samples"]) == 11 and found["peak_rss_mib"] >= max(
        found["rss_mib_samples"]) > 0
