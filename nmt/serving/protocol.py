"""The JSON of `POST /translate`: a request body checked field by field into a `Request`, and the
translations written back as JSON.

Every refusal is a `Refused` with the HTTP status and a one-line message naming the field, e.g.
`text[3]: expected a string, got a number`, so a client knows what to fix.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

MAX_BEAM = 64  # a request's beam is bounded: search memory grows with it


class Refused(Exception):
    """A request the server will not translate: `status` (400, 413...) and a one-line reason."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.headers = status, headers


@dataclass(frozen=True)
class Limits:
    max_lines: int = 64  # lines per request (413 above)
    max_line_chars: int = 2000  # characters per line (413 above); tokens past the model's
    # decode.max_input_len are cut into pieces as `nmt translate` cuts them


@dataclass(frozen=True)
class Request:
    lines: tuple
    beam_size: int | None  # None: the server's default
    alpha: float | None
    nbest: int
    scores: bool
    attention: bool
    timeout: float | None  # seconds; None: the server's


FIELDS = {"text", "beam_size", "alpha", "nbest", "scores", "attention", "timeout"}


def parse(body: bytes, limits: Limits, default_beam: int) -> Request:
    """The request in `body`, checked; raises `Refused` (400 or 413) naming the first bad field."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise Refused(400, f"body: invalid UTF-8 at byte {err.start}") from None
    try:
        values = json.loads(text)
    except ValueError as err:  # JSONDecodeError; RecursionError is not one, caught below
        raise Refused(400, f"body: not JSON ({err})") from None
    except RecursionError:
        raise Refused(400, "body: JSON nested too deeply") from None
    if not isinstance(values, dict):
        raise Refused(400, f"body: expected a JSON object, got {_kind(values)}")
    unknown = sorted(set(values) - FIELDS)
    if unknown:
        raise Refused(400, f"{unknown[0]}: unknown field (expected {', '.join(sorted(FIELDS))})")
    if "text" not in values:
        raise Refused(400, "text: missing (a string or a list of strings)")
    lines = _lines(values["text"], limits)
    beam_size = _integer(values, "beam_size", 1, MAX_BEAM)
    nbest = _integer(values, "nbest", 1, MAX_BEAM) or 1
    if nbest > (beam_size or default_beam):
        raise Refused(400, f"nbest: {nbest} is larger than the beam size "
                      f"{beam_size or default_beam}")
    alpha = values.get("alpha")
    if alpha is not None and (not _is_number(alpha) or not math.isfinite(alpha) or alpha < 0):
        raise Refused(400, f"alpha: expected a finite number >= 0, got {_shown(alpha)}")
    timeout = values.get("timeout")
    if timeout is not None and (not _is_number(timeout) or not 0 < timeout < math.inf):
        raise Refused(400, f"timeout: expected seconds > 0, got {_shown(timeout)}")
    return Request(lines, beam_size, None if alpha is None else float(alpha), nbest,
                   _flag(values, "scores"), _flag(values, "attention"),
                   None if timeout is None else float(timeout))


def _lines(text, limits: Limits) -> tuple:
    if isinstance(text, str):
        found, names = [text], ["text"]
    elif isinstance(text, list):
        found, names = text, [f"text[{i}]" for i in range(len(text))]
        if not text:
            raise Refused(400, "text: empty list (nothing to translate)")
    else:
        raise Refused(400, f"text: expected a string or a list of strings, got {_kind(text)}")
    if len(found) > limits.max_lines:
        raise Refused(413, f"text: {len(found)} lines, more than the limit of {limits.max_lines} "
                      f"per request")
    for line, name in zip(found, names):
        if not isinstance(line, str):
            raise Refused(400, f"{name}: expected a string, got {_kind(line)}")
        if len(line) > limits.max_line_chars:
            raise Refused(413, f"{name}: {len(line)} characters, more than the limit of "
                          f"{limits.max_line_chars} per line")
        # The rules of `nmt translate`'s input lines: one line each, no NUL; TABs are text.
        for bad, what in (("\n", "a line break"), ("\r", "a carriage return"),
                          ("\0", "a NUL character")):
            if bad in line:
                raise Refused(400, f"{name}: contains {what} (send one line per list item)")
        if any(0xD800 <= ord(c) <= 0xDFFF for c in line):
            raise Refused(400, f"{name}: contains a lone surrogate (not valid UTF-8)")
    return tuple(found)


def _integer(values: dict, name: str, lowest: int, highest: int) -> int | None:
    value = values.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lowest <= value <= highest:
        raise Refused(400, f"{name}: expected an integer from {lowest} to {highest}, got "
                      f"{_shown(value)}")
    return value


def _flag(values: dict, name: str) -> bool:
    value = values.get(name, False)
    if not isinstance(value, bool):
        raise Refused(400, f"{name}: expected true or false, got {_shown(value)}")
    return value


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _kind(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), "a number")


def _shown(value) -> str:
    shown = json.dumps(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."


def translation_json(found: list, request: Request, attention: list | None,
                     source_tokens: list | None, target_tokens: list | None) -> dict:
    """One line's answer: its best text; with `scores`, the score and log-probability; with
    `nbest` > 1, the n-best list (each with its score, as `nmt translate --nbest` writes); with
    `attention`, the weights [target tokens + </s>][source tokens + </s>] (null for a blank line
    or one cut into pieces)."""
    best = found[0]
    answer = {"text": best.text}
    if request.scores:
        answer.update(score=_finite(best.score), log_prob=_finite(best.log_prob))
    if request.nbest > 1:
        answer["nbest"] = [{"text": t.text, "score": _finite(t.score),
                            "log_prob": _finite(t.log_prob)} for t in found]
    if request.attention:
        answer["attention"] = None if attention is None else {
            "source": source_tokens, "target": target_tokens,
            "weights": [[round(float(w), 4) for w in row] for row in attention]}
    return answer


def _finite(value: float) -> float | None:
    """JSON has no infinity: an empty rank's -inf score is null."""
    return float(value) if math.isfinite(value) else None
