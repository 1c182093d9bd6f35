"""The server's counters, written in the Prometheus text format (version 0.0.4) for `GET /metrics`:
requests by path and status, the latency of translations, the size of decoding batches, the
queue depth, sentences translated, requests whose client left."""
from __future__ import annotations

import bisect
import collections
from typing import Sequence

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Histogram:
    """Counts of observations at or below each bound, their sum and count."""

    def __init__(self, bounds: Sequence[float]):
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last: above every bound
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def lines(self, name: str) -> list[str]:
        found, running = [], 0
        for bound, count in zip(self.bounds + ("+Inf",), self.counts):
            running += count
            found.append(f'{name}_bucket{{le="{bound}"}} {running}')
        return found + [f"{name}_sum {self.sum:.6f}", f"{name}_count {running}"]


class Metrics:
    def __init__(self):
        self.requests: collections.Counter = collections.Counter()  # (path, status) -> count
        self.latency = Histogram(LATENCY_BUCKETS)
        self.batches = Histogram(BATCH_BUCKETS)
        self.sentences = 0
        self.client_gone = 0

    def answered(self, path: str, status: int) -> None:
        self.requests[path, status] += 1

    def render(self, queued: int) -> str:
        """The text of `GET /metrics`; `queued`: sentences waiting for the model now."""
        out = ["# HELP nmt_requests_total HTTP requests answered, by path and status code.",
               "# TYPE nmt_requests_total counter"]
        out += [f'nmt_requests_total{{path="{path}",code="{status}"}} {count}'
                for (path, status), count in sorted(self.requests.items())]
        out += ["# HELP nmt_request_seconds Time to answer POST /translate (translated ones).",
                "# TYPE nmt_request_seconds histogram", *self.latency.lines("nmt_request_seconds"),
                "# HELP nmt_batch_sentences Sentences per decoding batch.",
                "# TYPE nmt_batch_sentences histogram", *self.batches.lines("nmt_batch_sentences"),
                "# HELP nmt_queue_sentences Sentences waiting for the model.",
                "# TYPE nmt_queue_sentences gauge", f"nmt_queue_sentences {queued}",
                "# HELP nmt_sentences_total Sentences translated.",
                "# TYPE nmt_sentences_total counter", f"nmt_sentences_total {self.sentences}",
                "# HELP nmt_client_gone_total Translations cancelled: the client disconnected.",
                "# TYPE nmt_client_gone_total counter", f"nmt_client_gone_total {self.client_gone}"]
        return "\n".join(out) + "\n"
