"""The options of a recipe: one frozen dataclass per section, each option defined once.

Each field is an `option(default, help, check=...)`: its type is the annotation, its help is what
`nmt --help` shows for a flag that overrides it, and its check is a small object (`positive`, an
`Interval`, a registry's names...) that says what the value must be. Loading a recipe, `--set` and
the command line all read these definitions; rules between two options are the `RULES` below.

Imports nothing beyond the standard library and the length-penalty registry, so the model and the
search take their typed settings without reaching YAML or sacrebleu (`nmt.config.recipes` reads
recipe files; the sacrebleu tokenizer check imports sacrebleu only when it runs).
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, NamedTuple

from nmt.search import penalties

SIDES = ("src", "tgt")


# ---- checks: what a value must be beyond its type -----------------------------------------------

class Invalid(ValueError):
    """A refused value: "<option> must be `expected`, got `value`"."""

    def __init__(self, expected: str, value):
        super().__init__(expected)
        self.expected, self.value = expected, value


class Positive:
    """An integer above zero (a count that cannot be empty)."""
    expected = "a positive integer"

    def __call__(self, value) -> bool:
        return value > 0


class Interval:
    """A number in an interval written as in mathematics: "[0, 1)" holds 0 but not 1."""

    def __init__(self, text: str):
        self.expected = f"in {text}"
        self.low, self.high = (float(x) for x in text[1:-1].split(","))
        self.low_closed, self.high_closed = text[0] == "[", text[-1] == "]"

    def __call__(self, value) -> bool:
        above = value >= self.low if self.low_closed else value > self.low
        below = value <= self.high if self.high_closed else value < self.high
        return above and below


class OneOf:
    """A name in a registry read when first needed (sacrebleu's tokenizers: the model imports
    these options and must not import sacrebleu)."""

    def __init__(self, what: str, names: Callable[[], typing.Sequence[str]]):
        self.what, self.names = what, names

    @property
    def expected(self) -> str:
        return f"{self.what}: " + ", ".join(self.names())

    def __call__(self, value) -> bool:
        return value in self.names()


class PositiveIntegers:
    """A list of positive integers (beam widths); the list itself is the option's type."""
    expected = "a list of positive integers"

    def __call__(self, value) -> bool:
        return isinstance(value, (list, tuple)) and all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)


class SidePaths:
    """A mapping of a side (src, tgt) to a file path, either side or both."""
    expected = "a mapping of src and/or tgt to file paths"

    def __call__(self, value) -> bool:
        return all(side in SIDES and isinstance(path, str) and path
                   for side, path in value.items())


def _sacrebleu_tokenizers() -> tuple:
    from sacrebleu.metrics import BLEU
    return tuple(BLEU.TOKENIZERS)


positive = Positive()
sacrebleu_tokenizer = OneOf("a sacrebleu tokenizer", _sacrebleu_tokenizers)


def option(default, help: str, check=None):
    """A recipe key: its default, its one-line help and its check (None: its type alone)."""
    metadata = {"help": help, "check": check}
    if isinstance(default, dict):  # a mutable default: each config gets its own copy
        return field(default_factory=lambda: dict(default), metadata=metadata)
    return field(default=default, metadata=metadata)


# ---- the sections -------------------------------------------------------------------------------

@dataclass(frozen=True)
class DataConfig:
    corpus: str = option("small_parallel_enja", "folder under the data root ($NMT_DATA), or "
                         "absolute")
    src: str = option("ja", "file suffix of the source side")
    tgt: str = option("en", "file suffix of the target side")
    train: str = option("train", "file prefix of the training pairs: train.<src> / train.<tgt>")
    dev: str = option("dev", "file prefix of the dev pairs (early stopping, model selection)")
    test: str = option("test", "file prefix of the held-out test pairs")
    max_len: int = option(50, "training pairs with more tokens than this on either side are "
                          "dropped", check=positive)
    max_line_tokens: int = option(1000, "pairs with a longer line (an unsplit document) are "
                                  "dropped", check=positive)
    train_lines: int = option(0, "use only the first N training pairs (0 = all)")
    download_url: str = option("", "base URL the corpus files can be fetched from, if missing "
                               "locally")
    download_names: dict = option({}, "local file name -> name under the URL")
    sha256: dict = option({}, "downloaded file name -> its expected sha256")


@dataclass(frozen=True)
class VocabConfig:
    kind: Literal["words", "sentencepiece"] = option("words", "what a token is")
    size: int = option(8000, "maximum entries per side, the 4 specials included", check=positive)
    min_freq: int = option(1, "words only: drop rarer types", check=positive)
    model_type: Literal["unigram", "bpe"] = option("unigram", "sentencepiece only: the "
                                                   "segmentation model")
    character_coverage: float = option(1.0, "sentencepiece only: share of characters kept, the "
                                       "rest -> <unk>; 0.9995 suits large CJK alphabets",
                                       check=Interval("(0, 1]"))
    joint: bool = option(False, "one vocabulary (and SentencePiece model) for both sides")
    sampling_alpha: float = option(0.0, "sentencepiece only: > 0 samples segmentations in "
                                   "training (Kudo 2018)", check=Interval("[0, 1]"))


@dataclass(frozen=True)
class ModelConfig:
    cell: Literal["lstm", "gru"] = option("lstm", "the recurrent cell of encoder and decoder")
    embedding_dim: int = option(256, "source and target embedding width", check=positive)
    encoder_units: int = option(256, "per direction: the encoder memory is twice this wide",
                                check=positive)
    encoder_layers: int = option(2, "stacked bidirectional layers (residual above the first)",
                                 check=positive)
    decoder_units: int = option(512, "decoder state and attentional vector width", check=positive)
    attention_units: int = option(512, "width of the additive attention layer", check=positive)
    dropout: float = option(0.2, "on embeddings, recurrent input and attentional-vector input",
                            check=Interval("[0, 1)"))
    tie: Literal["none", "decoder", "all"] = option("none", "embeddings shared with the output "
                                                    "layer: decoder = the target's | all = also "
                                                    "the source's (needs vocab.joint)")
    embedding_init: Literal["uniform", "normal"] = option("uniform", "Keras's U(+-0.05) | "
                                                          "N(0, 0.1)")
    bridge: Literal["per_state", "hidden", "zero"] = option(
        "per_state", "the decoder's first state from the encoder's final one: per_state = a tanh "
        "layer per part (h from h, c from c) | hidden = one tanh layer from h gives both h and c "
        "(JoeyNMT's) | zero")
    pretrained_embeddings: dict = option(
        {}, "word vectors (word2vec/GloVe text, .gz too) that initialize the embedding rows of "
        "the words they cover: {src: PATH, tgt: PATH}, either side or both; relative paths are "
        "under the data root. Read when a run starts, never when it resumes or a model folder "
        "is loaded", check=SidePaths())
    freeze_embeddings: bool = option(False, "keep the embeddings of sides given vectors fixed")


# Model keys that only say how training initializes the weights: not arguments of the layers.
INITIALIZATION_KEYS = ("pretrained_embeddings", "freeze_embeddings")


def architecture(model: ModelConfig) -> dict:
    """The model keys that define the layers (the arguments of `Seq2Seq`)."""
    return {key: value for key, value in dataclasses.asdict(model).items()
            if key not in INITIALIZATION_KEYS}


@dataclass(frozen=True)
class TrainConfig:
    batch_type: Literal["sentences", "tokens"] = option("sentences", "what fills a batch: "
                                                        "batch_size sentences | up to "
                                                        "batch_tokens tokens")
    batch_size: int = option(64, "sentences per batch (global, across replicas)", check=positive)
    batch_tokens: int = option(1024, "target tokens (EOS included) per batch, at most, with "
                               "batch_type tokens", check=positive)
    bucket_width: int = option(1, "target lengths per batch: 1 = one exact length (no target "
                               "padding)", check=positive)
    epochs: int = option(30, "epochs at most (early stopping may end sooner)", check=positive)
    learning_rate: float = option(0.001, "Adam's learning rate")
    adam_epsilon: float = option(1.0e-7, "Adam's denominator term: Keras's default; PyTorch's "
                                 "is 1e-8", check=Interval("(0, 1)"))
    warmup_steps: int = option(0, "updates over which the learning rate rises linearly from "
                               "learning_rate / warmup_steps to learning_rate (0 = off); keep it "
                               "within the first epoch, before any plateau decay")
    clip_norm: float = option(5.0, "clip gradients by their global norm")
    weight_decay: float = option(0.0, "decoupled (AdamW) L2 decay: each step multiplies weight "
                                 "matrices and embeddings by 1 - learning_rate * weight_decay; "
                                 "biases (1-D weights) are not decayed. 0 = off")
    label_smoothing: float = option(0.0, "share of the target mass spread over the vocabulary",
                                    check=Interval("[0, 1)"))
    patience: int = option(5, "early stopping: epochs without a better dev BLEU")
    lr_decay: float = option(0.5, "multiply the learning rate by this when the dev metric "
                             "stalls", check=Interval("(0, 1]"))
    lr_patience: int = option(2, "epochs without a better dev metric before the decay")
    lr_decay_metric: Literal["bleu", "ppl"] = option(
        "bleu", "the dev metric the decay watches: BLEU (higher is better) or perplexity (lower "
        "is better; it turns as soon as the model starts to overfit, while BLEU may still climb)")
    min_learning_rate: float = option(1.0e-5, "the decay stops here")
    shuffle_buffer: int = option(100000, "pairs held for shuffling; bounds memory on large "
                                 "corpora", check=positive)
    seed: int = option(42, "weights, dropout and shuffling")
    distribution: Literal["default", "mirrored", "multi_worker"] = option(
        "default", "tf.distribute strategy")
    precision: Literal["float32", "mixed_bfloat16", "mixed_float16"] = option(
        "float32", "float32 variables and optimizer in all; the mixed policies multiply matrices "
        "in 16 bits (mixed_bfloat16: CPUs with bf16 units; mixed_float16: GPUs)")
    keep_best: int = option(1, "the run directory keeps the weights of this many best epochs "
                            "(dev BLEU)", check=positive)
    keep_last: int = option(1, "... and of this many last epochs (for `nmt average --last`)",
                            check=positive)
    average_best: int = option(0, "> 1: at the end, average the weights of this many best "
                               "epochs into RUN/averaged (needs keep_best >= it); 0 = off")


@dataclass(frozen=True)
class DecodeConfig:
    beam_size: int = option(5, "beam width; 1 = greedy", check=positive)
    alpha: float = option(1.0, "length normalization: score = sum log p / penalty(T)")
    length_penalty: Literal[penalties.NAMES] = option("average",
                                                      f"penalty(T): {penalties.help_text()}")
    max_len_ratio: float = option(2.0, "output length limit = ratio * source length + offset")
    max_len_offset: int = option(10, "output length limit = ratio * source length + offset")
    max_input_len: int = option(250, "longer source lines are translated in pieces of this many "
                                "tokens", check=positive)
    batch_size: int = option(64, "sentences per decoding batch", check=positive)
    precision: Literal["float32", "bfloat16"] = option(
        "float32", "weights and matrix products; bfloat16 pays on CPUs with avx512_bf16 or "
        "amx_bf16")


@dataclass(frozen=True)
class EvalConfig:
    tokenize: str = option("13a", 'sacrebleu tokenizer; "none" for pre-tokenized corpora',
                           check=sacrebleu_tokenizer)
    beam_sweep: tuple = option((1, 2, 5, 10, 20), "beam widths compared by `nmt evaluate`",
                               check=PositiveIntegers())
    # The grid `nmt tune` searches on dev, and `nmt train` at the end of training, writing the
    # best into the run's decode section.
    tune_beams: tuple = option((1, 5, 10), "beam widths of the tuning grid ([] = no tuning)",
                               check=PositiveIntegers())
    tune_alphas: tuple[float, ...] = option((0.0, 0.5, 1.0), "alphas of the tuning grid")
    tune_length_penalties: tuple[Literal[penalties.NAMES], ...] = option(
        ("average",), "length penalties of the tuning grid")


@dataclass(frozen=True)
class Recipe:
    data: DataConfig = field(default_factory=DataConfig)
    vocab: VocabConfig = field(default_factory=VocabConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


# ---- the options as data: for recipe files, --set and the command line --------------------------

class Option(NamedTuple):
    """One recipe key as its field defines it."""
    section: str
    key: str
    type: Any  # the resolved annotation
    default: Any
    help: str
    check: Any  # an object with `expected` and `__call__(value) -> bool`, or None

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"

    @property
    def choices(self) -> tuple | None:
        """The allowed values, when they are a list of names (for command-line choices)."""
        if typing.get_origin(self.type) is Literal:
            return typing.get_args(self.type)
        if isinstance(self.check, OneOf):
            return tuple(self.check.names())
        return None

    def validate(self, value):
        """`value` (as YAML reads it) as the option holds it; raises `Invalid`."""
        value = _typed(self.type, value)
        if self.check is not None and not self.check(value):
            raise Invalid(self.check.expected, value)
        return _held(self.type, value)


def _typed(hint, value):
    """`value` checked against the annotation `hint`, as written (1 stays 1 for the messages).
    The numbers of a recipe are never negative. A bare `tuple` is a list its option's check
    describes."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        if value not in typing.get_args(hint):
            raise Invalid("one of " + ", ".join(map(str, typing.get_args(hint))), value)
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise Invalid("true or false", value)
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid("an integer", value)
        if value < 0:
            raise Invalid("a positive integer", value)
        return value
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-8 (no dot) as a string; people write it
            value = _number_or_text(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Invalid("a number", value)
        if not math.isfinite(value) or value < 0:
            raise Invalid("a finite non-negative number", value)
        return value
    if hint is str:
        if not isinstance(value, str):
            raise Invalid("a string", value)
        return value
    if origin is tuple:  # tuple[item, ...]: every item checked as `item`
        if not isinstance(value, (list, tuple)):
            raise Invalid("a list", value)
        item = typing.get_args(hint)[0]
        return tuple(_held(item, _typed(item, v)) for v in value)
    if hint is tuple:
        return value
    if hint is dict:
        if not isinstance(value, dict):
            raise Invalid("a mapping", value)
        return dict(value)
    raise AssertionError(f"unhandled option type {hint}")


def _held(hint, value):
    """A checked value as the option holds it: floats as float, lists as tuples."""
    if hint is float:
        return float(value)
    return tuple(value) if hint is tuple else value


def _number_or_text(text: str):
    """The float a string such as "1e-8" stands for, or the string itself; words float() would
    also read ("nan", "inf") stay text, to be refused as not a number."""
    try:
        return float(text) if any(c.isdigit() for c in text) else text
    except ValueError:
        return text


def _section_options(section: str, cls) -> dict[str, Option]:
    hints = typing.get_type_hints(cls)
    return {f.name: Option(section, f.name, hints[f.name],
                           f.default_factory() if f.default is dataclasses.MISSING else f.default,
                           f.metadata["help"], f.metadata["check"])
            for f in dataclasses.fields(cls)}


SECTION_TYPES = typing.get_type_hints(Recipe)  # section name -> its dataclass
SECTIONS = tuple(SECTION_TYPES)
OPTIONS = {section: _section_options(section, cls) for section, cls in SECTION_TYPES.items()}


def get(name: str) -> Option:
    """The option called "section.key"."""
    section, _, key = name.partition(".")
    return OPTIONS[section][key]


# ---- rules between options ----------------------------------------------------------------------

class Rule(NamedTuple):
    """Two options valid alone but not together: `option` as set needs `needs` to agree.

    `broken(recipe)` says whether the recipe breaks the rule; `message` (formatted with `recipe`)
    is the error, blamed on the line of `option`."""
    option: str
    needs: str
    broken: Callable[[Recipe], bool]
    message: str

    @property
    def sections(self) -> set:
        return {self.option.partition(".")[0], self.needs.partition(".")[0]}


RULES = (
    Rule("model.pretrained_embeddings", "vocab.kind",
         lambda r: bool(r.model.pretrained_embeddings) and r.vocab.kind != "words",
         "model.pretrained_embeddings needs a word vocabulary (vocab.kind: words), not "
         "{recipe.vocab.kind}"),
    Rule("model.freeze_embeddings", "model.pretrained_embeddings",
         lambda r: r.model.freeze_embeddings and not r.model.pretrained_embeddings,
         "model.freeze_embeddings keeps pretrained vectors fixed: it needs "
         "model.pretrained_embeddings"),
    Rule("model.tie", "vocab.joint",
         lambda r: r.model.tie == "all" and not r.vocab.joint,
         "model.tie: all shares the source embeddings too, which needs one vocabulary for both "
         "sides: set vocab.joint: true (or model.tie: decoder)"),
    Rule("vocab.sampling_alpha", "vocab.kind",
         lambda r: bool(r.vocab.sampling_alpha) and r.vocab.kind != "sentencepiece",
         "vocab.sampling_alpha samples SentencePiece segmentations: it needs vocab.kind: "
         "sentencepiece"),
)
