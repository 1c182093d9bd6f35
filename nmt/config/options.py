"""The options of a recipe: one frozen dataclass per section, with their defaults.

Imports nothing beyond the standard library and the length-penalty registry, so the model and the
search take their typed settings without reaching YAML or sacrebleu (`nmt.config.recipes` reads
and checks recipe files).
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Literal

from nmt.search import penalties


@dataclass(frozen=True)
class DataConfig:
    corpus: str = "small_parallel_enja"  # folder under the data root ($NMT_DATA), or absolute
    src: str = "ja"  # file suffix of the source side
    tgt: str = "en"  # file suffix of the target side
    train: str = "train"  # file prefix: train.<src> / train.<tgt>
    dev: str = "dev"
    test: str = "test"
    max_len: int = 50  # training pairs with more tokens than this on either side are dropped
    max_line_tokens: int = 1000  # pairs with a longer line (an unsplit document) are dropped
    train_lines: int = 0  # use only the first N training pairs (0 = all)
    download_url: str = ""  # base URL the corpus files can be fetched from, if missing locally
    download_names: dict = field(default_factory=dict)  # local file name -> name under the URL
    sha256: dict = field(default_factory=dict)  # downloaded file name -> its expected sha256


@dataclass(frozen=True)
class VocabConfig:
    kind: Literal["words", "sentencepiece"] = "words"
    size: int = 8000  # maximum entries per side, the 4 specials included
    min_freq: int = 1  # words only: drop rarer types
    model_type: Literal["unigram", "bpe"] = "unigram"  # sentencepiece only
    character_coverage: float = 1.0  # sentencepiece only: 0.9995 suits large CJK alphabets
    joint: bool = False  # one vocabulary (and SentencePiece model) for both sides
    sampling_alpha: float = 0.0  # sentencepiece only: > 0 samples segmentations in training


@dataclass(frozen=True)
class ModelConfig:
    cell: Literal["lstm", "gru"] = "lstm"
    embedding_dim: int = 256
    encoder_units: int = 256  # per direction: the encoder memory is twice this wide
    encoder_layers: int = 2
    decoder_units: int = 512
    attention_units: int = 512
    dropout: float = 0.2
    tie: Literal["none", "decoder", "all"] = "none"  # embeddings shared with the output layer
    embedding_init: Literal["uniform", "normal"] = "uniform"  # Keras's U(+-0.05) | N(0, 0.1)
    # The decoder's first state from the encoder's final one: per_state = a tanh layer per part
    # (h from h, c from c) | hidden = one tanh layer from h gives both h and c (JoeyNMT's) | zero.
    bridge: Literal["per_state", "hidden", "zero"] = "per_state"
    # The attention score, a name in nmt.model.attention.ATTENTIONS: additive = Bahdanau's
    # v^T tanh(W s + U h) | multiplicative = Luong's "general" s^T W h.
    attention: Literal["additive", "multiplicative"] = "additive"
    # Word vectors (word2vec/GloVe text, `.gz` too) that initialize the embedding rows of the words
    # they cover: {src: PATH, tgt: PATH}, either side or both; relative paths are under the data
    # root. Read when a run starts, never when it resumes or a model folder is loaded.
    pretrained_embeddings: dict = field(default_factory=dict)
    freeze_embeddings: bool = False  # keep the embeddings of sides given vectors fixed


# Model keys that only say how training initializes the weights: not arguments of the layers.
INITIALIZATION_KEYS = ("pretrained_embeddings", "freeze_embeddings")
SIDES = ("src", "tgt")


def architecture(model: ModelConfig) -> dict:
    """The model keys that define the layers (the arguments of `Seq2Seq`)."""
    return {key: value for key, value in dataclasses.asdict(model).items()
            if key not in INITIALIZATION_KEYS}


@dataclass(frozen=True)
class TrainConfig:
    batch_type: Literal["sentences", "tokens"] = "sentences"  # what fills a batch
    batch_size: int = 64  # sentences: sentences per batch (global, across replicas)
    batch_tokens: int = 1024  # tokens: target tokens (EOS included) per batch, at most
    bucket_width: int = 1  # target lengths per batch: 1 = one exact length (no target padding)
    epochs: int = 30
    learning_rate: float = 0.001
    adam_epsilon: float = 1.0e-7  # Adam's denominator term: Keras's default; PyTorch's is 1e-8
    # Updates over which the learning rate rises linearly from learning_rate / warmup_steps to
    # learning_rate (0 = off); keep it within the first epoch, before any plateau decay.
    warmup_steps: int = 0
    clip_norm: float = 5.0  # clip gradients by their global norm
    # Decoupled (AdamW) L2 decay: each step multiplies weight matrices and embeddings by
    # 1 - learning_rate * weight_decay; biases (1-D weights) are not decayed. 0 = off.
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    patience: int = 5  # early stopping: epochs without a better dev BLEU
    lr_decay: float = 0.5  # multiply the learning rate by this when the dev metric stalls
    lr_patience: int = 2  # epochs without a better dev metric before the decay
    # The dev metric the decay watches: BLEU (higher is better) or perplexity (lower is better;
    # it turns as soon as the model starts to overfit, while BLEU may still climb).
    lr_decay_metric: Literal["bleu", "ppl"] = "bleu"
    min_learning_rate: float = 1.0e-5
    shuffle_buffer: int = 100000  # pairs held for shuffling; bounds memory on large corpora
    seed: int = 42
    distribution: Literal["default", "mirrored", "multi_worker"] = "default"
    # float32 variables and optimizer in all; the mixed policies multiply matrices in 16 bits
    precision: Literal["float32", "mixed_bfloat16", "mixed_float16"] = "float32"
    keep_best: int = 1  # the run directory keeps the weights of this many best epochs (dev BLEU)
    keep_last: int = 1  # ... and of this many last epochs (for `nmt average --last`)
    average_best: int = 0  # > 1: at the end, average the weights of this many best epochs into
    #                        RUN/averaged (needs keep_best >= it); 0 = off


@dataclass(frozen=True)
class DecodeConfig:
    beam_size: int = 5
    alpha: float = 1.0  # length normalization: score = sum log p / penalty(T)
    length_penalty: Literal[penalties.NAMES] = "average"  # a name in nmt.search.penalties.PENALTIES
    max_len_ratio: float = 2.0  # output length limit = ratio * source length + offset
    max_len_offset: int = 10
    max_input_len: int = 250  # longer source lines are translated in pieces of this many tokens
    batch_size: int = 64
    precision: Literal["float32", "bfloat16"] = "float32"  # weights and matrix products


@dataclass(frozen=True)
class EvalConfig:
    tokenize: str = "13a"  # sacrebleu tokenizer; "none" for pre-tokenized corpora
    beam_sweep: tuple = (1, 2, 5, 10, 20)  # beam widths compared by `nmt evaluate`
    # The grid `nmt tune` searches on dev, and `nmt train` at the end of training, writing the
    # best into the run's decode section (empty tune_beams: no tuning).
    tune_beams: tuple = (1, 5, 10)
    tune_alphas: tuple[float, ...] = (0.0, 0.5, 1.0)
    tune_length_penalties: tuple[Literal[penalties.NAMES], ...] = ("average",)


@dataclass(frozen=True)
class Recipe:
    data: DataConfig = field(default_factory=DataConfig)
    vocab: VocabConfig = field(default_factory=VocabConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


SECTIONS = tuple(f.name for f in dataclasses.fields(Recipe))
_SECTION_TYPES = typing.get_type_hints(Recipe)
_POSITIVE = {"size", "embedding_dim", "encoder_units", "encoder_layers", "decoder_units",
             "attention_units", "batch_size", "batch_tokens", "bucket_width", "epochs", "max_len",
             "max_line_tokens", "beam_size", "shuffle_buffer", "min_freq", "max_input_len",
             "keep_best", "keep_last"}
# Keys whose values are fractions, and the interval each must lie in.
_INTERVALS = {"dropout": "[0, 1)", "label_smoothing": "[0, 1)", "lr_decay": "(0, 1]",
              "character_coverage": "(0, 1]", "sampling_alpha": "[0, 1]",
              "adam_epsilon": "(0, 1)"}


def choices(section: str, key: str) -> tuple:
    """The allowed values of a key typed as a Literal (for command-line options)."""
    return typing.get_args(typing.get_type_hints(_SECTION_TYPES[section])[key])
