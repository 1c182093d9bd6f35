"""`nmt bench`: training and translation speed, printed as one JSON line.

Figures are medians over rounds run in one process, so a neighbour's load drifts over all of them
alike; each line names the machine's core count and the threads used.
"""
from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import time

from nmt import config, data, runtime, textio, train
from nmt.errors import NmtError


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _machine(threads: int) -> dict:
    return {"threads": threads, "cpu_count": os.cpu_count(), "machine": platform.processor() or
            platform.machine(), "python": platform.python_version()}


def bench_train(recipe_path, steps: int = 100, warmup: int = 20, rounds: int = 3,
                threads: int | None = None, overrides=(), started: float | None = None) -> dict:
    """Trains the recipe's model for warmup + rounds * steps batches (no run directory).

    Reports real (non-pad) target tokens per second in the steady state (median over rounds),
    sentences per second derived from it with the corpus's mean target length, the seconds from
    `started` (process start) to the end of the first step, and the peak resident memory.
    """
    started = started or time.perf_counter()
    recipe = config.load_recipe(recipe_path, overrides)
    read, _ = train.checked_corpus(recipe.data)
    tokenizers = train.build_tokenizers(recipe.vocab, read)
    stats = data.corpus_stats(read(), *tokenizers, recipe.data.max_len)
    runtime.import_tensorflow(threads)
    import keras

    from nmt.callbacks import StepTimer

    keras.utils.set_random_seed(recipe.train.seed)
    trainer = train.compiled_trainer(recipe, len(tokenizers[0]), len(tokenizers[1]))
    dataset = data.training_dataset(read, *tokenizers, batch_size=recipe.train.batch_size,
                                    max_len=recipe.data.max_len,
                                    shuffle_buffer=recipe.train.shuffle_buffer,
                                    seed=recipe.train.seed).repeat()
    timer = StepTimer()
    trainer.fit(dataset, steps_per_epoch=1 + warmup + rounds * steps, epochs=1, callbacks=[timer],
              verbose=0, shuffle=False)
    first_step = timer.ends[0] - started
    tokens_per_sentence = stats.target_tokens / max(stats.kept, 1)
    per_round = []
    for r in range(rounds):
        window = slice(1 + warmup + r * steps, 1 + warmup + (r + 1) * steps)
        seconds = sum(timer.seconds[window])
        tokens = sum(timer.tokens[window])
        per_round.append((tokens / seconds, tokens / tokens_per_sentence / seconds,
                          1000 * statistics.median(timer.seconds[window])))
    return {"bench": "train", "recipe": str(recipe_path), "steps_per_round": steps,
            "rounds": rounds, "warmup_steps": warmup, "batch_size": recipe.train.batch_size,
            "parameters": trainer.seq2seq.count_params(),
            "target_tokens_per_sec": round(statistics.median(r[0] for r in per_round), 1),
            "sentences_per_sec": round(statistics.median(r[1] for r in per_round), 2),
            "median_step_ms": round(statistics.median(r[2] for r in per_round), 1),
            "rounds_target_tokens_per_sec": [round(r[0], 1) for r in per_round],
            "time_to_first_step_s": round(first_step, 2), "peak_rss_mib": round(peak_rss_mib()),
            **_machine(runtime.thread_count())}


def bench_translate(model_dir, source: str, beam_size: int | None = None,
                    alpha: float | None = None, length_penalty: str | None = None,
                    batch_size: int | None = None, rounds: int = 3, threads: int | None = None,
                    started: float | None = None) -> dict:
    """Translates a file `rounds` times; reports the median of the rounds after the first.

    The first round includes tracing the search graph; model load time is reported apart.
    """
    started = started or time.perf_counter()
    runtime.import_tensorflow(threads)
    from nmt.translate import Translator

    load_start = time.perf_counter()
    translator = Translator(model_dir, beam_size=beam_size, alpha=alpha, batch_size=batch_size,
                            length_penalty=length_penalty)
    load_seconds = time.perf_counter() - load_start
    lines = list(textio.read_lines(source, allow_blank=True, allow_tab=True))
    timings, output_tokens = [], 0
    for _ in range(max(rounds, 2)):
        start = time.perf_counter()
        found = translator.translate(lines)
        timings.append(time.perf_counter() - start)
        output_tokens = sum(len(t[0].ids) for t in found)
    steady = statistics.median(timings[1:])
    return {"bench": "translate", "model": " + ".join(map(str, translator.model_dirs)),
            "input": str(source),
            "sentences": len(lines), "beam_size": translator.decode.beam_size,
            "alpha": translator.decode.alpha, "length_penalty": translator.decode.length_penalty,
            "batch_size": translator.decode.batch_size,
            "sentences_per_sec": round(len(lines) / steady, 1),
            "target_tokens_per_sec": round(output_tokens / steady, 1),
            "rounds_seconds": [round(t, 3) for t in timings],
            "first_round_s": round(timings[0], 2), "load_s": round(load_seconds, 2),
            "time_to_load_s": round(time.perf_counter() - started - sum(timings), 2),
            "peak_rss_mib": round(peak_rss_mib()), **_machine(runtime.thread_count())}


def bench_export(export_dir, source: str, rounds: int = 3, threads: int | None = None,
                 started: float | None = None) -> dict:
    """Translates a file through an `nmt export` SavedModel, as a serving process would: loads
    it with TensorFlow alone and calls `serving_default` on chunks of the lines as `nmt translate`
    reads them (16 decoding batches). Reports as `bench_translate`, plus the size on disk."""
    from pathlib import Path

    started = started or time.perf_counter()
    tf = runtime.import_tensorflow(threads)
    from nmt.export import SETTINGS_FILE
    export_dir = Path(export_dir)
    try:
        settings = json.loads((export_dir / SETTINGS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise NmtError(f"not an export of `nmt export` ({err})", str(export_dir)) from None
    if settings["tensorflow_text"]:
        import tensorflow_text  # noqa: F401  (registers the SentencePiece ops)
    load_start = time.perf_counter()
    translate = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    load_seconds = time.perf_counter() - load_start
    lines = list(textio.read_lines(source, allow_blank=True, allow_tab=True))
    chunk = 16 * settings["decode"]["batch_size"]
    timings = []
    for _ in range(max(rounds, 2)):
        start = time.perf_counter()
        for first in range(0, len(lines), chunk):
            translate(lines=tf.constant(lines[first:first + chunk], tf.string))
        timings.append(time.perf_counter() - start)
    steady = statistics.median(timings[1:])
    size = sum(p.stat().st_size for p in export_dir.rglob("*") if p.is_file())
    return {"bench": "export", "export": str(export_dir), "input": str(source),
            "sentences": len(lines), "nbest": settings["nbest"],
            **{key: settings["decode"][key]
               for key in ("beam_size", "alpha", "length_penalty", "batch_size")},
            "sentences_per_sec": round(len(lines) / steady, 1),
            "rounds_seconds": [round(t, 3) for t in timings],
            "first_round_s": round(timings[0], 2), "load_s": round(load_seconds, 2),
            "time_to_load_s": round(time.perf_counter() - started - sum(timings), 2),
            "size_mib": round(size / 2**20, 1), "peak_rss_mib": round(peak_rss_mib()),
            **_machine(runtime.thread_count())}


def print_json(result: dict) -> None:
    print(json.dumps(result), flush=True)
