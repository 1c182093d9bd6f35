"""The prepared training data of a recipe, made by `nmt prepare` (or by `nmt train` into
RUN/prepared before its first epoch): the corpus tokenized once into shuffled shards of token
ids (`nmt.data.shards`), so that training starts without a pass over the text and reads it with
no Python per pair.

    DIR/vocab/src.*, tgt.*    the tokenizers the shards were encoded with
    DIR/shards/shard-*.ids    the pairs (`nmt.data.shards`)
    DIR/prepared.json         the settings that shaped the shards, the corpus files' sizes,
                              what was read and left out, the target tokens of an epoch, the
                              target lengths (an epoch's batch count) and the pairs per shard
    DIR/manifest.json         sizes and sha256 of all the above, written last

The folder appears whole or not at all (`textio.atomic_folder`): a prepare that is killed or
meets a full disk leaves nothing that training would take for finished.
"""
from __future__ import annotations

import json
import logging
import os
import random
import time
from pathlib import Path

from nmt.config import options, recipes
from nmt.data import batching, corpus, prepare, shards
from nmt.errors import ConfigError, DataError, ModelDirError
from nmt.files import textio
from nmt.storage import manifest
from nmt.storage.modeldir import ModelDir, load_tokenizers, save_tokenizers

log = logging.getLogger("nmt")

FORMAT = 1
INFO = "prepared.json"
RECORD_KEYS = ("settings", "corpus", "vocab", "lines_read", "left_out", "kept", "target_tokens",
               "tokens", "unknown", "target_lengths", "shards", "seconds")
SHARDS = "shards"
# Vocabularies are trained on at most this many pairs, spread over the whole corpus: enough for
# SentencePiece's statistics (its own default samples 1M sentences), and it bounds the memory
# and the time of the vocabulary step on corpora of tens of millions of pairs.
VOCAB_SAMPLE_PAIRS = 1_000_000
# The recipe keys that shape the shards: training from a folder prepared otherwise is refused.
SHAPING = {"data": ("corpus", "src", "tgt", "train", "max_len", "max_line_tokens", "train_lines"),
           "vocab": ("kind", "size", "min_freq", "model_type", "character_coverage", "joint",
                     "from_model")}


def prepare_data(recipe: options.Recipe, out: str | os.PathLike, jobs: int | None = None,
                 tokenizers=None) -> "Prepared":
    """Tokenizes the recipe's training corpus into a new prepared folder `out`.

    `tokenizers`: (source, target) to encode with (a resumed run's, or another model's);
    None trains them on a sample of the corpus (`VOCAB_SAMPLE_PAIRS`).
    """
    out = Path(out)
    if recipe.vocab.sampling_alpha:
        raise ConfigError(f"vocab.sampling_alpha ({recipe.vocab.sampling_alpha}) samples new "
                          "segmentations from the text each epoch: such a training reads the "
                          "text, there is nothing to prepare")
    if (out / INFO).exists() or (out.is_dir() and any(out.iterdir())):
        raise ConfigError("the folder is not empty: remove it or choose another --out", str(out))
    textio.check_folder_writable(out)
    files = corpus.split_files(recipe.data, "train")
    started = time.monotonic()
    if recipe.data.train_lines:  # the rest of the files is checked too, though not used
        textio.check_parallel(*files, max_tokens=recipe.data.max_line_tokens)
    with textio.atomic_folder(out) as tmp:
        if tokenizers is None:
            sample = vocabulary_sample(recipe.data, files, VOCAB_SAMPLE_PAIRS,
                                       recipe.train.seed)
            tokenizers = prepare.build_tokenizers(recipe.vocab, lambda: sample)
            del sample
        folder = ModelDir(tmp)
        save_tokenizers(folder, *tokenizers)
        (tmp / SHARDS).mkdir()
        ranges, lines = shards.line_ranges(files, recipe.data.train_lines)
        jobs = min(jobs or shards.jobs_for(lines), len(ranges))  # a range is a unit of work
        log.info("preparing %s: %d lines, %d process%s, %d shards", files[0], lines, jobs,
                 "" if jobs == 1 else "es", shards.shard_count(lines))
        encoded = shards.encode_corpus(
            files, ranges, lines, recipe.data.max_line_tokens,
            (folder.vocab_prefix("src"), folder.vocab_prefix("tgt")), recipe.data.max_len,
            prepare.too_long(recipe.data), tmp / SHARDS, jobs, recipe.train.seed)
        skipped = encoded.skipped
        if encoded.stats.pairs == 0:
            raise DataError(f"no usable pair in the first {lines} lines: {skipped.summary()}",
                            str(files[0]))
        if encoded.stats.kept == 0:
            raise DataError(f"no pair of at most data.max_len ({recipe.data.max_len}) tokens "
                            "after tokenization", str(files[0]))
        info = {"format": FORMAT, "settings": _settings(recipe), "corpus": _corpus(files),
                "vocab": _fingerprints(tmp), "lines_read": skipped.read,
                "left_out": skipped.summary(), "kept": encoded.stats.kept,
                "target_tokens": encoded.stats.target_tokens,
                "tokens": encoded.stats.tokens, "unknown": encoded.stats.unknown,
                "target_lengths": encoded.target_lengths, "shards": encoded.shard_pairs,
                "seconds": round(time.monotonic() - started, 1), "processes": jobs}
        with textio.atomic_write(tmp / INFO) as handle:
            json.dump(info, handle, indent=1)
            handle.write("\n")
        manifest.write(tmp, ["vocab", SHARDS, INFO])  # last: the folder is complete
    log.info("prepared %d pairs into %d shards in %.0f s: %s", info["kept"], len(info["shards"]),
             info["seconds"], out)
    return Prepared(out)


def vocabulary_sample(data: options.DataConfig, files, size: int, seed: int) -> list:
    """At most `size` usable pairs spread over the whole corpus (reservoir sampling, seeded);
    all of them, in corpus order, when there are no more. Reads (and so checks) every line."""
    sample, rng = [], random.Random(seed)
    for seen, (_, src, tgt) in enumerate(textio.numbered_pairs(
            *files, max_tokens=data.max_line_tokens, limit=data.train_lines)):
        if seen < size:
            sample.append((src, tgt))
        elif (slot := rng.randrange(seen + 1)) < size:
            sample[slot] = (src, tgt)
    return sample


class Prepared:
    """A complete prepared folder, checked against its manifest."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        info_path = self.root / INFO
        if not self.root.is_dir():
            raise DataError("no such folder of prepared data (make it with `nmt prepare`)",
                            str(self.root))
        if not info_path.is_file() or not (self.root / manifest.NAME).is_file():
            raise DataError(f"no prepared data here ({INFO} or {manifest.NAME} missing: "
                            "`nmt prepare` did not finish)", str(self.root))
        try:
            manifest.check(self.root)
        except ModelDirError as err:
            raise DataError(f"prepared data: {err.reason}; remove {self.root} and prepare "
                            "the data again", err.path) from None
        try:
            self.info = json.loads(info_path.read_text(encoding="utf-8"))
            if self.info.get("format") != FORMAT:
                raise ValueError(f"format {self.info.get('format')}, expected {FORMAT}")
            if missing := [key for key in RECORD_KEYS if key not in self.info]:
                raise ValueError(f"no {', '.join(missing)}")
        except ValueError as err:
            raise DataError(f"damaged ({err})", str(info_path)) from None
        # The manifest may have been rewritten with the vocabularies: the record says which.
        if _fingerprints(self.root) != self.info["vocab"]:
            raise DataError("the vocabularies are not those the shards were encoded with; "
                            "prepare the data again", str(self.root / "vocab"))
        self.shard_paths = [self.root / SHARDS / shards.shard_name(i)
                            for i in range(len(self.info["shards"]))]
        for path, pairs in zip(self.shard_paths, self.info["shards"]):
            shards.check_shard(path, pairs)

    def check_matches(self, recipe: options.Recipe) -> None:
        """Raises ConfigError naming the first recipe key, or the corpus file, that differs from
        what the shards were made with."""
        made = self.info["settings"]
        for key, value in _settings(recipe).items():
            if made.get(key) != value:
                raise ConfigError(f"{key} is {value!r}, but the prepared data in {self.root} was "
                                  f"made with {made.get(key)!r}: prepare it again, or set "
                                  f"{key} back", str(self.root / INFO))
        # The corpus need not be here (prepared on another machine); if it is, it is the same.
        files = [recipes.corpus_path(recipe.data, "train", side) for side in ("src", "tgt")]
        for path, size in zip(files, self.info["corpus"].values()):
            if path.is_file() and path.stat().st_size != size:
                raise ConfigError(f"the corpus file changed since it was prepared ({size} "
                                  f"bytes then, {path.stat().st_size} now): prepare the data "
                                  f"again", str(path))

    def check_vocabularies(self, folder: Path) -> None:
        """Raises ConfigError when the vocabularies in `folder`/vocab are not those the shards
        were encoded with."""
        if _fingerprints(folder) != self.info["vocab"]:
            raise ConfigError(f"the prepared data in {self.root} was encoded with other "
                              "vocabularies than this run's: prepare it with them", str(folder))

    def tokenizers(self):
        return load_tokenizers(ModelDir(self.root))

    def stats(self) -> batching.CorpusStats:
        return batching.CorpusStats(pairs=self.info["kept"], kept=self.info["kept"],
                                    target_tokens=self.info["target_tokens"],
                                    tokens=self.info["tokens"], unknown=self.info["unknown"])

    def log_training_data(self, borrowed: str = "") -> None:
        """The "training data:" lines of a training, from what prepare recorded."""
        info = self.info
        log.info("training data: %s lines read from %s, %s pairs kept; %s; %s target tokens per "
                 "epoch (prepared in %s, in %.0f s)", info["lines_read"],
                 next(iter(info["corpus"])), info["kept"], info["left_out"] or "nothing left out",
                 info["target_tokens"], self.root, info["seconds"])
        prepare.log_unknown_shares(self.stats(), list(info["corpus"]), borrowed)

    def batches_per_epoch(self, boundaries: list[int], sizes: list[int]) -> int:
        """Batches of an epoch bucketed so (see `batching.bucket_plan`)."""
        return shards.batches_per_epoch(self.info["target_lengths"], boundaries, sizes)

    def dataset(self, seed: int, shuffle_buffer: int):
        """The tf.data pipeline of the pairs (`shards.pairs_dataset`)."""
        return shards.pairs_dataset([str(p) for p in self.shard_paths], seed, shuffle_buffer)


def _settings(recipe: options.Recipe) -> dict:
    values = recipes.to_dict(recipe)
    return {f"{section}.{key}": values[section][key] for section, keys in SHAPING.items()
            for key in keys}


def _corpus(files) -> dict:
    return {str(path): path.stat().st_size for path in files}


def _fingerprints(folder: Path) -> dict:
    vocab_dir = folder / "vocab"
    return {p.name: manifest.sha256_file(p) for p in sorted(vocab_dir.iterdir()) if p.is_file()}
