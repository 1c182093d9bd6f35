"""`nmt train`: from a recipe to a self-describing run directory, resumable after a crash."""
from __future__ import annotations

import contextlib
import csv
import itertools
import logging
import os
import shutil
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

from nmt.config import options, recipes
from nmt.data import batching, corpus, vectors
from nmt.errors import ConfigError
from nmt.evaluation import metrics
from nmt.files import textio
from nmt.storage import checkpoints
from nmt.system import distribute, precision, runtime, termination

log = logging.getLogger("nmt")

# What may change when a run is resumed: these touch neither the data nor the model.
RESUMABLE_KEYS = {("train", "epochs"), ("train", "patience"), ("train", "keep_best"),
                  ("train", "keep_last"), ("train", "average_best")}
RESUMABLE_SECTIONS = {"decode", "eval"}


@dataclass
class TrainResult:
    run_dir: Path
    epochs: int
    best_bleu: float
    model: object = None  # the trained Keras model (its last weights), when training ran


def default_run_dir(recipe_path: str | os.PathLike) -> Path:
    return Path("runs") / recipes.recipe_file(recipe_path).parent.resolve().name


def train(recipe_path: str | os.PathLike, run_dir: str | os.PathLike | None = None,
          overrides=(), threads: int | None = None, verbose: int | None = None) -> TrainResult:
    """Trains (or resumes) the recipe into `run_dir`; returns where it stands at the end.

    The chief holds the run directory's lock throughout: a second start on it fails at once.
    """
    recipe = recipes.load_recipe(recipe_path, overrides)
    if recipe.train.average_best > recipe.train.keep_best:
        raise ConfigError(f"train.average_best ({recipe.train.average_best}) needs "
                          f"train.keep_best >= it, not {recipe.train.keep_best}",
                          str(recipes.recipe_file(recipe_path)))
    run = checkpoints.RunDir(run_dir or default_run_dir(recipe_path))
    chief = distribute.is_chief()
    _refuse_foreign_folder(run)
    with checkpoints.locked(run) if chief else contextlib.nullcontext():
        return _train(recipe, run, chief, threads, verbose)


def _train(recipe: options.Recipe, run: checkpoints.RunDir, chief: bool, threads: int | None,
           verbose: int | None) -> TrainResult:
    _log_to(None)
    resumed = _check_run_dir(run, recipe)
    if resumed and _finished(resumed, recipe.train):
        log.info("%s: this run has already finished (%d epochs, best dev BLEU %.2f)",
                 run.root, resumed["epoch"], resumed["best"])
        if chief:  # a stop may have come between the last epoch and these
            _after_training(run, recipe, threads, only_missing=True)
        return TrainResult(run.root, resumed["epoch"], resumed["best"])

    read_train, dev_pairs = checked_corpus(recipe.data)
    metrics.bleu_metric(recipe.eval.tokenize)  # dev BLEU must work before an epoch is spent
    tokenizers = _prepare_run_dir(run, recipe, read_train, resumed, chief)
    # A resumed run has its weights: the vectors files are not needed (nor read) any more.
    pretrained = {} if resumed else read_pretrained(recipe.model, tokenizers)

    runtime.import_tensorflow(threads)
    import keras
    keras.utils.set_random_seed(recipe.train.seed)
    strategy = distribute.make_strategy(recipe.train.distribution)
    with strategy.scope():
        trainer = compiled_trainer(recipe, *map(len, tokenizers))
    _initialize_embeddings(trainer.seq2seq, pretrained)
    initial_epoch = 0
    if resumed:
        checkpoints.restore_resume_state(run, trainer, resumed)
        initial_epoch = resumed["epoch"]
        log.info("resuming after epoch %d (best dev BLEU so far %.2f)", initial_epoch,
                 resumed["best"])
    if chief:
        _trim_metrics(run.metrics, initial_epoch)
    log.info("model: %s parameters; %d threads; %s", f"{trainer.seq2seq.count_params():,}",
             runtime.thread_count(), type(strategy).__name__)

    # A resumed run reshuffles with a new seed rather than replaying the first epoch's order.
    seed = recipe.train.seed + initial_epoch
    train_set = batching.training_dataset(
        read_train, *training_tokenizers(recipe.vocab, tokenizers, seed),
        batch_size=recipe.train.batch_size, max_len=recipe.data.max_len,
        shuffle_buffer=recipe.train.shuffle_buffer, seed=seed,
        batch_tokens=token_budget(recipe.train), bucket_width=recipe.train.bucket_width)
    longest_dev = max(len(tokenizers[1].encode(t)) for _, t in dev_pairs)
    dev_set = batching.training_dataset(lambda: dev_pairs, *tokenizers,
                                    batch_size=recipe.train.batch_size, max_len=None,
                                    max_bucket_len=longest_dev)
    # The streaming dataset's length is unknown until the first epoch ends; Keras warns about it.
    warnings.filterwarnings("ignore", message="Your input ran out of data")
    with termination.polled():  # a stop ends fit at a batch or after a committed epoch
        trainer.fit(train_set, validation_data=dev_set, epochs=recipe.train.epochs,
                    initial_epoch=initial_epoch, shuffle=False,  # the dataset shuffles itself
                    callbacks=_callbacks(run, recipe, dev_pairs, tokenizers, resumed, chief),
                    verbose=(1 if sys.stdout.isatty() else 2) if verbose is None else verbose)
    termination.raise_if_stop_requested()
    state = checkpoints.read_resume_state(run) or {"epoch": initial_epoch, "best": float("nan")}
    log.info("finished after %d epochs; best dev BLEU %.2f; model folder: %s", state["epoch"],
             state["best"], run.root)
    if chief:
        _after_training(run, recipe, threads, only_missing=False)
    return TrainResult(run.root, state["epoch"], state["best"], trainer.seq2seq)


def _after_training(run: checkpoints.RunDir, recipe: options.Recipe, threads: int | None,
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


def _tune_decoding(run: checkpoints.RunDir, recipe: options.Recipe) -> None:
    """`nmt tune --write` on the dev set with the best weights: the run's decode default."""
    from nmt.translation import tuning
    from nmt.translation.translate import Translator

    files = [str(p) for p in corpus.split_files(recipe.data, "dev")]
    grid = recipe.eval
    _, chosen, signature = tuning.tune(Translator(run.root), *files, grid.tune_beams,
                                       grid.tune_alphas, grid.tune_length_penalties,
                                       grid.tokenize, run.root / "tune", write=True)
    log.info("decode default tuned on dev: beam %d, alpha %g, %s penalty: BLEU %.2f (%s); "
             "grid in %s", chosen.beam_size, chosen.alpha, chosen.length_penalty, chosen.bleu,
             signature, run.root / "tune" / "tune.md")


def _prepare_run_dir(run: checkpoints.RunDir, recipe: options.Recipe, read_train,
                     resumed: dict | None, chief: bool):
    """Creates or repairs the run directory; returns the (source, target) tokenizers."""
    run.root.mkdir(parents=True, exist_ok=True)
    if chief:
        checkpoints.remove_temporaries(run)
        if resumed:  # a kill between commit and publication left best/last behind
            checkpoints.publish(run, resumed)
    _log_to(run.log if chief else None)
    if run.vocab_dir.is_dir():
        tokenizers = checkpoints.load_tokenizers(run)
    else:
        tokenizers = build_tokenizers(recipe.vocab, read_train)
        if chief:
            checkpoints.save_tokenizers(run, *tokenizers)
    log.info("training data: %s", corpus_summary(recipe.data, tokenizers))
    if chief:
        checkpoints.save_description(run, recipe, *map(len, tokenizers))
    return tokenizers


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


def _callbacks(run: checkpoints.RunDir, recipe: options.Recipe, dev_pairs, tokenizers,
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


def _finished(state: dict, train: options.TrainConfig) -> bool:
    """Whether a committed run has nothing left to do: all epochs, or early-stopped."""
    waited = state["callbacks"].get("early_stopping", {}).get("wait", 0)
    return state["epoch"] >= train.epochs or waited >= train.patience


def compiled_trainer(recipe: options.Recipe, src_size: int, tgt_size: int):
    """A fresh model wrapped in its training step, with the optimizer of the recipe."""
    from nmt.model.seq2seq import Seq2Seq
    from nmt.training.optimizers import adam
    from nmt.training.train_step import Seq2SeqTrainer

    with precision.dtype_policy(recipe.train.precision):
        model = Seq2Seq(recipe.model, src_size, tgt_size)
        if recipe.model.freeze_embeddings:
            for side in recipe.model.pretrained_embeddings:
                model.embedding_layer(side).trainable = False
        trainer = Seq2SeqTrainer(model, recipe.train.label_smoothing, token_budget(recipe.train))
        trainer.compile(optimizer=adam(recipe.train, model.trainable_variables))
    return trainer


def _refuse_foreign_folder(run: checkpoints.RunDir) -> None:
    """A folder that holds files but no run of nmt is not ours to write into."""
    if not run.root.is_dir():
        return
    ours = run.recipe.is_file() or run.vocab_dir.is_dir() or run.log.is_file()
    if not ours and any(not p.name.startswith(".") for p in run.root.iterdir()):
        raise ConfigError("the folder is not empty and is not a run directory of nmt; choose "
                          "another --run-dir", str(run.root))


def token_budget(train_config: options.TrainConfig) -> int:
    """Target tokens per training batch, or 0 when batches count sentences."""
    return train_config.batch_tokens if train_config.batch_type == "tokens" else 0


def _check_run_dir(run: checkpoints.RunDir, recipe: options.Recipe) -> dict | None:
    """Refuses a folder that is not a run of this recipe; returns its committed state, if any.

    A run that never committed an epoch starts afresh (its vocabularies are kept only if they
    were built from the same data and vocabulary settings).
    """
    if not run.root.exists():
        return None
    previous = (recipes.to_dict(recipes.load_recipe(run.recipe, written_by_nmt=True))
                if run.recipe.is_file() else None)
    current = recipes.to_dict(recipe)
    state = checkpoints.read_resume_state(run)
    if state is None:
        if previous is None or any(previous[s] != current[s] for s in ("data", "vocab")):
            shutil.rmtree(run.vocab_dir, ignore_errors=True)
        return None
    changed = [f"{s}.{k}" for s in current for k in current[s]
               if current[s][k] != previous[s][k] and (s, k) not in RESUMABLE_KEYS
               and s not in RESUMABLE_SECTIONS]
    if changed:
        raise ConfigError(f"this run directory was trained with different settings "
                          f"({', '.join(changed)}); use another --run-dir", str(run.recipe))
    return state


def checked_corpus(data_config: options.DataConfig):
    """(a function reading the training pairs, the dev pairs), both files checked completely.

    The training corpus streams: it is read again each epoch, never held in memory. The whole
    of its files is checked (alignment, UTF-8), whatever part `data.train_lines` uses.
    """
    train_files = corpus.split_files(data_config, "train")
    dev_files = corpus.split_files(data_config, "dev")

    def read_train():
        return textio.read_parallel(*train_files, max_tokens=data_config.max_line_tokens,
                                    limit=data_config.train_lines)

    skipped = textio.Skipped()
    dev_pairs = list(textio.read_parallel(*dev_files, max_tokens=data_config.max_line_tokens,
                                          skipped=skipped))
    if skipped.counts:
        log.info("dev data: %d pairs used; %s", len(dev_pairs), skipped.summary())
    # The whole training corpus is checked before anything is printed or written.
    textio.check_parallel(*train_files, max_tokens=data_config.max_line_tokens)
    return read_train, dev_pairs


def corpus_summary(data_config: options.DataConfig, tokenizers) -> str:
    """What training reads of its corpus: pairs kept, and those left out or changed (each reason
    with a count and the first line numbers), and the target tokens of an epoch."""
    files = corpus.split_files(data_config, "train")
    skipped, stats = textio.Skipped(), batching.CorpusStats()
    too_long = f"over data.max_len ({data_config.max_len} tokens after tokenization)"
    for number, src, tgt in textio.numbered_pairs(*files, max_tokens=data_config.max_line_tokens,
                                                  limit=data_config.train_lines,
                                                  skipped=skipped):
        dropped = stats.dropped_too_long
        for _ in batching.encode_pairs([(src, tgt)], *tokenizers, data_config.max_len, stats):
            pass
        if stats.dropped_too_long > dropped:
            skipped.add(too_long, number)
    return (f"{skipped.read} lines read from {files[0]}, {stats.kept} pairs kept; "
            f"{skipped.summary() or 'nothing left out'}; {stats.target_tokens} target tokens "
            f"per epoch")


def build_tokenizers(settings: options.VocabConfig, read_train):
    """Trains the source and target tokenizers on the training pairs (one for both sides, on
    the lines of both, if the vocabulary is joint)."""
    import vocab

    sides = {"joint": (0, 1)} if settings.joint else {"source": (0,), "target": (1,)}
    made = []
    for name, indices in sides.items():
        log.info("training the %s %s vocabulary (size %d)", name, settings.kind, settings.size)
        lines = (pair[i] for pair in read_train() for i in indices)
        try:
            made.append(vocab.train(settings.kind, lines, settings.size,
                                    min_freq=settings.min_freq, model_type=settings.model_type,
                                    character_coverage=settings.character_coverage))
        except RuntimeError as err:  # SentencePiece rejects settings the data cannot meet
            raise ConfigError(f"vocab: SentencePiece could not train the {name} model: "
                              f"{err}") from None
    return (made[0], made[0]) if settings.joint else tuple(made)


def training_tokenizers(settings: options.VocabConfig, tokenizers, seed: int):
    """The tokenizers the training batches are encoded with: sampling segmentations when
    `vocab.sampling_alpha` > 0 (dev data and the vocabulary stay deterministic)."""
    if not settings.sampling_alpha:
        return tokenizers
    # One per line sampled (see `sampling`); SentencePiece takes 32-bit seeds.
    seeds = ((seed * 1_000_003 + line) % 2**32 for line in itertools.count())
    return tuple(t.sampling(settings.sampling_alpha, seeds) for t in tokenizers)


def _trim_metrics(path: Path, epochs: int) -> None:
    """Drops metrics rows of epochs that will be trained again (a kill after they were logged)."""
    if not path.is_file():
        return
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    # A kill while a row was appended can leave it incomplete: only whole rows of done epochs stay.
    kept = [row for row in rows[1:] if len(row) == len(rows[0]) and row[0].isdigit()
            and int(row[0]) < epochs]
    with textio.atomic_write(path) as handle:
        csv.writer(handle).writerows(rows[:1] + kept if epochs else [])


def _log_to(path: Path | None) -> None:
    """Progress lines go to stderr and, for the chief, to the run's train.log."""
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
