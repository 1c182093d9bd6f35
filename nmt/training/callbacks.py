"""Training callbacks that Keras does not have: the stop check, dev BLEU, throughput, the
learning-curve picture and the run checkpoint.

Order matters: StopOnSignal comes first; DevBleu writes logs["val_bleu"] before ReduceLROnPlateau,
EarlyStopping and RunCheckpoint read it, and RunCheckpoint saves their state after they have
updated it.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import Sequence

import keras

from nmt.evaluation import metrics
from nmt.search.decoding import Searcher, search_all
from nmt.storage import rundir
from nmt.system import profiling, runtime, termination

log = logging.getLogger("nmt")

# Attributes of Keras's EarlyStopping / ReduceLROnPlateau that make up their state across epochs.
_CALLBACK_STATE = ("wait", "best", "best_epoch", "cooldown_counter")


class StopOnSignal(keras.callbacks.Callback):
    """Ends training after SIGTERM / Ctrl-C, which `termination.polled` only records during fit.

    After a batch, or before the next epoch's first: that epoch is not scored or saved. When the
    epoch's training is over (this callback comes first at its end): an epoch whose input the
    stop cut short (`termination.items_cut_short`) is not scored or saved either; a whole one is
    scored and committed by the callbacks after this one, then fit returns (`stop_training`) for
    the caller to raise."""

    def __init__(self):
        super().__init__()
        self.input_cut_short = False

    def on_epoch_begin(self, epoch, logs=None):
        termination.raise_if_stop_requested()  # came after the last epoch was committed

    def on_train_batch_end(self, batch, logs=None):
        # The main thread is inside TensorFlow's steps nearly all the epoch: this is where a stop
        # is seen within a second (the epoch's end may be minutes away).
        termination.raise_if_stop_requested()

    def on_test_begin(self, logs=None):
        # The epoch's training input is over: whether the stop cut it short is decided now, not
        # by a reader still prefetching while the dev set is scored.
        self.input_cut_short = termination.items_cut_short()
        if self.input_cut_short:
            termination.raise_if_stop_requested()

    def on_epoch_end(self, epoch, logs=None):
        if not termination.stop_requested():
            return
        if self.input_cut_short:
            termination.raise_if_stop_requested()  # raises: the stop cut this epoch short
        self.model.stop_training = True


class DevBleu(keras.callbacks.Callback):
    """Greedy-decodes the dev set after each epoch and puts its BLEU in logs["val_bleu"]."""

    def __init__(self, sources: Sequence[Sequence[int]], references: Sequence[str],
                 tgt_tokenizer, tokenize: str, decode_config):
        super().__init__()
        self.sources, self.references = sources, references
        self.tgt_tokenizer, self.tokenize = tgt_tokenizer, tokenize
        self.decode = dataclasses.replace(decode_config, beam_size=1)  # greedy
        self.searcher = None

    def on_train_begin(self, logs=None):
        self.searcher = Searcher(self.model.seq2seq)

    def on_epoch_end(self, epoch, logs=None):
        start = time.perf_counter()
        self.searcher.refresh()  # the weights changed during the epoch
        found = search_all(self.searcher, self.sources, self.decode)
        hypotheses = [self.tgt_tokenizer.decode(hyps[0].ids) for hyps in found]
        logs["val_bleu"] = metrics.bleu(hypotheses, self.references, self.tokenize).score
        logs["bleu_seconds"] = time.perf_counter() - start


class EpochSummary(keras.callbacks.Callback):
    """Adds tokens/s (training time only), perplexities, the learning rate and the epoch's
    wall-clock seconds (dev evaluation included: callbacks listed before this one) to the logs."""

    def on_train_begin(self, logs=None):
        self.first_update = True

    def on_train_batch_end(self, batch, logs=None):
        if self.first_update:  # what starting costs: vocabularies, data, model, tracing
            self.first_update = False
            since = runtime.seconds_since_start()
            log.info("first update %s; peak memory %.0f MiB so far",
                     f"{since:.1f} s after the command started" if since else "done",
                     runtime.peak_rss_mib())

    def on_epoch_begin(self, epoch, logs=None):
        self.start, self.train_seconds = time.perf_counter(), None

    def on_test_begin(self, logs=None):
        if self.train_seconds is None:  # validation starts: the training part of the epoch ends
            self.train_seconds = time.perf_counter() - self.start

    def on_epoch_end(self, epoch, logs=None):
        logs["epoch_seconds"] = time.perf_counter() - self.start
        seconds = self.train_seconds or logs["epoch_seconds"]
        logs["train_seconds"] = seconds
        logs["tokens_per_sec"] = logs.get("target_tokens", 0.0) / max(seconds, 1e-9)
        for prefix in ("", "val_"):
            if f"{prefix}nll" in logs:
                logs[f"{prefix}ppl"] = math.exp(min(float(logs[f"{prefix}nll"]), 50.0))
        logs["learning_rate"] = float(
            keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        log.info("epoch %d: train ppl %.2f | dev ppl %.2f | dev BLEU %.2f | %.0f target tokens/s "
                 "| lr %.2g", epoch + 1, logs.get("ppl", math.nan), logs.get("val_ppl", math.nan),
                 logs.get("val_bleu", math.nan), logs["tokens_per_sec"], logs["learning_rate"])


class LearningCurve(keras.callbacks.Callback):
    """Redraws the run's learning_curve.png from its metrics.csv (list it after the CSVLogger)."""

    def __init__(self, run: rundir.RunDir):
        super().__init__()
        self.run = run

    def on_epoch_end(self, epoch, logs=None):
        from nmt.evaluation import curves, plotting
        plotting.learning_curves([curves.run_curve(self.run.metrics, self.run.root.name)],
                                 self.run.learning_curve)


class RunCheckpoint(keras.callbacks.Callback):
    """Commits every finished epoch to the run directory (see `rundir.commit_epoch`).

    Runs under a `Seq2SeqTrainer`: best/last hold the translation model's weights, the resume
    weights the trainer's (with the optimizer). Also restores the state of the stateful Keras
    callbacks it is given (early stopping, plateau decay) when training resumes. Keras's own
    BackupAndRestore keeps only weights and the epoch number, and writes its files in place, so a
    kill while it writes can leave them unloadable.

    Args:
        run: the RunDir.
        stateful: name -> callback whose `_CALLBACK_STATE` attributes are saved and restored.
        resumed: the state read from the run directory, or None.
        is_chief: only the chief of a multi-worker run writes files.
    """

    def __init__(self, run: rundir.RunDir, stateful: dict, resumed: dict | None,
                 is_chief: bool = True, monitor: str = "val_bleu", keep_best: int = 1,
                 keep_last: int = 1):
        super().__init__()
        self.run, self.stateful, self.resumed = run, stateful, resumed
        self.keep_best, self.keep_last = keep_best, keep_last
        self.is_chief, self.monitor = is_chief, monitor
        self.best = (resumed or {}).get("best", -math.inf)

    def on_train_begin(self, logs=None):
        saved = (self.resumed or {}).get("callbacks", {})
        for name, callback in self.stateful.items():
            for attribute, value in saved.get(name, {}).items():
                setattr(callback, attribute, value)

    def on_epoch_end(self, epoch, logs=None):
        value = float(logs[self.monitor])
        improved = value > self.best
        if improved:
            self.best = value
        if self.is_chief:
            callback_state = {name: {a: _plain(getattr(cb, a)) for a in _CALLBACK_STATE
                                     if hasattr(cb, a)} for name, cb in self.stateful.items()}
            rundir.commit_epoch(self.run, self.model, {
                "epoch": epoch + 1, "best": self.best, "callbacks": callback_state}, value,
                self.keep_best, self.keep_last)


def _plain(value):
    """JSON-friendly copy of a callback attribute (numpy scalars to Python numbers)."""
    return value.item() if hasattr(value, "item") else value


class ProfiledSteps(keras.callbacks.Callback):
    """Profiles `count` training steps from step `first` of a `fit`
    (`nmt.system.profiling`): after it, `found` holds what they spent time on."""

    def __init__(self, first: int, count: int):
        super().__init__()
        self.first, self.last = first, first + count - 1
        self.session, self.found = profiling.Session(), None

    def on_train_batch_begin(self, batch, logs=None):
        if batch == self.first:
            self.session.start()

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.last:
            self.found = self.session.stop()


class StepTimer(keras.callbacks.Callback):
    """Records each training step's duration, end time and real target tokens (for benchmarks),
    and the process's CPU seconds during the step (robust to other processes on the cores)."""

    def __init__(self):
        super().__init__()
        self.seconds, self.cpu_seconds, self.tokens, self.ends = [], [], [], []
        self._seen = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._seen = 0.0  # the token count restarts with each epoch (and each `fit`)

    def on_train_batch_begin(self, batch, logs=None):
        self._start, self._cpu_start = time.perf_counter(), time.process_time()

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        self.seconds.append(now - self._start)
        self.cpu_seconds.append(time.process_time() - self._cpu_start)
        self.ends.append(now)
        seen = float(logs["target_tokens"])  # cumulative over the epoch
        self.tokens.append(seen - self._seen)
        self._seen = seen
