"""Ctrl-C inside `termination.handled`, in a fresh interpreter: signal dispositions and masks are
process-wide, and what earlier tests' libraries left in this one must not decide the result."""
import subprocess
import sys

CTRL_C = r"""
import signal, threading
from nmt.system import termination
# A shell starts background jobs with SIGINT ignored, and `handled` then leaves it ignored.
signal.signal(signal.SIGINT, signal.default_int_handler)
with termination.handled():
    assert list(termination.until_stop_requested(range(1000), every=8)) == list(range(1000))
    try:
        for number in termination.until_stop_requested(range(1000), every=8):
            if number == 50:  # to this thread: delivered before pthread_kill returns
                signal.pthread_kill(threading.get_ident(), signal.SIGINT)
        raise SystemExit("the Ctrl-C did not raise KeyboardInterrupt")
    except KeyboardInterrupt:
        pass
    assert termination.stop_requested()
    assert list(termination.until_stop_requested(range(1000), every=8)) == []
    try:
        termination.raise_if_stop_requested()
        raise SystemExit("no KeyboardInterrupt after the stop")
    except KeyboardInterrupt as raised:
        assert not isinstance(raised, termination.Terminated)
assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
print("ok")
"""


def test_until_stop_requested_ends_the_items_after_a_ctrl_c():
    done = subprocess.run([sys.executable, "-c", CTRL_C], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr[-2000:]
