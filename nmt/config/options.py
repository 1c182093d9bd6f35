"""The options of a recipe: one frozen dataclass per section, each option defined once.

Each field is an `option(default, help, check=...)` (`nmt.config.checks`): its type is the
annotation, its help is what `nmt --help` shows for a flag that overrides it, and its check is a
small object (`positive`, an `Interval`, a registry's names...) that says what the value must be.
Loading a recipe, `--set` and the command line all read these definitions (`OPTIONS`, `get`);
rules between two options are the `RULES` below.

Imports nothing beyond the standard library, `checks` and the length-penalty registry
(`penalties`), so the model and the search take their typed settings without reaching YAML or
sacrebleu (`nmt.config.recipes` reads recipe files; the sacrebleu tokenizer check imports
sacrebleu only when it runs).
"""
from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from typing import Callable, Literal, NamedTuple

from nmt.config.checks import (
    Interval,
    OneOf,
    Option,
    PositiveIntegers,
    SidePaths,
    option,
    options_of,
    positive,
)
from nmt.config import penalties

SIDES = ("src", "tgt")


def _sacrebleu_tokenizers() -> tuple:
    from sacrebleu.metrics import BLEU
    return tuple(BLEU.TOKENIZERS)


sacrebleu_tokenizer = OneOf("a sacrebleu tokenizer", _sacrebleu_tokenizers)


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
    prepared: str = option("", "a folder of `nmt prepare` to train from (the corpus as token-id "
                           "shards); '' = prepared into RUN/prepared before the first epoch")
    download_url: str = option("", "base URL the corpus files can be fetched from, if missing "
                               "locally")
    download_names: dict = option({}, "local file name -> name under the URL")
    sha256: dict = option({}, "downloaded file name -> its expected sha256")


@dataclass(frozen=True)
class VocabConfig:
    kind: Literal["words", "sentencepiece"] = option("words", "what a token is")
    size: int = option(8000, "maximum entries per side, the 4 specials included",
                       check=Interval("[5, inf)"))
    min_freq: int = option(1, "words only: drop rarer types", check=positive)
    model_type: Literal["unigram", "bpe"] = option("unigram", "sentencepiece only: the "
                                                   "segmentation model")
    character_coverage: float = option(1.0, "sentencepiece only: share of characters kept, the "
                                       "rest -> <unk>; 0.9995 suits large CJK alphabets",
                                       check=Interval("(0, 1]"))
    joint: bool = option(False, "one vocabulary (and SentencePiece model) for both sides")
    sampling_alpha: float = option(0.0, "sentencepiece only: > 0 samples segmentations in "
                                   "training (Kudo 2018)", check=Interval("[0, 1]"))
    from_model: str = option("", "a model folder or run directory whose vocabularies this run "
                             "takes as they are (models that share them can be ensembled); its "
                             "vocabulary settings replace this section's. '' = built from the "
                             "training data")


@dataclass(frozen=True)
class ModelConfig:
    cell: Literal["lstm", "gru"] = option("lstm", "the recurrent cell of encoder and decoder")
    embedding_dim: int = option(256, "source and target embedding width", check=positive)
    encoder_units: int = option(256, "per direction: the encoder memory is twice this wide",
                                check=positive)
    encoder_layers: int = option(2, "stacked bidirectional layers (residual above the first)",
                                 check=positive)
    decoder_units: int = option(512, "decoder state and attentional vector width", check=positive)
    attention_units: int = option(512, "width of the additive attention's hidden layer "
                                  "(unused by multiplicative)", check=positive)
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
    attention: Literal["additive", "multiplicative"] = option(
        "additive", "the attention score, a name in nmt.model.attention.ATTENTIONS: additive = "
        "Bahdanau's v^T tanh(W s + U h) | multiplicative = Luong's general s^T W h")
    pretrained_embeddings: dict = option(
        {}, "word vectors (word2vec/GloVe text, .gz too) that initialize the embedding rows of "
        "the words they cover: {src: PATH, tgt: PATH}, either side or both; relative paths are "
        "under the data root. Read when a run starts, never when it resumes or a model folder "
        "is loaded", check=SidePaths(SIDES))
    freeze_embeddings: bool = option(False, "keep the embeddings fixed: those of sides given "
                                     "vectors, or all of a model started from train.init_from "
                                     "(with tie, the tied output layer too)")


# Model keys that only say how training initializes the weights: not arguments of the layers.
INITIALIZATION_KEYS = ("pretrained_embeddings", "freeze_embeddings")


def architecture(model: ModelConfig) -> dict:
    """The model keys that define the layers (the arguments of `Seq2Seq`)."""
    return {key: value for key, value in dataclasses.asdict(model).items()
            if key not in INITIALIZATION_KEYS}


# Layer arguments that shape no weight: a run started from another model's weights may set them
# anew.
WEIGHTLESS_KEYS = ("dropout", "embedding_init")


def weight_shaping(model: ModelConfig) -> dict:
    """The model keys that decide which weights a model has and their shapes: those a model
    started from another's (`train.init_from`) must share with it."""
    return {key: value for key, value in architecture(model).items()
            if key not in WEIGHTLESS_KEYS}


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
    accumulate: int = option(1, "batches per update: each training step takes K batches and "
                             "makes the update of one K-times larger batch (replicas and "
                             "workers exchange gradients once per K batches); the learning "
                             "rate, warmup_steps, the optimizer and the progress bar count "
                             "updates", check=positive)
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
    replicas: int = option(1, "with distribution mirrored on a CPU: data-parallel replicas in "
                           "this process, one per logical CPU device (the threads split among "
                           "them), each on its share of every batch", check=positive)
    precision: Literal["float32", "mixed_bfloat16", "mixed_float16"] = option(
        "float32", "float32 variables and optimizer in all; the mixed policies multiply matrices "
        "in 16 bits (mixed_bfloat16: CPUs with bf16 units; mixed_float16: GPUs)")
    keep_best: int = option(1, "the run directory keeps the weights of this many best epochs "
                            "(dev BLEU)", check=positive)
    keep_last: int = option(1, "... and of this many last epochs (for `nmt average --last`)",
                            check=positive)
    average_best: int = option(0, "> 1: at the end, average the weights of this many best "
                               "epochs into RUN/averaged (needs keep_best >= it); 0 = off")
    init_from: str = option("", "a model folder or run directory (an averaged one too) to start "
                            "from: its vocabularies and best weights, then training on this "
                            "recipe's data (fine-tuning); '' = random weights")
    init_optimizer: Literal["fresh", "keep"] = option(
        "fresh", "with init_from: fresh = a new Adam | keep = the base run's Adam state (moments, "
        "step count) and its last epoch's weights, from its backup/ (a run directory only); the "
        "learning rate is this recipe's either way")


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


# The options as data: for recipe files, --set and the command line.
SECTION_TYPES = typing.get_type_hints(Recipe)  # section name -> its dataclass
SECTIONS = tuple(SECTION_TYPES)
OPTIONS = {section: options_of(section, cls) for section, cls in SECTION_TYPES.items()}


def get(name: str) -> Option:
    """The option called "section.key"."""
    section, _, key = name.partition(".")
    return OPTIONS[section][key]


def absolute_folder(path: str) -> str:
    """A folder named in a recipe, absolute: "base" and "/here/base/" are the same one."""
    return os.path.abspath(os.path.expanduser(path))


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
    # With train as its second section: model.json's model section alone cannot break it.
    Rule("model.freeze_embeddings", "train.init_from",
         lambda r: (r.model.freeze_embeddings and not r.model.pretrained_embeddings
                    and not r.train.init_from),
         "model.freeze_embeddings keeps pretrained vectors fixed: it needs "
         "model.pretrained_embeddings (or train.init_from)"),
    Rule("model.pretrained_embeddings", "train.init_from",
         lambda r: bool(r.model.pretrained_embeddings and r.train.init_from),
         "model.pretrained_embeddings would overwrite the embeddings of train.init_from's model: "
         "set one of them"),
    Rule("train.init_optimizer", "train.init_from",
         lambda r: r.train.init_optimizer == "keep" and not r.train.init_from,
         "train.init_optimizer: keep takes the optimizer state of train.init_from's run: it needs "
         "train.init_from"),
    Rule("train.init_optimizer", "model.freeze_embeddings",
         lambda r: r.train.init_optimizer == "keep" and r.model.freeze_embeddings,
         "train.init_optimizer: keep needs the base run's trainable weights, which "
         "model.freeze_embeddings changes: use init_optimizer: fresh"),
    Rule("vocab.from_model", "train.init_from",
         lambda r: bool(r.vocab.from_model and r.train.init_from and absolute_folder(
             r.vocab.from_model) != absolute_folder(r.train.init_from)),
         "vocab.from_model ({recipe.vocab.from_model}) differs from train.init_from "
         "({recipe.train.init_from}), whose vocabularies its weights need: leave it empty"),
    Rule("model.tie", "vocab.joint",
         lambda r: r.model.tie == "all" and not r.vocab.joint,
         "model.tie: all shares the source embeddings too, which needs one vocabulary for both "
         "sides: set vocab.joint: true (or model.tie: decoder)"),
    Rule("vocab.sampling_alpha", "vocab.kind",
         lambda r: bool(r.vocab.sampling_alpha) and r.vocab.kind != "sentencepiece",
         "vocab.sampling_alpha samples SentencePiece segmentations: it needs vocab.kind: "
         "sentencepiece"),
    Rule("data.prepared", "vocab.sampling_alpha",
         lambda r: bool(r.data.prepared and r.vocab.sampling_alpha),
         "data.prepared holds fixed segmentations, but vocab.sampling_alpha "
         "({recipe.vocab.sampling_alpha}) samples new ones from the text each epoch: set one of "
         "them back"),
    Rule("train.average_best", "train.keep_best",
         lambda r: r.train.average_best > r.train.keep_best,
         "train.average_best ({recipe.train.average_best}) needs train.keep_best >= it, not "
         "{recipe.train.keep_best}"),
    Rule("train.replicas", "train.distribution",
         lambda r: r.train.replicas > 1 and r.train.distribution != "mirrored",
         "train.replicas: {recipe.train.replicas} makes MirroredStrategy replicas of the CPU: it "
         "needs train.distribution: mirrored"),
)
