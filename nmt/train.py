"""`nmt train`: from a recipe to a self-describing run directory, resumable after a crash."""
from __future__ import annotations

import csv
import logging
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

from nmt import checkpoints, config, corpus, data, distribute, runtime, textio
from nmt.errors import ConfigError

log = logging.getLogger("nmt")

# What may change when a run is resumed: these touch neither the data nor the model.
RESUMABLE_KEYS = {("train", "epochs"), ("train", "patience")}
RESUMABLE_SECTIONS = {"decode", "eval"}


@dataclass
class TrainResult:
    run_dir: Path
    epochs: int
    best_bleu: float
    model: object = None  # the trained Keras model (its last weights), when training ran


def default_run_dir(recipe_path: str | os.PathLike) -> Path:
    return Path("runs") / config.recipe_file(recipe_path).parent.resolve().name


def train(recipe_path: str | os.PathLike, run_dir: str | os.PathLike | None = None,
          overrides=(), threads: int | None = None, verbose: int | None = None) -> TrainResult:
    """Trains (or resumes) the recipe into `run_dir`; returns where it stands at the end."""
    recipe = config.load_recipe(recipe_path, overrides)
    run = checkpoints.RunDir(run_dir or default_run_dir(recipe_path))
    chief = distribute.is_chief()
    _log_to(None)
    resumed = _check_run_dir(run, recipe)
    if resumed and (resumed["stopped"] or resumed["epoch"] >= recipe.train.epochs):
        log.info("%s: this run has already finished (%d epochs, best dev BLEU %.2f)",
                 run.root, resumed["epoch"], resumed["best"])
        return TrainResult(run.root, resumed["epoch"], resumed["best"])

    train_files = corpus.split_files(recipe.data, "train")
    dev_files = corpus.split_files(recipe.data, "dev")
    read_train = lambda: textio.read_parallel(  # noqa: E731
        *train_files, max_tokens=recipe.data.max_line_tokens, limit=recipe.data.train_lines)
    dev_pairs = list(textio.read_parallel(*dev_files, max_tokens=recipe.data.max_line_tokens))
    # Check the whole training corpus before anything is printed or written.
    textio.count_parallel(*train_files, max_tokens=recipe.data.max_line_tokens,
                          limit=recipe.data.train_lines)

    run.root.mkdir(parents=True, exist_ok=True)
    _log_to(run.log if chief else None)
    src_tokenizer, tgt_tokenizer = _tokenizers(run, recipe, read_train, chief)
    stats = data.CorpusStats()
    for _ in data.encode_pairs(read_train(), src_tokenizer, tgt_tokenizer, recipe.data.max_len,
                               stats):
        pass
    log.info("training data: %d pairs, %d kept, %d dropped as longer than %d tokens; "
             "%d target tokens per epoch", stats.pairs, stats.kept, stats.dropped_too_long,
             recipe.data.max_len, stats.target_tokens)
    if chief:
        checkpoints.save_description(run, recipe, len(src_tokenizer), len(tgt_tokenizer))

    runtime.import_tensorflow(threads)
    import keras
    from nmt import callbacks as nmt_callbacks

    keras.utils.set_random_seed(recipe.train.seed)
    strategy = distribute.make_strategy(recipe.train.distribution)
    with strategy.scope():
        trainer = compiled_trainer(recipe, len(src_tokenizer), len(tgt_tokenizer))
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
    train_set = data.training_dataset(
        read_train, src_tokenizer, tgt_tokenizer, batch_size=recipe.train.batch_size,
        max_len=recipe.data.max_len, shuffle_buffer=recipe.train.shuffle_buffer,
        seed=recipe.train.seed + initial_epoch)
    dev_set = data.training_dataset(lambda: dev_pairs, src_tokenizer, tgt_tokenizer,
                                    batch_size=recipe.train.batch_size, max_len=None,
                                    max_bucket_len=recipe.data.max_line_tokens)
    stopping = keras.callbacks.EarlyStopping(monitor="val_bleu", mode="max",
                                             patience=recipe.train.patience)
    plateau = keras.callbacks.ReduceLROnPlateau(
        monitor="val_bleu", mode="max", factor=recipe.train.lr_decay,
        patience=recipe.train.lr_patience, min_lr=recipe.train.min_learning_rate)
    callbacks = [
        nmt_callbacks.DevBleu([data.source_ids(src_tokenizer, s) for s, _ in dev_pairs],
                              [t for _, t in dev_pairs], tgt_tokenizer, recipe.eval.tokenize,
                              recipe.decode, recipe.decode.batch_size),
        nmt_callbacks.EpochSummary(),
        plateau,
        stopping,
        nmt_callbacks.RunCheckpoint(run, {"early_stopping": stopping, "plateau": plateau},
                                    resumed, is_chief=chief),
    ]
    if chief:
        callbacks += [keras.callbacks.CSVLogger(str(run.metrics), append=True),
                      keras.callbacks.TensorBoard(str(run.tensorboard), write_graph=False)]
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    # The streaming dataset's length is unknown until the first epoch ends; Keras warns about it.
    warnings.filterwarnings("ignore", message="Your input ran out of data")
    trainer.fit(train_set, validation_data=dev_set, epochs=recipe.train.epochs,
              initial_epoch=initial_epoch, callbacks=callbacks, verbose=verbose,
              shuffle=False)  # the dataset shuffles itself
    state = checkpoints.read_resume_state(run) or {"epoch": initial_epoch, "best": float("nan")}
    log.info("finished after %d epochs; best dev BLEU %.2f; model folder: %s", state["epoch"],
             state["best"], run.root)
    return TrainResult(run.root, state["epoch"], state["best"], trainer.seq2seq)


def compiled_trainer(recipe: config.Recipe, src_size: int, tgt_size: int):
    """A fresh model wrapped in its training step, with the optimizer of the recipe."""
    from nmt.model import Seq2Seq
    from nmt.optimizers import FusedAdam
    from nmt.trainer import Seq2SeqTrainer

    import keras

    # Layers take the global dtype policy when built; keep mixed precision to this model.
    previous = keras.mixed_precision.global_policy()
    if recipe.train.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = Seq2Seq.from_model_config(recipe.model, src_size, tgt_size)
        trainer = Seq2SeqTrainer(model, recipe.train.label_smoothing)
        trainer.compile(optimizer=FusedAdam(recipe.train.learning_rate,
                                            global_clipnorm=recipe.train.clip_norm or None))
    finally:
        keras.mixed_precision.set_global_policy(previous)
    return trainer


def _check_run_dir(run: checkpoints.RunDir, recipe: config.Recipe) -> dict | None:
    """Refuses a run directory made with another recipe; returns its resume state, if any."""
    if not run.recipe.is_file():
        if run.root.exists() and any(run.root.iterdir()):
            raise ConfigError("the run directory is not empty and holds no recipe.yaml; choose "
                              "another --run-dir", str(run.root))
        return None
    previous = config.to_dict(config.load_recipe(run.recipe))
    current = config.to_dict(recipe)
    changed = [f"{s}.{k}" for s in current for k in current[s]
               if current[s][k] != previous[s][k] and (s, k) not in RESUMABLE_KEYS
               and s not in RESUMABLE_SECTIONS]
    if changed:
        raise ConfigError(f"this run directory was trained with different settings "
                          f"({', '.join(changed)}); use another --run-dir", str(run.recipe))
    return checkpoints.read_resume_state(run)


def _tokenizers(run: checkpoints.RunDir, recipe: config.Recipe, read_train, chief: bool):
    """Loads the run's tokenizers, or trains them on the training data and saves them."""
    import vocab

    if run.vocab_dir.is_dir():
        return checkpoints.load_tokenizers(run)
    settings = recipe.vocab
    made = []
    for side in (0, 1):
        log.info("training the %s %s vocabulary (size %d)", ("source", "target")[side],
                 settings.kind, settings.size)
        made.append(vocab.train(settings.kind, (pair[side] for pair in read_train()),
                                settings.size, min_freq=settings.min_freq,
                                model_type=settings.model_type,
                                character_coverage=settings.character_coverage))
    if chief:
        checkpoints.save_tokenizers(run, *made)
    return tuple(made)


def _trim_metrics(path: Path, epochs: int) -> None:
    """Drops metrics rows of epochs that will be trained again (a kill after they were logged)."""
    if not path.is_file():
        return
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    kept = [row for row in rows[1:] if row and int(row[0]) < epochs]
    with textio.atomic_write(path) as handle:
        csv.writer(handle).writerows(rows[:1] + kept if epochs else [])


def _log_to(path: Path | None) -> None:
    """Progress lines go to stderr and, for the chief, to the run's train.log."""
    log.setLevel(logging.INFO)
    formatter = logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S")
    handlers = [logging.StreamHandler(sys.stderr)]
    if path is not None:
        handlers.append(logging.FileHandler(path, encoding="utf-8"))
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()
    for handler in handlers:
        handler.setFormatter(formatter)
        log.addHandler(handler)
