"""`nmt bench`: training, translation and serving speed, printed as JSON lines (one per precision,
per client count).

Figures are medians over rounds run in one process, so a neighbour's load drifts over all of them
alike; each line names the machine's core count, its CPU's bfloat16 instructions (`cpu_bf16`),
the threads used, and the peak memory of the whole process.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Iterator, Sequence

from nmt.config import recipes
from nmt.data import batching, prepare
from nmt.errors import NmtError
from nmt.files import textio
from nmt.storage import prepared
from nmt.system import distribute, precision, runtime
from nmt.training import initialization, setup


def _machine(threads: int) -> dict:
    return {"threads": threads, "cpu_count": os.cpu_count(), "machine": platform.processor() or
            platform.machine(), "cpu_model": _cpu_model(),
            "cpu_bf16": precision.cpu_bf16_support(), "python": platform.python_version()}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            return next((line.split(":", 1)[1].strip() for line in handle
                         if line.startswith("model name")), "")
    except OSError:
        return ""


@contextlib.contextmanager
def _training_data(recipe_path, overrides, threads: int | None):
    """(recipe, tokenizers, corpus stats, the repeated training dataset, dev pairs, the
    recipe's tf.distribute strategy) of a recipe, TensorFlow started with `threads` (and
    `train.replicas` CPU devices). The recipe's prepared data (`data.prepared`) is used,
    else the corpus is prepared into a temporary folder (its time counts in the time to the
    first step, as in a training), removed at the end."""
    recipe = initialization.with_absolute_paths(recipes.load_recipe(recipe_path, overrides))
    dev_pairs = prepare.read_dev(recipe.data)
    with contextlib.ExitStack() as stack:
        if recipe.data.prepared:
            data = prepared.Prepared(recipe.data.prepared)
            data.check_matches(recipe)
        else:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nmt-bench-")))
            data = prepared.prepare_data(recipe, folder / "prepared")
        tokenizers = data.tokenizers()
        distribute.use_cpu_replicas(recipe.train.replicas, threads)
        strategy = distribute.make_strategy(recipe.train.distribution)
        dataset, steps = setup.training_dataset(recipe, data, tokenizers, recipe.train.seed,
                                                strategy.num_replicas_in_sync)
        yield (recipe, tokenizers, data.stats(), dataset if steps else dataset.repeat(),
               dev_pairs, strategy)


def bench_train(recipe_path, steps: int = 100, warmup: int = 20, rounds: int = 3,
                threads: int | None = None, overrides=(), precisions: Sequence[str] | None = None,
                started: float | None = None) -> list[dict]:
    """Trains the recipe's model for warmup + rounds * steps steps (no run directory), each
    step one update: `train.accumulate` batches, under the recipe's `train.distribution` and
    `train.replicas` (with `multi_worker`, one such process per worker, each given TF_CONFIG).

    Reports real (non-pad) target tokens per second in the steady state (median over rounds),
    sentences per second derived from it with the corpus's mean target length, the seconds from
    `started` (process start) to the end of the first step, the peak resident memory, and the
    roofline (`training_roofline`): the GFLOP/s achieved against the matrix products' rate at
    the model's shapes, measured after the training rounds.
    With several `precisions` (default: the recipe's), one model per precision, from the same
    initial weights, trains in turn, a round each: a neighbour's load drifts over all alike.
    Every round starts the data over, so each precision and round times the same batches (its
    first step, which waits for the new iterator, untimed).
    One result per precision; after the first, `vs_first` gives the median over rounds of its
    rate over the first precision's in the same round, by wall-clock and by CPU time (the
    process's CPU seconds: a fairer clock where other processes share the cores; with several
    workers, all workers' tokens per CPU-second of all workers, taken alike), and
    `matmul_limit`, the ratio of their roofline limits (`_limit_versus_first`).
    """
    started = started or time.perf_counter()
    with _training_data(recipe_path, overrides, threads) as (recipe, tokenizers, stats, dataset,
                                                             _, strategy):
        return _bench_train(recipe_path, recipe, tokenizers, stats, dataset, strategy, steps,
                            warmup, rounds, threads, precisions, started)


def _bench_train(recipe_path, recipe, tokenizers, stats, dataset, strategy, steps: int,
                 warmup: int, rounds: int, threads: int | None, precisions,
                 started: float) -> list[dict]:
    import keras

    from nmt.training.callbacks import StepTimer

    runs = {}
    for name in precisions or (recipe.train.precision,):
        keras.utils.set_random_seed(recipe.train.seed)
        with strategy.scope():
            trainer = setup.compiled_trainer(
                recipes.with_changes(recipe, "train", precision=name), len(tokenizers[0]),
                len(tokenizers[1]))
        runs[name] = trainer, StepTimer()
        trainer.fit(dataset, steps_per_epoch=1 + warmup, epochs=1, callbacks=[runs[name][1]],
                    verbose=0, shuffle=False)
        if len(runs) == 1:
            first_step = runs[name][1].ends[0] - started
    for _ in range(rounds):
        for trainer, timer in runs.values():
            # One step more: a `fit`'s first step waits for its new iterator to start (the
            # shuffle buffer: 2 s of CPU on multi30k), which an epoch's other steps do not.
            trainer.fit(dataset, steps_per_epoch=1 + steps, epochs=1, callbacks=[timer],
                        verbose=0, shuffle=False)
    tokens_per_sentence = stats.target_tokens / max(stats.kept, 1)
    # The step's tokens are all workers'; the CPU time is this process's (the workers alike).
    processes = distribute.worker_count() if recipe.train.distribution == "multi_worker" else 1
    results, first_rounds = [], None
    for name, (trainer, timer) in runs.items():
        per_round = []
        for r in range(rounds):
            first = 1 + warmup + r * (1 + steps) + 1
            window = slice(first, first + steps)
            seconds = sum(timer.seconds[window])
            tokens = sum(timer.tokens[window])
            per_round.append((tokens / seconds, tokens / tokens_per_sentence / seconds,
                              1000 * statistics.median(timer.seconds[window]),
                              tokens / processes / sum(timer.cpu_seconds[window])))
        first_rounds = first_rounds or per_round
        if per_round is not first_rounds:
            versus = {"vs_first": {
                clock: round(statistics.median(mine[i] / theirs[i] for mine, theirs in
                                               zip(per_round, first_rounds)), 3)
                for clock, i in (("wall", 0), ("cpu", 3))}}
        else:
            versus = {}
        results.append({
            "bench": "train", "recipe": str(recipe_path), "precision": name,
            "steps_per_round": steps, "rounds": rounds, "warmup_steps": warmup,
            "batch_size": recipe.train.batch_size, "batch_type": recipe.train.batch_type,
            "batch_tokens": recipe.train.batch_tokens, "accumulate": recipe.train.accumulate,
            "distribution": recipe.train.distribution,
            "replicas_in_sync": strategy.num_replicas_in_sync,
            "parameters": trainer.seq2seq.count_params(),
            "target_tokens_per_sec": round(statistics.median(r[0] for r in per_round), 1),
            "sentences_per_sec": round(statistics.median(r[1] for r in per_round), 2),
            "median_step_ms": round(statistics.median(r[2] for r in per_round), 1),
            "rounds_target_tokens_per_sec": [round(r[0], 1) for r in per_round],
            "target_tokens_per_cpu_sec": round(statistics.median(r[3] for r in per_round), 1),
            **versus,
            "time_to_first_step_s": round(first_step, 2),
            "peak_rss_mib": round(runtime.peak_rss_mib()),
            **_machine(runtime.thread_count())})
    roofline = training_roofline(recipe, len(tokenizers[1]), stats, list(runs),
                                 {r["precision"]: (r["target_tokens_per_sec"],
                                                   r["target_tokens_per_cpu_sec"])
                                  for r in results}, threads)
    return _limit_versus_first([{**result, **roofline[result["precision"]]}
                                for result in results])


def bench_translate(model_dir, source: str, beam_size: int | None = None,
                    alpha: float | None = None, length_penalty: str | None = None,
                    batch_size: int | None = None, rounds: int = 3, threads: int | None = None,
                    precisions: Sequence[str] | None = None,
                    started: float | None = None) -> list[dict]:
    """Translates a file `rounds` times; reports the median of the rounds after the first.

    The first round includes tracing the search graph; model load time is reported apart.
    Also the roofline of the search (`decoding_roofline`), measured after the rounds.
    With several `precisions` (default: the recipe's decode.precision), the same weights are
    loaded in each and the rounds alternate between them. One result per precision, with
    `vs_first` after the first (speed and limit relative to the first precision, as in
    `bench_train`).
    """
    started = started or time.perf_counter()
    runtime.import_tensorflow(threads)
    from nmt.translation.translate import Translator

    lines = list(textio.read_lines(source, allow_blank=True, allow_tab=True))
    runs = []
    for name in precisions or (None,):
        load_start = time.perf_counter()
        translator = Translator(model_dir, beam_size=beam_size, alpha=alpha,
                                batch_size=batch_size, length_penalty=length_penalty,
                                precision=name)
        runs.append({"translator": translator, "load_s": time.perf_counter() - load_start,
                     "timings": [], "cpu_timings": [], "output_tokens": 0})
    for _ in range(max(rounds, 2)):
        for run in runs:
            start, cpu_start = time.perf_counter(), time.process_time()
            found = run["translator"].translate(lines)
            run["timings"].append(time.perf_counter() - start)
            run["cpu_timings"].append(time.process_time() - cpu_start)
            run["output_tokens"] = sum(len(t[0].ids) for t in found)
    spent = sum(sum(run["timings"]) for run in runs)
    results = []
    for run in runs:
        decode, timings = run["translator"].decode, run["timings"]
        steady = statistics.median(timings[1:])
        versus = {} if run is runs[0] else {"vs_first": {
            clock: round(statistics.median(theirs / mine for mine, theirs in
                                           zip(run[key][1:], runs[0][key][1:])), 3)
            for clock, key in (("wall", "timings"), ("cpu", "cpu_timings"))}}
        results.append({
            "bench": "translate", "model": " + ".join(map(str, run["translator"].model_dirs)),
            "input": str(source),
            "precision": decode.precision, "sentences": len(lines),
            "beam_size": decode.beam_size, "alpha": decode.alpha,
            "length_penalty": decode.length_penalty, "batch_size": decode.batch_size,
            "sentences_per_sec": round(len(lines) / steady, 1),
            "target_tokens_per_sec": round(run["output_tokens"] / steady, 1),
            "rounds_seconds": [round(t, 3) for t in timings],
            "sentences_per_cpu_sec": round(len(lines) / statistics.median(run["cpu_timings"][1:]),
                                           1), **versus,
            "first_round_s": round(timings[0], 2), "load_s": round(run["load_s"], 2),
            "time_to_load_s": round(time.perf_counter() - started - spent, 2),
            "peak_rss_mib": round(runtime.peak_rss_mib()), **_machine(runtime.thread_count())})
    roofline = decoding_roofline(
        runs[0]["translator"], lines,
        {run["translator"].decode.precision: run["output_tokens"] for run in runs},
        {run["translator"].decode.precision: tuple(
            len(lines) / statistics.median(run[key][1:]) for key in ("timings", "cpu_timings"))
         for run in runs}, threads)
    return _limit_versus_first([{**result, **roofline[result["precision"]]}
                                for result in results])


def bench_serve(model_dirs: Sequence, source: str, clients: Sequence[int] = (1, 8, 32),
                requests: int = 20000, max_seconds: float = 600, threads: int | None = None,
                decode: dict | None = None, rounds: int = 3) -> Iterator[dict]:
    """`nmt serve` under load, against translating the same sentences as a file.

    A server is started on a free loopback port with the same settings as a Translator in this
    process; both are warmed up by one pass over the lines. Then, `rounds` times in turn (so that
    a neighbour's load drifts over all alike): the file (`Translator.translate` on all the lines
    at once, as `nmt translate` reads a file), and for each count of concurrent `clients` one
    pass over the lines through the server, one sentence per request. Yields the file's speed
    (median over rounds); per client count the sentences/s (median), `vs_file` (the median over
    rounds of its speed over the file's in the same round), latency p50/p99 over all rounds,
    answers by status and the mean batch size; last, the server's resident memory sampled ten
    times over `requests` requests (the largest client count; stopped after `max_seconds`).
    """
    import asyncio

    from nmt.serving import load

    decode = {key: value for key, value in (decode or {}).items() if value is not None}
    lines = list(textio.read_lines(source, allow_blank=True, allow_tab=True))
    args = [f"--model={folder}" for folder in model_dirs] + [
        f"--{key.replace('_', '-')}={value}" for key, value in decode.items()] + (
        [f"--threads={threads}"] if threads else []) + [f"--max-lines={max(1, len(lines))}"]
    with load.ServerProcess(args) as server:  # starts while this process loads its model
        runtime.import_tensorflow(threads)
        from nmt.translation.translate import Translator
        translator = Translator(list(model_dirs), **decode)
        translator.translate(lines)
        settings = {"model": " + ".join(map(str, model_dirs)), "input": str(source),
                    "sentences": len(lines),
                    **{key: getattr(translator.decode, key)
                       for key in ("beam_size", "alpha", "length_penalty", "batch_size",
                                   "precision")}, **_machine(runtime.thread_count())}
        server.wait_ready()
        asyncio.run(load.drive(server.url, lines, max(clients), len(lines)))
        files, passes = [], {count: [] for count in clients}
        for _ in range(rounds):
            start = time.perf_counter()
            translator.translate(lines)
            files.append(time.perf_counter() - start)
            for count in clients:
                before = server.metrics()
                driven = asyncio.run(load.drive(server.url, lines, count, len(lines)))
                passes[count].append((driven, before, server.metrics()))
        del translator
        yield {"bench": "serve", "what": "file",
               "sentences_per_sec": round(len(lines) / statistics.median(files), 1),
               "rounds_seconds": [round(t, 3) for t in files], **settings}
        for count, found in passes.items():
            yield _serve_pass(count, found, files, len(lines), settings)
        if requests:
            yield _serve_memory(server, lines, max(clients), requests, max_seconds, settings)
        stopped = server.stop()
    if stopped != 0:
        raise NmtError(f"nmt serve exited with status {stopped} at SIGTERM")


def _serve_pass(count: int, found: list, files: list, sentences: int, settings: dict) -> dict:
    from nmt.serving import load

    latencies = [t for driven, _, _ in found for t in driven.latencies]
    statuses: dict = {}
    for driven, _, _ in found:
        for status, number in driven.statuses.items():
            statuses[status] = statuses.get(status, 0) + number

    def grew(name):
        return sum(after[name] - before[name] for _, before, after in found)

    return {"bench": "serve", "what": "clients", "clients": count,
            "sentences_per_sec": round(statistics.median(
                sentences / driven.seconds for driven, _, _ in found), 1),
            "vs_file": round(statistics.median(
                file / driven.seconds for (driven, _, _), file in zip(found, files)), 3),
            "rounds_seconds": [round(driven.seconds, 3) for driven, _, _ in found],
            "p50_ms": round(1000 * load.percentile(latencies, 0.5), 1),
            "p99_ms": round(1000 * load.percentile(latencies, 0.99), 1),
            "statuses": statuses, "mean_batch_sentences": round(
                grew("nmt_batch_sentences_sum") / max(grew("nmt_batch_sentences_count"), 1), 1),
            **settings}


def _serve_memory(server, lines: list, clients: int, requests: int, max_seconds: float,
                  settings: dict) -> dict:
    import asyncio

    from nmt.serving import load

    start, done, samples, statuses = time.perf_counter(), 0, [server.memory_mib()[0]], {}
    step = max(1, -(-requests // 10))
    while done < requests and time.perf_counter() - start < max_seconds:
        count = min(step, requests - done)
        driven = asyncio.run(load.drive(server.url, lines, clients, count))
        done += count
        for status, found in driven.statuses.items():
            statuses[status] = statuses.get(status, 0) + found
        samples.append(server.memory_mib()[0])
    seconds = time.perf_counter() - start
    return {"bench": "serve", "what": "memory", "clients": clients, "requests": done,
            "requests_asked": requests, "seconds": round(seconds, 1),
            "sentences_per_sec": round(done / seconds, 1), "statuses": statuses,
            "rss_mib_samples": [round(s) for s in samples],
            "peak_rss_mib": round(server.memory_mib()[1]), **settings}


def bench_profile(recipe_path, steps: int = 10, warmup: int = 5, threads: int | None = None,
                  overrides=(), model_dir=None, sentences: int = 64,
                  beam_size: int | None = None) -> list[dict]:
    """Where the time of training steps and of a search goes (`nmt.system.profiling`): the
    recipe's model trains `warmup` steps (tracing), then `steps` under the profiler (one `fit`,
    as in training: the iterator's start is in the warm-up); then the first `sentences` dev
    sources are translated twice (tracing, then under the profiler) with the recipe's decode
    settings, by the model of `model_dir` if given (in bfloat16 if the
    training ran in mixed_bfloat16, else float32), else by the model just trained (whose
    outputs, after so few steps, run to the length limit). One result each, with the
    milliseconds and shares by part.
    """
    with _training_data(recipe_path, overrides, threads) as (recipe, tokenizers, _, dataset,
                                                             dev_pairs, _):
        return _profile(recipe_path, recipe, tokenizers, dataset, dev_pairs, steps, warmup,
                        model_dir, sentences, beam_size)


def _profile(recipe_path, recipe, tokenizers, dataset, dev_pairs, steps: int, warmup: int,
             model_dir, sentences: int, beam_size: int | None) -> list[dict]:
    import keras

    from nmt.search.decoding import Searcher, search_all
    from nmt.system import profiling
    from nmt.training.callbacks import ProfiledSteps, StepTimer

    keras.utils.set_random_seed(recipe.train.seed)
    trainer = setup.compiled_trainer(recipe, len(tokenizers[0]), len(tokenizers[1]))
    # One `fit`: its first steps wait for the input pipeline to start (shuffle buffer).
    timer, profiled = StepTimer(), ProfiledSteps(warmup, steps)
    trainer.fit(dataset, steps_per_epoch=warmup + steps, epochs=1, verbose=0, shuffle=False,
                callbacks=[profiled, timer])
    found = profiled.found
    machine = _machine(runtime.thread_count())
    results = [{"bench": "profile", "what": "train", "recipe": str(recipe_path),
                "precision": recipe.train.precision, "steps": steps,
                "target_tokens": int(sum(timer.tokens[warmup:])),
                "step_ms": round(1000 * found["seconds"] / steps, 1), **found, **machine}]
    lines = [source for source, _ in dev_pairs[:sentences]]
    if model_dir is not None:
        from nmt.translation.translate import Translator
        translator = Translator(model_dir, beam_size=beam_size, precision=(
            "bfloat16" if recipe.train.precision == "mixed_bfloat16" else "float32"))
        searcher, decode = translator.searcher, translator.decode
        sources = [translator.source_ids(line) for line in lines]
    else:
        searcher = Searcher(trainer.seq2seq)
        decode = recipes.with_changes(recipe, "decode", **(
            {"beam_size": beam_size} if beam_size else {})).decode
        sources = [batching.source_ids(tokenizers[0], line) for line in lines]
    search_all(searcher, sources, decode)
    found = profiling.profile(lambda: search_all(searcher, sources, decode))
    results.append({"bench": "profile", "what": "translate",
                    "model": str(model_dir or f"{recipe_path} after {warmup + steps} steps"),
                    "precision": decode.precision if model_dir is not None else
                    recipe.train.precision, "beam_size": decode.beam_size,
                    "batch_size": decode.batch_size, "sentences": len(sources),
                    "sentence_ms": round(1000 * found["seconds"] / max(len(sources), 1), 2),
                    **found, **machine})
    return results


# (m, k, n): the beam-5 output layer (64 sentences x 5 hypotheses), a large square-ish
# product, one decoder step's recurrent product at batch 64, and the training output layer.
MATMUL_SHAPES = ((320, 512, 8000), (2048, 512, 2048), (64, 1024, 2048), (64, 512, 8000))


def matmul_seconds(products, repeats: int = 20, rounds: int = 5, threads: int | None = None
                   ) -> dict:
    """The best round's (wall, CPU) seconds of one `tf.matmul` for each ((m, k, n), dtype name)
    in `products`: one `tf.function` each, traced outside the timing, `repeats` products a
    round, the products alternating round by round so a neighbour's load drifts over all.
    Each product is a call of its own: its fixed cost (some microseconds) dominates only tiny
    shapes, far below a real model's."""
    tf = runtime.import_tensorflow(threads)
    runs = {}
    for (m, k, n), dtype in products:
        a = tf.cast(tf.random.normal((m, k)), dtype)
        b = tf.cast(tf.random.normal((k, n)), dtype)
        product = tf.function(tf.matmul)
        product(a, b).numpy()
        runs[(m, k, n), dtype] = product, a, b, []
    for _ in range(rounds):
        for product, a, b, seconds in runs.values():
            start, cpu_start = time.perf_counter(), time.process_time()
            for _ in range(repeats):
                out = product(a, b)
            out.numpy()
            seconds.append(((time.perf_counter() - start) / repeats,
                            (time.process_time() - cpu_start) / repeats))
    return {key: tuple(min(s[i] for s in run[3]) for i in (0, 1)) for key, run in runs.items()}


def bench_matmul(shapes=MATMUL_SHAPES, repeats: int = 20, rounds: int = 5,
                 threads: int | None = None) -> list[dict]:
    """GFLOP/s of `tf.matmul` in float32 and bfloat16 (`matmul_seconds`).

    What the CPU's bfloat16 instructions give before any model overhead: the ceiling of what
    bfloat16 can bring to training and translation here. Also per CPU-second of the process
    (`*_per_cpu_s`, `cpu_ratio`): steadier where other processes share the cores.
    """
    dtypes = ("float32", "bfloat16")
    seconds = matmul_seconds([(shape, dtype) for shape in shapes for dtype in dtypes], repeats,
                             rounds, threads)
    results = []
    for m, k, n in shapes:
        found = {}
        for dtype in dtypes:
            for clock, index in (("", 0), ("_per_cpu_s", 1)):
                found[dtype + clock] = 2 * m * k * n / seconds[(m, k, n), dtype][index] / 1e9
        results.append({"bench": "matmul", "m_k_n": [m, k, n],
                        **{f"{name.replace('_per', '_gflops_per')}" if "cpu" in name
                           else f"{name}_gflops": round(rate, 1) for name, rate in found.items()},
                        "ratio": round(found["bfloat16"] / found["float32"], 2),
                        "cpu_ratio": round(found["bfloat16_per_cpu_s"] /
                                           found["float32_per_cpu_s"], 2),
                        **_machine(runtime.thread_count())})
    return results


# The dtype of a precision's matrix products (training's and decoding's names).
PRODUCT_DTYPES = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16",
                  "bfloat16": "bfloat16"}


def matmul_limit(parts: dict, sentences: float, dtypes, threads: int | None) -> dict:
    """GFLOP/s of each dtype at the rate `tf.matmul` reaches now on each part's own shape, for
    `parts` (`nmt.model.flops.Product`s of one sentence) computed `sentences` at a time: the
    parts' FLOPs over the sum of their times. Element-wise work is not counted, so a model
    reaches it only where a call's own cost dominates the products (toy shapes). Per dtype:
    (by wall clock, per CPU-second of the process)."""
    shapes = {name: (max(1, round(sentences * part.rows)), part.k, part.n)
              for name, part in parts.items()}
    seconds = matmul_seconds([(shape, dtype) for shape in set(shapes.values())
                              for dtype in set(dtypes)], threads=threads)
    total = sum(part.multiply_adds for part in parts.values())
    return {dtype: tuple(total / sum(part.multiply_adds * seconds[shapes[name], dtype][clock]
                                     / (shapes[name][0] * shapes[name][1] * shapes[name][2])
                                     for name, part in parts.items()) * 2 / 1e9
                         for clock in (0, 1))
            for dtype in set(dtypes)}


def _roofline_fields(per_unit_flops: float, units_per_sec: float, units_per_cpu_sec: float,
                     limit: tuple) -> dict:
    """The achieved rate against the limit, by wall clock and per CPU-second (steadier where
    other processes share the cores: both the model and the products lose the same share)."""
    achieved, achieved_cpu = (per_unit_flops * rate / 1e9
                              for rate in (units_per_sec, units_per_cpu_sec))
    return {"achieved_gflops": round(achieved, 3), "matmul_limit_gflops": round(limit[0], 3),
            "fraction_of_limit": round(achieved / limit[0], 4),
            "fraction_of_limit_per_cpu_s": round(achieved_cpu / limit[1], 4)}


def _limit_versus_first(results: list[dict]) -> list[dict]:
    """Adds `vs_first.matmul_limit` to the later precisions: their matrix-product limit over
    the first's, measured in the same run. It is what the products alone would gain, beside
    what the model gains (`vs_first.wall`)."""
    for result in results[1:]:
        result["vs_first"]["matmul_limit"] = round(
            result["matmul_limit_gflops"] / results[0]["matmul_limit_gflops"], 3)
    return results


def training_roofline(recipe, tgt_vocab_size: int, stats, names: Sequence[str],
                      tokens_per_sec: dict, threads: int | None) -> dict:
    """How far each precision's training runs from the matrix-product rate of this machine at
    the model's own shapes, measured now.

    The model's useful FLOPs per target token come from its config (`nmt.model.flops`: the
    products at the corpus's mean lengths, no padding). The limit (`matmul_limit`) puts each
    part's products at the rate `tf.matmul` reaches on its shape (rows: a batch's sentences,
    times the positions of the parts computed for all positions at once). `tokens_per_sec`:
    per precision, (target tokens per second, per CPU-second).
    """
    from nmt.model import flops
    target_len = stats.target_tokens / max(stats.kept, 1)
    source_len = (stats.tokens[0] + stats.kept) / max(stats.kept, 1)  # EOS included
    sentences = (recipe.train.batch_tokens / target_len if recipe.train.batch_type == "tokens"
                 else recipe.train.batch_size)
    parts = flops.products(recipe.model, tgt_vocab_size, source_len, target_len)
    limits = matmul_limit(parts, sentences, [PRODUCT_DTYPES[name] for name in names], threads)
    per_token = flops.training_flops_per_target_token(recipe.model, tgt_vocab_size,
                                                      source_len / target_len, target_len)
    return {name: {"target_vocab_size": tgt_vocab_size,
                   "mean_target_length": round(target_len, 3),
                   "source_per_target_token": round(source_len / target_len, 3),
                   "model_mflop_per_target_token": round(per_token / 1e6, 3),
                   **_roofline_fields(per_token, *tokens_per_sec[name],
                                      limits[PRODUCT_DTYPES[name]])}
            for name in names}


def decoding_roofline(translator, lines: Sequence[str], output_tokens: dict,
                      sentences_per_sec: dict, threads: int | None) -> dict:
    """`training_roofline` for translating `lines` with `translator`'s beam, per precision.

    The FLOPs per sentence (`nmt.model.flops.decoding_products`, summed over an ensemble's
    members) at the mean source length (EOS included) and the mean length of each precision's
    outputs (`output_tokens`: their tokens, EOS excluded); the limit at the decoding shapes:
    a decoding batch of sentences (as many as the lines, at most `decode.batch_size`) and the
    beam's hypotheses per sentence in each step's products. `sentences_per_sec`: per precision,
    (sentences per second, per CPU-second).
    """
    from nmt.model import flops
    from nmt.search.inference import Ensemble
    decode = translator.decode
    members = (translator.model.members if isinstance(translator.model, Ensemble)
               else (translator.model,))
    sources = [translator.source_ids(line) for line in lines]
    sentences = min(decode.batch_size, max(len(lines), 1))
    source_lens = [sum(len(s if len(members) == 1 else s[index]) for s in sources)
                   / max(len(lines), 1) for index in range(len(members))]
    figures, per_sentence, limit_parts = {}, {}, {}
    for name, tokens in output_tokens.items():
        output_len = tokens / max(len(lines), 1) + 1
        per_sentence[name] = 0.0
        for index, (member, source_len) in enumerate(zip(members, source_lens)):
            parts = flops.decoding_products(member.model_config, member.tgt_vocab_size,
                                            source_len, output_len, decode.beam_size)
            per_sentence[name] += 2 * sum(part.multiply_adds for part in parts.values())
            if name == next(iter(output_tokens)):  # the first precision's shapes for all
                limit_parts.update({f"{index}/{part}": value for part, value in parts.items()})
        figures[name] = {"target_vocab_size": members[0].tgt_vocab_size,
                         "mean_source_length": round(source_lens[0], 3),
                         "mean_output_length": round(output_len, 3)}
    limits = matmul_limit(limit_parts, sentences,
                          [PRODUCT_DTYPES[name] for name in output_tokens], threads)
    for name in output_tokens:
        figures[name].update({"model_mflop_per_sentence": round(per_sentence[name] / 1e6, 3),
                              **_roofline_fields(per_sentence[name], *sentences_per_sec[name],
                                                 limits[PRODUCT_DTYPES[name]])})
    return figures


def bench_export(export_dir, source: str, rounds: int = 3, threads: int | None = None,
                 started: float | None = None) -> dict:
    """Translates a file through an `nmt export` SavedModel, as a serving process would: loads
    it with TensorFlow alone and calls `serving_default` on chunks of the lines as `nmt translate`
    reads them (16 decoding batches). Reports as `bench_translate`, plus the size on disk."""
    from pathlib import Path

    started = started or time.perf_counter()
    tf = runtime.import_tensorflow(threads)
    from nmt.translation.export import SETTINGS_FILE
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
            "size_mib": round(size / 2**20, 1), "peak_rss_mib": round(runtime.peak_rss_mib()),
            **_machine(runtime.thread_count())}


def print_json(result: dict) -> None:
    print(json.dumps(result), flush=True)
