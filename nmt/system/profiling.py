"""Where the time of some TensorFlow work goes: `profile` runs it under TensorFlow's profiler
(`tf.profiler.experimental`) and sums each op's own time by the part of the model its name scope
names.

The profiler writes an XSpace (`*.xplane.pb`): per thread a line of events, an event per op
kernel run named "scope/.../op:OpType", nested in the executor's own events (and function calls
in their callers). Each event's own time is its duration less that of the events nested in it;
an op's own time goes to the first group (`GROUPS`) one of its scope's names belongs to. What no
op's own time covers is the executor's (`tf_executor`: the own time of its events on the threads
that run ops) or else Python's, op dispatch's or waiting (`python_dispatch_other`, the rest of the
work's wall-clock time).
"""
from __future__ import annotations

import glob
import os
import re
import tempfile
import time
from typing import Callable

from nmt.system import runtime

# (group, the op types or scope names that put an op in it), first match first: an attention
# inside the decoder loop counts as attention, the output layer's gradient as the output's.
GROUPS = (("input_pipeline", {"IteratorGetNext", "IteratorGetNextAsOptional",
                              "OptionalGetValue", "OptionalHasValue"}),
          ("optimizer", {"optimizer"}),
          ("output_and_loss", {"output", "loss"}),
          ("attention", {"attention"}),
          ("encoder", {"encoder"}),
          ("decoder_loop", {"decoder"}),
          ("search", {"search"}))
# Ops in no group's scope; TensorFlow's executor between ops (scheduling them, while loops);
# then the time neither covers: Python (Keras's loop, the search's), dispatch, waiting.
OTHER_OPS, EXECUTOR, PYTHON_DISPATCH = "other_ops", "tf_executor", "python_dispatch_other"
NAMES = tuple(name for name, _ in GROUPS) + (OTHER_OPS, EXECUTOR, PYTHON_DISPATCH)

_OP_EVENT = re.compile(r"^([^\s:]+):([A-Za-z_]\w*)$")
_LAYER_SUFFIX = re.compile(r"_\d+$")  # Keras names a layer's second call "decoder_1"


def group_of(event_name: str) -> str | None:
    """The group of a profiler event named "scope/.../op:OpType"; None for events that are no op
    (the executor's, the Python API's)."""
    found = _OP_EVENT.match(event_name)
    if not found:
        return None
    scopes = {_LAYER_SUFFIX.sub("", part) for part in found.group(1).split("/")}
    for name, keys in GROUPS:
        if found.group(2) in keys or scopes & keys:
            return name
    return OTHER_OPS


class Session:
    """One profiled stretch of work: `start()`, the work, then `stop()` gives what `profile`
    returns (for work that a loop runs, as Keras's `fit` runs steps between callbacks)."""

    def start(self) -> None:
        import tensorflow as tf
        self._folder = tempfile.TemporaryDirectory(prefix="nmt-profile-")
        with runtime.quiet_stderr():  # the profiler's C++ chatter
            tf.profiler.experimental.start(self._folder.name)
        self._start, self._cpu_start = time.perf_counter(), time.process_time()

    def stop(self) -> dict:
        import tensorflow as tf
        seconds = time.perf_counter() - self._start
        cpu_seconds = time.process_time() - self._cpu_start
        try:
            with runtime.quiet_stderr():
                tf.profiler.experimental.stop()
            found = glob.glob(os.path.join(self._folder.name, "**", "*.xplane.pb"),
                              recursive=True)
            with open(found[0], "rb") as handle:
                owned = _own_times(handle.read())
        finally:
            self._folder.cleanup()
        spent = {name: owned.get(name, 0.0) for name in NAMES}
        total = max(seconds, sum(spent.values()))
        spent[PYTHON_DISPATCH] = total - sum(spent.values())
        return {"seconds": round(seconds, 3), "cpu_seconds": round(cpu_seconds, 3),
                "ms": {name: round(1000 * value, 3) for name, value in spent.items()},
                "shares": {name: round(value / total, 4) for name, value in spent.items()}}


def profile(work: Callable[[], object]) -> dict:
    """Runs `work()` under the profiler. Returns its wall-clock and CPU seconds (`seconds`,
    `cpu_seconds`: the process's, well below the wall clock when other processes share the
    cores, whose time then falls in the gaps between ops), and per group of `NAMES` the
    milliseconds (`ms`) and share of the wall-clock time (`shares`, summing to 1); ops of threads
    that run at once can together take longer than the wall clock, the shares are then of their
    sum. The input pipeline's own threads are not counted: the step waits for them in
    "input_pipeline"."""
    session = Session()
    session.start()
    try:
        work()
    finally:
        found = session.stop()
    return found


def _own_times(serialized: bytes) -> dict:
    """Seconds of own time by group on the host's threads other than tf.data's."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2
    space = xplane_pb2.XSpace()
    space.ParseFromString(serialized)
    owned: dict = {}
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        names = {key: meta.name for key, meta in plane.event_metadata.items()}
        for line in plane.lines:
            events = sorted(line.events, key=lambda e: (e.offset_ps, -e.duration_ps))
            if line.name.startswith("tf_data"):
                continue
            for event, own in _own(events):
                group = group_of(names[event.metadata_id])
                if group is None and line.name != "python":  # Python's thread mostly waits
                    group = EXECUTOR if names[event.metadata_id].startswith("Executor") else None
                if group is not None:
                    owned[group] = owned.get(group, 0.0) + own / 1e12
    return owned


def _own(events):
    """(event, its duration less its direct children's) for events sorted by start, longest
    first at equal starts: a child starts and ends within its parent."""
    stack, owned = [], []
    for event in events:
        end = event.offset_ps + event.duration_ps
        while stack and stack[-1][1] < end:
            stack.pop()
        entry = [event, end, event.duration_ps]
        if stack:
            stack[-1][2] -= event.duration_ps
        stack.append(entry)
        owned.append(entry)
    return [(event, own) for event, _, own in owned]

