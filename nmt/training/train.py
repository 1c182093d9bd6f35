"""`nmt train`: from a recipe to a self-describing run directory, resumable after a crash.

The orchestration of a run: the recipe, the run directory (`nmt.storage.rundir`: locked, checked
for a resume), the vocabularies and data (`nmt.data.prepare`), the model and its datasets
(`setup`), `fit` with the callbacks (the last one commits each epoch), then the averaging and
decode tuning the recipe asks for.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

from nmt.config import options, recipes
from nmt.data import batching, corpus, prepare, vectors
from nmt.evaluation import metrics
from nmt.files import textio
from nmt.storage import modeldir, prepared, rundir
from nmt.system import distribute, runtime, termination
from nmt.training import initialization, setup

log = logging.getLogger("nmt")


@dataclass
class TrainResult:
    run_dir: Path
    epochs: int
    best_bleu: float
    model: object = None  # the trained Keras model (its last weights), when training ran


def train(recipe_path: str | os.PathLike, run_dir: str | os.PathLike | None = None,
          overrides=(), threads: int | None = None, verbose: int | None = None) -> TrainResult:
    """Trains (or resumes) the recipe into `run_dir`; returns where it stands at the end.

    The chief holds the run directory's lock throughout: a second start on it fails at once.
    """
    recipe = initialization.with_absolute_paths(recipes.load_recipe(recipe_path, overrides))
    run = rundir.RunDir(run_dir or rundir.default_run_dir(recipe_path))
    chief = distribute.is_chief()
    if recipe.train.replicas > 1:  # before any TensorFlow op (a base model's check) fixes them
        distribute.use_cpu_replicas(recipe.train.replicas, threads)
    rundir.refuse_foreign_folder(run)
    # The model to start from is checked before the run directory is made or locked.
    recipe, base = initialization.prepared(recipe, run, threads)
    done = rundir.finished_read_only(run, recipe) if chief else None
    if done:  # a read-only copy of a finished run: nothing to write, so no lock to take
        log_progress_to(None)
        log.info("%s: this run has already finished (%d epochs, best dev BLEU %.2f)",
                 run.root, done["epoch"], done["best"])
        return TrainResult(run.root, done["epoch"], done["best"])
    with rundir.new_folder_removed_on_failure(run) if chief else contextlib.nullcontext():
        with rundir.locked(run) if chief else contextlib.nullcontext():
            return _train(recipe, run, chief, threads, verbose, base)


def _train(recipe: options.Recipe, run: rundir.RunDir, chief: bool, threads: int | None,
           verbose: int | None, base: initialization.Base | None) -> TrainResult:
    log_progress_to(None)
    resumed = rundir.check_resumable(run, recipe)
    if resumed and rundir.finished(resumed, recipe.train):
        log.info("%s: this run has already finished (%d epochs, best dev BLEU %.2f)",
                 run.root, resumed["epoch"], resumed["best"])
        if chief:  # a stop may have come between the last epoch and these
            _after_training(run, recipe, threads, only_missing=True)
        return TrainResult(run.root, resumed["epoch"], resumed["best"])

    dev_pairs = prepare.read_dev(recipe.data)
    metrics.bleu_metric(recipe.eval.tokenize)  # dev BLEU must work before an epoch is spent
    tokenizers, source = _prepare_run_dir(run, recipe, resumed, chief, base)
    # A resumed run has its weights: the vectors files are not needed (nor read) any more.
    pretrained = {} if resumed else read_pretrained(recipe.model, tokenizers)

    runtime.import_tensorflow(threads)
    import keras
    keras.utils.set_random_seed(recipe.train.seed)
    strategy = distribute.make_strategy(recipe.train.distribution)
    with strategy.scope():
        trainer = setup.compiled_trainer(recipe, *map(len, tokenizers))
    _initialize_embeddings(trainer.seq2seq, pretrained)
    initial_epoch = 0
    if base and base.weights:  # a resumed run has no base: it goes on from its own epoch
        initialization.initialize(trainer, base, recipe.train)
    if resumed:
        rundir.restore_resume_state(run, trainer, resumed)
        initial_epoch = resumed["epoch"]
        log.info("resuming after epoch %d (best dev BLEU so far %.2f)", initial_epoch,
                 resumed["best"])
    if chief:
        rundir.trim_metrics(run, initial_epoch)
    log.info("model: %s parameters; %d threads; %s, %d replicas",
             f"{trainer.seq2seq.count_params():,}", runtime.thread_count(),
             type(strategy).__name__, strategy.num_replicas_in_sync)

    # A resumed run reshuffles with a new seed rather than replaying the first epoch's order.
    seed = recipe.train.seed + initial_epoch
    train_set, steps = setup.training_dataset(
        recipe, source, prepare.training_tokenizers(recipe.vocab, tokenizers, seed), seed,
        strategy.num_replicas_in_sync)
    dev_set = setup.dev_dataset(recipe, dev_pairs, *tokenizers)
    # A streamed dataset's length is unknown until the first epoch ends; Keras warns about it.
    warnings.filterwarnings("ignore", message="Your input ran out of data")
    with termination.polled():  # a stop ends fit at a batch or after a committed epoch
        trainer.fit(train_set, validation_data=dev_set, epochs=recipe.train.epochs,
                    initial_epoch=initial_epoch, steps_per_epoch=steps,
                    shuffle=False,  # the dataset shuffles itself
                    callbacks=_callbacks(run, recipe, dev_pairs, tokenizers, resumed, chief),
                    verbose=(1 if sys.stdout.isatty() else 2) if verbose is None else verbose)
    termination.raise_if_stop_requested()
    state = rundir.read_resume_state(run) or {"epoch": initial_epoch, "best": float("nan")}
    log.info("finished after %d epochs; best dev BLEU %.2f; model folder: %s", state["epoch"],
             state["best"], run.root)
    if chief:
        _after_training(run, recipe, threads, only_missing=False)
    return TrainResult(run.root, state["epoch"], state["best"], trainer.seq2seq)


def _after_training(run: rundir.RunDir, recipe: options.Recipe, threads: int | None,
                    only_missing: bool) -> None:
    """The average of the best epochs and the tuned decode default, if the recipe asks for them
    (`only_missing`: those not written yet; else made anew from the epochs trained so far)."""
    from nmt.translation import averaging, tuning

    best = recipe.train.average_best
    average = run.root / f"average-best-{best}"
    to_average = best > 1 and not (only_missing and (average / averaging.RECORD).is_file())
    to_tune = recipe.eval.tune_beams and not (only_missing and (run.root / tuning.RECORD).is_file())
    if to_average or to_tune:
        runtime.import_tensorflow(threads)  # a finished run's rerun has not imported it yet
    if to_average:
        log.info("averaged the %d best epochs: %s", best,
                 averaging.average_run(run.root, best=best))
    if to_tune:
        _tune_decoding(run, recipe)


def _tune_decoding(run: rundir.RunDir, recipe: options.Recipe) -> None:
    """`nmt tune --write` on the dev set with the best weights: the run's decode default."""
    from nmt.translation import tuning
    from nmt.translation.translate import Translator

    files = [str(p) for p in corpus.split_files(recipe.data, "dev")]
    grid = recipe.eval
    try:
        _, chosen, signature = tuning.tune(Translator(run.root), *files, grid.tune_beams,
                                           grid.tune_alphas, grid.tune_length_penalties,
                                           grid.tokenize, run.root / "tune", write=True)
    except tuning.NothingToChoose as err:  # the recipe's decode section stays the default
        log.warning("decode default not tuned: %s", err)
        return
    log.info("decode default tuned on dev: beam %d, alpha %g, %s penalty: BLEU %.2f (%s); "
             "grid in %s", chosen.beam_size, chosen.alpha, chosen.length_penalty, chosen.bleu,
             signature, run.root / "tune" / "tune.md")


def _prepare_run_dir(run: rundir.RunDir, recipe: options.Recipe, resumed: dict | None,
                     chief: bool, base: initialization.Base | None):
    """Creates or repairs the run directory; returns the (source, target) tokenizers and what
    the training batches come from (see `setup.training_dataset`).

    The tokenizers are the run's own (resumed), or the base folder's, or those the corpus was
    prepared with (trained on it by `nmt prepare`). With sampled segmentations the text is
    encoded anew each epoch: it streams, and the tokenizers are trained here.
    """
    run.root.mkdir(parents=True, exist_ok=True)
    if chief:
        rundir.repair(run, resumed)
    # The corpus is read (and checked) before train.log is opened: a bad corpus leaves the run
    # directory as it was.
    own = modeldir.load_tokenizers(run) if run.vocab_dir.is_dir() else None
    given = own or (modeldir.load_tokenizers(modeldir.ModelDir(base.root)) if base else None)
    if recipe.vocab.sampling_alpha:  # segmentations sampled anew each epoch: the text streams
        source, _ = prepare.checked_corpus(recipe.data)
        tokenizers = given or prepare.build_tokenizers(recipe.vocab, source)
        log_data = functools.partial(prepare.log_training_data, recipe.data, tokenizers)
    else:
        source = _prepared_data(run, recipe, given)
        if own or base:
            source.check_vocabularies(run.root if own else base.root)
        tokenizers = given or source.tokenizers()
        log_data = source.log_training_data
    log_progress_to(run.log if chief else None)
    log_data(initialization.source(recipe))
    if chief and not own:
        modeldir.save_tokenizers(run, *tokenizers)
    if chief:
        modeldir.save_description(run, recipe, *map(len, tokenizers))
    return tokenizers, source


def _prepared_data(run: rundir.RunDir, recipe: options.Recipe, tokenizers) -> prepared.Prepared:
    """The recipe's prepared data (`data.prepared`), or the run's own, prepared now if need be
    (with `tokenizers` if given), checked against the recipe."""
    folder = Path(recipe.data.prepared) if recipe.data.prepared else run.prepared
    if not recipe.data.prepared and not (folder / prepared.INFO).is_file():
        shutil.rmtree(folder, ignore_errors=True)  # what a killed prepare left
        prepared.prepare_data(recipe, folder, tokenizers=tokenizers)
    data = prepared.Prepared(folder)
    data.check_matches(recipe)
    return data


def read_pretrained(model: options.ModelConfig, tokenizers) -> dict:
    """side -> `vectors.Coverage` of the recipe's pretrained vectors files, coverage logged."""
    found = {}
    for side, path in model.pretrained_embeddings.items():
        path = vectors.vectors_path(path)
        coverage = vectors.embedding_rows(tokenizers[options.SIDES.index(side)].tokens, path,
                                          model.embedding_dim)
        log.info("pretrained %s embeddings: %d of %d words found in %s (%.1f %%)%s", side,
                 len(coverage.ids), coverage.words, path,
                 100 * len(coverage.ids) / max(coverage.words, 1),
                 ", frozen" if model.freeze_embeddings else "")
        found[side] = coverage
    return found


def _initialize_embeddings(model, pretrained: dict) -> None:
    """Copies the pretrained rows into a fresh model; the other rows keep their random values."""
    from keras import ops

    for side, coverage in pretrained.items():
        variable = model.embedding_layer(side).embeddings
        matrix = ops.convert_to_numpy(ops.cast(variable, "float32")).copy()
        matrix[coverage.ids] = coverage.rows
        variable.assign(ops.cast(matrix, variable.dtype))


def _callbacks(run: rundir.RunDir, recipe: options.Recipe, dev_pairs, tokenizers,
               resumed: dict | None, chief: bool) -> list:
    """The stop check first, then dev BLEU (the others read it), the run checkpoint last (it
    commits the epoch)."""
    import keras

    from nmt.training import callbacks

    stateful = {"early_stopping": keras.callbacks.EarlyStopping(
        monitor="val_bleu", mode="max", patience=recipe.train.patience)}
    if recipe.train.lr_decay < 1:  # 1 = no decay
        stateful["plateau"] = learning_rate_decay(recipe.train)
    chosen = [callbacks.StopOnSignal(),
              callbacks.DevBleu([batching.source_ids(tokenizers[0], s) for s, _ in dev_pairs],
                                [t for _, t in dev_pairs], tokenizers[1], recipe.eval.tokenize,
                                recipe.decode),
              callbacks.EpochSummary(), *stateful.values()]
    if chief:
        chosen += [keras.callbacks.CSVLogger(str(run.metrics), append=True),
                   callbacks.LearningCurve(run),
                   keras.callbacks.TensorBoard(str(run.tensorboard), write_graph=False)]
    return chosen + [callbacks.RunCheckpoint(run, stateful, resumed, is_chief=chief,
                                             keep_best=recipe.train.keep_best,
                                             keep_last=recipe.train.keep_last)]


def learning_rate_decay(train_config: options.TrainConfig):
    """Multiplies the learning rate by `lr_decay` after `lr_patience` epochs in which the dev
    metric (`lr_decay_metric`) did not get better."""
    import keras

    on_ppl = train_config.lr_decay_metric == "ppl"  # watched as val_nll, the log of the ppl
    return keras.callbacks.ReduceLROnPlateau(
        monitor="val_nll" if on_ppl else "val_bleu", mode="min" if on_ppl else "max",
        factor=train_config.lr_decay, patience=train_config.lr_patience,
        min_lr=train_config.min_learning_rate)


def log_progress_to(path: Path | None) -> None:
    """Progress lines (the "nmt" logger) go to stderr and, given a path, to that file (the
    chief's train.log). The handlers of an earlier call are replaced: in a process that runs
    several commands, they may hold a stream closed since."""
    log.setLevel(logging.INFO)
    formatter = logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S")
    handlers = [logging.StreamHandler(sys.stderr)]
    if path is not None:
        with textio.reported_as_output_error(path):
            handlers.append(_LogFile(path, encoding="utf-8"))
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()
    for handler in handlers:
        handler.setFormatter(formatter)
        log.addHandler(handler)


class _LogFile(logging.FileHandler):
    """train.log: a line that cannot be written (disk full) stops training with one error naming
    the file, instead of a traceback per logged line."""

    def handleError(self, record):
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            with textio.reported_as_output_error(Path(self.baseFilename)):
                raise error
        super().handleError(record)
