"""SIGTERM and Ctrl-C while the main thread waits inside TensorFlow.

Python runs signal handlers in the main thread, between bytecodes. At the start of each training
epoch the main thread waits in one TensorFlow call while a tf.data thread fills the shuffle
buffer from the corpus reader (seconds on an idle core, a minute on a loaded one), so a signal
would be handled only after the whole corpus had been read. The C-level handler, though, writes
the signal number to the wakeup fd at once: the reader polls it (`stop_requested`) and stops
feeding, the call returns, and the handler raises as usual.

Inside `polled` (training's `fit`) the handler only records the stop, and the training loop ends
at a point of its choosing: after a batch (that epoch is not saved), or once a finished epoch is
scored and committed. A raise at any moment could land in the middle of the end-of-epoch work
and throw away minutes of training for a stop that came a second too late. A second signal
raises at once, for a loop that no longer reaches its checks.
"""
from __future__ import annotations

import _thread
import contextlib
import os
import signal
import threading
from typing import Iterable, Iterator, TypeVar

Item = TypeVar("Item")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_wakeup_read_end: int | None = None
_stop_signal: int | None = None  # the first stop signal seen by `stop_requested` or a handler
_polled = False  # inside `polled`: the first stop is recorded, not raised
_recorded_while_polled = False  # the handler has recorded one: the next raises
_items_cut_short = False  # `until_stop_requested` ended its items early


class Terminated(KeyboardInterrupt):
    """SIGTERM (timeout, docker stop, schedulers): unwound like Ctrl-C, so temporaries go."""


def _raising(exception: type[BaseException]):
    """A handler that raises `exception`, though never inside TensorFlow's Python code."""
    def handler(signum, frame):
        global _stop_signal, _recorded_while_polled
        if _polled and not _recorded_while_polled:
            _recorded_while_polled = True
            if _stop_signal is None:  # else a reader thread saw it first, in the wakeup fd
                _stop_signal = signum
            return
        if frame is not None and frame.f_globals.get("__name__", "").startswith("tensorflow"):
            # There TensorFlow may be turning a C++ error (the reader stopped: end of data) into
            # a Python one, which a raise would break (pybind11 "MISMATCH"): signal again soon.
            threading.Timer(0.01, _thread.interrupt_main, (signum,)).start()
            return
        raise exception
    return handler


@contextlib.contextmanager
def handled():
    """Within: SIGTERM raises `Terminated` (SIGINT `KeyboardInterrupt`) in the main thread, and
    `stop_requested` sees either the moment it arrives. Only the main thread can install
    handlers: elsewhere a no-op."""
    global _wakeup_read_end, _stop_signal, _items_cut_short
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    read_end, write_end = os.pipe()
    for end in (read_end, write_end):
        os.set_blocking(end, False)
    previous_handlers = {signal.SIGTERM: signal.signal(signal.SIGTERM, _raising(Terminated))}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not ignored (`cmd &`)
        previous_handlers[signal.SIGINT] = signal.signal(signal.SIGINT,
                                                         _raising(KeyboardInterrupt))
    previous_fd = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    # A library may leave the stop signals blocked in this thread; the handler must run here.
    previous_mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    _stop_signal, _items_cut_short = None, False
    _wakeup_read_end = read_end
    try:
        yield
    finally:
        _wakeup_read_end = None
        # Training called outside `handled` (tests, the API) must not stop.
        _stop_signal, _items_cut_short = None, False
        signal.set_wakeup_fd(previous_fd)
        signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
        for signum, previous_handler in previous_handlers.items():
            signal.signal(signum, previous_handler)
        os.close(read_end)
        os.close(write_end)


@contextlib.contextmanager
def polled():
    """Within: a first SIGTERM / SIGINT is only recorded, for the caller to act on at points it
    chooses (`stop_requested`, `raise_if_stop_requested`); a second one raises."""
    global _polled, _recorded_while_polled
    _polled, _recorded_while_polled = True, False
    try:
        yield
    finally:
        _polled = False


def stop_requested() -> bool:
    """Whether SIGTERM or SIGINT has arrived inside `handled` (callable from any thread)."""
    global _stop_signal
    read_end = _wakeup_read_end
    if read_end is not None and _stop_signal is None:
        try:
            arrived = os.read(read_end, 512)
        except OSError:  # nothing arrived (BlockingIOError), or the pipe just closed
            arrived = b""
        _stop_signal = next((signum for signum in STOP_SIGNALS if signum in arrived), None)
    return _stop_signal is not None


def raise_if_stop_requested() -> None:
    """Raises `Terminated` after a SIGTERM, `KeyboardInterrupt` after a SIGINT: at a point chosen
    by the caller, where no half-done work can be mistaken for done work."""
    if stop_requested():
        raise Terminated if _stop_signal == signal.SIGTERM else KeyboardInterrupt


def until_stop_requested(items: Iterable[Item], every: int = 64) -> Iterator[Item]:
    """`items`, ending early once a stop is requested (checked every `every` items)."""
    global _items_cut_short
    for index, item in enumerate(items):
        if index % every == 0 and stop_requested():
            _items_cut_short = True
            return
        yield item


def items_cut_short() -> bool:
    """Whether `until_stop_requested` ended its items early: what they fed is not whole."""
    return _items_cut_short
