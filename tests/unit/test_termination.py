import os
import signal
import threading
import time

import pytest

from nmt.data import batching
from nmt.system import termination
from vocab import words


def test_a_stop_is_seen_by_other_threads_and_raised_where_the_caller_chooses():
    before = signal.getsignal(signal.SIGTERM)
    seen = []

    def worker():
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 10
        while not termination.stop_requested() and time.monotonic() < deadline:
            time.sleep(0.01)
        seen.append(termination.stop_requested())

    with termination.handled():
        assert not termination.stop_requested()
        termination.raise_if_stop_requested()  # nothing to raise yet
        thread = threading.Thread(target=worker)
        with pytest.raises(termination.Terminated):  # the main thread's handler
            thread.start()
            thread.join()
        thread.join()
        assert seen == [True]  # the worker saw it without the main thread's help
        with pytest.raises(termination.Terminated):
            termination.raise_if_stop_requested()
    assert signal.getsignal(signal.SIGTERM) is before
    assert not termination.stop_requested()  # over with its `handled` block: a later training
    termination.raise_if_stop_requested()  # in the same process (the API, tests) runs on
    with termination.handled():  # a new run starts without the old stop
        assert not termination.stop_requested()


def test_sigterm_cuts_the_shuffle_buffer_fill_short(tf):
    """The training reader runs in a tf.data thread while the main thread waits for the first
    batch, which needs the whole shuffle buffer: a SIGTERM must end the reading there."""
    tokenizer = words.WordTokenizer.train(["a b c"], size=10)
    read = []

    def read_pairs():
        for index in range(200_000):
            if index == 1_000:
                os.kill(os.getpid(), signal.SIGTERM)  # arrives while TensorFlow fills
            read.append(index)
            yield "a b", "c"

    dataset = batching.training_dataset(read_pairs, tokenizer, tokenizer, batch_size=16, max_len=10,
                                        shuffle_buffer=1_000_000, seed=1)
    with termination.handled():
        with pytest.raises(termination.Terminated):
            for _ in dataset:
                pass
            time.sleep(1)  # the handler, kept out of TensorFlow's own code, raises soon after
    # The reader checks for a stop every 64 items, but the handler runs in the main thread when
    # it is next scheduled (1 signal in 1,000 waits over 6 ms on a loaded machine): a margin.
    assert 1_000 <= len(read) < 10_000  # not the 200,000 the full buffer would have read


def test_a_polled_stop_waits_for_the_caller_and_a_second_one_does_not():
    with termination.handled():
        with termination.polled():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)  # the handler has run: it recorded the stop and returned
            assert termination.stop_requested() and not termination.items_cut_short()
            with pytest.raises(termination.Terminated):  # a loop that no longer checks
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(1)
        with pytest.raises(termination.Terminated):
            termination.raise_if_stop_requested()
        assert list(termination.until_stop_requested(range(10))) == []
        assert termination.items_cut_short()
    assert not termination.items_cut_short()  # a later run starts whole
