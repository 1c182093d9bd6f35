"""Corpus preparation for a training: the training pairs (streamed, checked whole) and the dev
pairs of a recipe, what an epoch reads of them (the "training data:" line), and the tokenizers
trained on them."""
from __future__ import annotations

import itertools
import logging

from nmt.config import options
from nmt.data import batching, corpus
from nmt.errors import ConfigError
from nmt.files import textio

log = logging.getLogger("nmt")

# Above this share of unknown tokens on a side, vocabularies taken from another model are a poor
# fit for the corpus: a warning says so.
UNKNOWN_WARNING = 0.05


def checked_corpus(data_config: options.DataConfig):
    """(a function reading the training pairs, the dev pairs), both files checked completely.

    The training corpus streams: it is read again each epoch, never held in memory. The whole
    of its files is checked (alignment, UTF-8), whatever part `data.train_lines` uses.
    """
    train_files = corpus.split_files(data_config, "train")

    def read_train():
        return textio.read_parallel(*train_files, max_tokens=data_config.max_line_tokens,
                                    limit=data_config.train_lines)

    dev_pairs = read_dev(data_config)
    # The whole training corpus is checked before anything is printed or written.
    textio.check_parallel(*train_files, max_tokens=data_config.max_line_tokens)
    return read_train, dev_pairs


def read_dev(data_config: options.DataConfig) -> list:
    """The dev pairs, their files checked completely."""
    dev_files = corpus.split_files(data_config, "dev")
    skipped = textio.Skipped()
    dev_pairs = list(textio.read_parallel(*dev_files, max_tokens=data_config.max_line_tokens,
                                          skipped=skipped))
    if skipped.counts:
        log.info("dev data: %d pairs used; %s", len(dev_pairs), skipped.summary())
    return dev_pairs


def log_training_data(data_config: options.DataConfig, tokenizers, borrowed: str = "") -> None:
    """Logs what training reads of its corpus: pairs kept, and those left out or changed (each
    reason with a count and the first line numbers), the target tokens of an epoch, and the
    share of unknown tokens per side; warns when it is high with the vocabularies of another
    model (`borrowed`, its folder)."""
    files = corpus.split_files(data_config, "train")
    skipped, stats = textio.Skipped(), batching.CorpusStats()
    for number, src, tgt in textio.numbered_pairs(*files, max_tokens=data_config.max_line_tokens,
                                                  limit=data_config.train_lines,
                                                  skipped=skipped):
        if batching.encode_pair(src, tgt, *tokenizers, data_config.max_len, stats) is None:
            skipped.add(too_long(data_config), number)
    log.info("training data: %s lines read from %s, %s pairs kept; %s; %s target tokens per "
             "epoch", skipped.read, files[0], stats.kept, skipped.summary() or "nothing left out",
             stats.target_tokens)
    log_unknown_shares(stats, files, borrowed)


def too_long(data_config: options.DataConfig) -> str:
    """The reason logged for the pairs dropped by `data.max_len`."""
    return f"over data.max_len ({data_config.max_len} tokens after tokenization)"


def log_unknown_shares(stats: batching.CorpusStats, files, borrowed: str) -> None:
    """Logs the share of unknown tokens per side; warns when it is high with the vocabularies
    of another model (`borrowed`, its folder)."""
    shares = [stats.unknown_share(side) for side in (0, 1)]
    log.info("unknown tokens (<unk>) in the kept pairs: source %.2f %%, target %.2f %%%s",
             100 * shares[0], 100 * shares[1], f" (vocabularies of {borrowed})" if borrowed else "")
    for path, share in zip(files, shares):
        if borrowed and share > UNKNOWN_WARNING:
            log.warning("nmt: warning: %s: %.1f %% of its tokens are unknown (<unk>) to the "
                        "vocabulary of %s (over %g %%): a poor fit for this corpus", path,
                        100 * share, borrowed, 100 * UNKNOWN_WARNING)


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
