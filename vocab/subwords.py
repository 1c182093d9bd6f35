"""SentencePiece subword tokenizer (unigram or BPE) with the shared special ids."""
from __future__ import annotations

import io
import itertools
import os
import threading
from typing import Iterable, Iterator

import sentencepiece as spm

from vocab.specials import (BOS, BOS_TOKEN, EOS, EOS_TOKEN, PAD, PAD_TOKEN, UNK, UNK_TOKEN,
                            content_ids)

SUFFIX = ".spm.model"
MAX_TRAINING_SENTENCES = 2_000_000  # sampled by SentencePiece; bounds memory on large corpora
_SEEDING = threading.Lock()  # SentencePiece's seed is global: set and used by one thread at once


class SentencePieceTokenizer:
    """Wraps a trained SentencePiece model; `decode` gives detokenized text."""

    def __init__(self, model_proto: bytes, sampling_alpha: float = 0.0,
                 seeds: Iterator[int] | None = None):
        self.model_proto = model_proto
        self.sampling_alpha = sampling_alpha
        self.processor = spm.SentencePieceProcessor(model_proto=model_proto)
        self._seeds = seeds if seeds is not None else itertools.count()

    def sampling(self, alpha: float, seeds: Iterator[int]) -> "SentencePieceTokenizer":
        """This model encoding each line with a sampled segmentation (subword regularization,
        Kudo 2018: unigram sampling with smoothing `alpha`; BPE-dropout with rate `alpha` for
        BPE models), for training; `alpha` 0 is the deterministic best segmentation. `seeds`: one
        per line, for the threads that start sampling (share one among the samplers of a run)."""
        return type(self)(self.model_proto, alpha, seeds)

    @classmethod
    def train(cls, lines: Iterable[str], size: int, model_type: str = "unigram",
              character_coverage: float = 1.0) -> "SentencePieceTokenizer":
        model = io.BytesIO()
        # Fixed seed: every worker of a distributed run must build the same vocabulary.
        spm.set_random_generator_seed(0)
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines), model_writer=model, vocab_size=size,
            model_type=model_type, character_coverage=character_coverage,
            pad_id=PAD, unk_id=UNK, bos_id=BOS, eos_id=EOS, pad_piece=PAD_TOKEN,
            unk_piece=UNK_TOKEN, bos_piece=BOS_TOKEN, eos_piece=EOS_TOKEN,
            input_sentence_size=MAX_TRAINING_SENTENCES, shuffle_input_sentence=True,
            hard_vocab_limit=False, minloglevel=2, num_threads=os.cpu_count() or 1)
        return cls(model.getvalue())

    @classmethod
    def load(cls, prefix: str | os.PathLike) -> "SentencePieceTokenizer":
        with open(f"{prefix}{SUFFIX}", "rb") as handle:
            return cls(handle.read())

    def save(self, prefix: str | os.PathLike) -> str:
        path = f"{prefix}{SUFFIX}"
        with open(path, "wb") as handle:
            handle.write(self.model_proto)
        return path

    def encode(self, line: str) -> list[int]:
        """Subword ids of a line, without BOS/EOS (a sampled segmentation if sampling)."""
        if not self.sampling_alpha:
            return self.processor.encode(line)
        with _SEEDING:
            # SentencePiece samples from a generator per OS thread, seeded from its global seed
            # when the thread first samples; tf.data reads each epoch in new threads, which
            # would all repeat the first epoch's segmentations. A new global seed before each
            # line gives every new thread its own; a thread already sampling keeps its generator.
            spm.set_random_generator_seed(next(self._seeds))
            return self.processor.encode(line, enable_sampling=True, alpha=self.sampling_alpha,
                                         nbest_size=-1)

    def decode(self, ids: Iterable[int]) -> str:
        """Detokenized text of ids: stops at EOS, drops PAD and BOS."""
        return self.processor.decode(content_ids(ids))

    def pieces(self, ids: Iterable[int]) -> list[str]:
        """The subword pieces of ids (stops at EOS), e.g. for heatmap labels."""
        return [self.processor.id_to_piece(i) for i in content_ids(ids)]

    def source_pieces(self, line: str) -> list[str]:
        """How the model sees a source line, one label per encoded id."""
        return self.processor.encode(line, out_type=str)

    def __len__(self) -> int:
        return self.processor.get_piece_size()

