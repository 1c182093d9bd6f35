"""`nmt export`: one SavedModel that translates raw lines, with tokenization and search inside.

A process that loads the export needs TensorFlow only (and `tensorflow_text` for SentencePiece
models: `import tensorflow_text` before loading). Signatures:

    serving_default(lines: string [N])
        -> translations: string [N, K], scores: float32 [N, K], log_probs: float32 [N, K]
    score(source: string [N], target: string [N]) -> log_prob: float32 [N], score: float32 [N]

The graph applies the translation rules of `nmt.search.rules` and the search of
`nmt.search.decoding.search_batch`, as `Translator.translate` does, so outputs are those of
`nmt translate` with the same settings: blank lines give "" (score and log p 0) at every rank;
lines longer than `max_input_len` tokens are cut into pieces whose best translations are joined;
segments are searched in length-sorted batches of `decode.batch_size`. Ranks nothing fills (the
search found fewer than K hypotheses, or the line was cut) hold "" and -inf. `score` is forced
scoring (`Searcher.score`) of the whole source, never cut. Everything runs in the translator's
precision: a bfloat16 translator's weights are saved in bfloat16, and `score` uses them too.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import NamedTuple, Protocol

import tensorflow as tf

import nmt
from nmt.errors import NmtError, OutputError
from nmt.files import textio
from nmt.search import rules
from nmt.search.decoding import forced_log_prob, normalized_score, search_batch
from nmt.search.inference import Ensemble
from nmt.storage import manifest
from nmt.translation.translate import Translator
from vocab import BOS, EOS, PAD, UNK, subwords, words

SETTINGS_FILE = Path("assets.extra") / "nmt.json"  # the decode settings baked into the graph
NEG_INF = float("-inf")  # the score of an empty rank


class GraphTokenizer(Protocol):
    """Strings <-> ids inside a TensorFlow graph, as the package's tokenizer of the same kind."""

    def encode(self, lines) -> tf.RaggedTensor:
        """string [N] -> int32 [N, (ids)], without BOS/EOS."""

    def decode(self, ids: tf.RaggedTensor):
        """int32 [N, (ids)] (content ids only) -> string [N]."""


class WordGraphTokenizer(tf.Module):
    """Whitespace tokens looked up in the vocabulary file (an asset of the export); <unk> for the
    rest."""

    def __init__(self, vocabulary_file: str):
        super().__init__()
        whole_line = tf.lookup.TextFileIndex.WHOLE_LINE
        line_number = tf.lookup.TextFileIndex.LINE_NUMBER
        self.ids = tf.lookup.StaticHashTable(tf.lookup.TextFileInitializer(
            vocabulary_file, tf.string, whole_line, tf.int64, line_number), UNK)
        self.tokens = tf.lookup.StaticHashTable(tf.lookup.TextFileInitializer(
            vocabulary_file, tf.int64, line_number, tf.string, whole_line), "")

    def encode(self, lines) -> tf.RaggedTensor:
        tokens = tf.strings.split(tf.strings.regex_replace(lines, rules.whitespace(), " "))
        return tf.cast(self.ids.lookup(tokens), tf.int32)

    def decode(self, ids: tf.RaggedTensor):
        return tf.strings.reduce_join(self.tokens.lookup(tf.cast(ids, tf.int64)), axis=-1,
                                      separator=" ")


class SentencePieceGraphTokenizer(tf.Module):
    """tensorflow-text's SentencePiece ops on the model's own proto (kept in the graph)."""

    def __init__(self, model_proto: bytes, name: str):
        super().__init__()
        try:
            import tensorflow_text
        except ImportError:
            raise NmtError("exporting a SentencePiece model needs tensorflow-text, of the same "
                           "version as TensorFlow: pip install 'nmt-rnn[export]'") from None
        # Distinct names: once loaded, two unnamed SentencePiece models in one SavedModel
        # both tokenize with the first one (tensorflow-text 2.21, measured).
        self.tokenizer = tensorflow_text.SentencepieceTokenizer(
            model=model_proto, out_type=tf.int32, name=f"{name}_sentencepiece")

    def encode(self, lines) -> tf.RaggedTensor:
        return self.tokenizer.tokenize(lines)

    def decode(self, ids: tf.RaggedTensor):
        return self.tokenizer.detokenize(ids)


def graph_tokenizer(tokenizer, staging: Path, name: str) -> GraphTokenizer:
    """The in-graph twin of a package tokenizer; word vocabularies are written to `staging`."""
    if isinstance(tokenizer, words.WordTokenizer):
        return WordGraphTokenizer(tokenizer.save(staging / name))
    if isinstance(tokenizer, subwords.SentencePieceTokenizer):
        return SentencePieceGraphTokenizer(tokenizer.model_proto, name)
    raise NmtError(f"cannot export a {type(tokenizer).__name__} vocabulary")


class TranslationModule(tf.Module):
    """The exported object: the weights and step tables of `translator`'s model (one, or an
    ensemble's members), the tokenizers (one source tokenizer per member) and the decode
    settings (fixed at export: they shape the graph)."""

    def __init__(self, translator: Translator, nbest: int, staging: Path):
        super().__init__()
        self.decode = translator.decode
        self.nbest = nbest
        self.searcher = translator.searcher  # the search's model, not tracked as such:
        members = translator.model.members if isinstance(translator.model, Ensemble) else [
            translator.model]
        # the weights are tracked without the Keras models (whose `call` the saver would trace).
        self.weights = [v for member in members for v in member.variables]
        # Stored, not recomputed per request: a matmul over the whole target vocabulary.
        self.tables = tf.nest.map_structure(lambda t: tf.Variable(t, trainable=False),
                                            self.searcher.tables)
        names = ["src"] if len(members) == 1 else [f"src{m + 1}" for m in range(len(members))]
        self.sources = [graph_tokenizer(tokenizer, staging, name)
                        for tokenizer, name in zip(translator.src_tokenizers, names)]
        self.target = graph_tokenizer(translator.tgt_tokenizer, staging, "tgt")

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="lines")])
    def translate(self, lines):
        lines = _checked_utf8(lines)
        blank = rules.blank_lines(lines, rules.TENSORFLOW)
        lines = tf.where(blank, "", lines)
        segments, counts = _cut([source.encode(lines) for source in self.sources], blank,
                                self.decode.max_input_len)
        texts, log_probs, scores, lengths = self._in_sorted_batches(
            _longest(segments), lambda rows: self._search(*_source_batch(segments, rows)),
            [(tf.string, [None, self.nbest]), (tf.float32, [None, self.nbest]),
             (tf.float32, [None, self.nbest]), (tf.int32, [None])])
        return self._per_line(counts, texts, log_probs, scores, lengths)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="source"),
                                  tf.TensorSpec([None], tf.string, name="target")])
    def score(self, source, target):
        source = _checked_utf8(source)
        sources = [_with_eos(tokenizer.encode(source)) for tokenizer in self.sources]
        target = self.target.encode(_checked_utf8(target))
        target = tf.concat([tf.fill([target.nrows(), 1], BOS), _with_eos(target)], axis=1)

        def forced(rows):
            batch, _ = _source_batch(sources, rows)
            log_prob, _, _ = forced_log_prob(self.searcher.model, batch,
                                             tf.gather(target, rows).to_tensor(PAD))
            return (log_prob,)

        (log_prob,) = self._in_sorted_batches(_longest(sources), forced, [(tf.float32, [None])])
        length = tf.cast(target.row_lengths(), tf.int32) - 1  # EOS counts, BOS does not
        return {"log_prob": log_prob, "score": self._normalized(log_prob, length)}

    # ---- pieces of the graph ------------------------------------------------------------------

    def _search(self, source, source_lengths):
        """Searches one batch of segments (ids + EOS, padded; `source_lengths` EOS included):
        texts, log p and scores [b, K], and the best hypothesis's token count [b]."""
        ops = rules.TENSORFLOW
        max_lengths = tf.cast(rules.output_length_limit(
            rules.source_words(source_lengths, ops), self.decode, ops), tf.int32)
        ids, log_probs, scores = search_batch(
            self.searcher.model, source, max_lengths, tf.constant(self.decode.alpha, tf.float32),
            self.tables, self.decode.beam_size, self.nbest, self.decode.length_penalty)
        found = tf.math.is_finite(scores)
        log_probs = tf.where(found, log_probs, NEG_INF)
        scores = tf.where(found, scores, NEG_INF)
        content = _content(tf.reshape(ids, [-1, tf.shape(ids)[2]]))
        texts = tf.where(found, tf.reshape(self.target.decode(content), tf.shape(scores)), "")
        lengths = tf.reshape(tf.cast(content.row_lengths(), tf.int32), tf.shape(scores))
        return texts, log_probs, scores, lengths[:, 0]

    def _per_line(self, counts, texts, log_probs, scores, lengths):
        """Segment results -> line results: one segment passes through; a blank line (none) is
        "" scoring 0 at every rank; a cut line is its pieces' best translations joined
        (`rules.joined_*`), its only rank."""
        def pieces(x):
            return tf.RaggedTensor.from_row_lengths(x, counts)

        ops = rules.TENSORFLOW
        joined = (rules.joined_text(pieces(texts[:, 0]), ops),
                  rules.joined_log_prob(pieces(log_probs[:, 0]), ops))
        joined += (self._normalized(joined[1], rules.joined_length(pieces(lengths), ops)),)
        # Every line's first segment, with a row past the last segment for blank lines.
        first = tf.cumsum(counts, exclusive=True)
        rest = tf.range(self.nbest) > 0
        out = []
        for column, whole, blank, unused in zip((texts, log_probs, scores), joined,
                                                ("", 0.0, 0.0), ("", NEG_INF, NEG_INF)):
            column = tf.gather(tf.concat([column, tf.fill([1, self.nbest], unused)], 0), first)
            first_rank = tf.where(counts == 0, blank, tf.where(counts == 1, column[:, 0], whole))
            column = tf.concat([first_rank[:, None], column[:, 1:]], axis=1)
            column = tf.where((counts > 1)[:, None] & rest, unused, column)
            out.append(tf.where((counts == 0)[:, None], blank, column))  # as `nmt translate`
        return {"translations": out[0], "log_probs": out[1], "scores": out[2]}

    def _in_sorted_batches(self, lengths, fn, outputs):
        """fn(rows) on batches of `decode.batch_size` rows sorted by `lengths`
        (`rules.length_order`); `outputs`: (dtype, shape) of fn's results. Input order."""
        order = rules.length_order(lengths, rules.TENSORFLOW)
        size = self.decode.batch_size
        arrays = tuple(tf.TensorArray(dtype, size=0, dynamic_size=True, infer_shape=False,
                                      element_shape=shape) for dtype, shape in outputs)

        def body(i, arrays):
            found = fn(rules.batch_rows(order, i, size))
            return i + 1, tuple(a.write(i, x) for a, x in zip(arrays, found))

        _, arrays = tf.while_loop(lambda i, _: i * size < tf.size(order), body,
                                  (tf.constant(0), arrays))
        inverse = tf.math.invert_permutation(order)
        return tuple(tf.gather(a.concat(), inverse) for a in arrays)

    def _normalized(self, log_prob, length):
        return normalized_score(log_prob, length, self.decode.alpha, self.decode.length_penalty)


def _checked_utf8(lines):
    """The lines; an InvalidArgumentError naming the first that is not valid UTF-8 (0-based)."""
    valid = tf.equal(tf.strings.unicode_transcode(lines, "UTF-8", "UTF-8", errors="replace"),
                     lines)
    tf.debugging.Assert(tf.reduce_all(valid), ["line is not valid UTF-8 (0-based index):",
                                               tf.where(~valid)[:1, 0]])
    return lines


def _with_eos(ids: tf.RaggedTensor) -> tf.RaggedTensor:
    return tf.concat([ids, tf.fill([ids.nrows(), 1], EOS)], axis=1)


def _cut(members: list, blank, limit: int):
    """Each member's segments (ids + EOS), in line order, and each line's segment count
    (`rules.piece_counts`, `rules.piece_lengths`)."""
    ops = rules.TENSORFLOW
    lengths = [ids.row_lengths() for ids in members]
    longest = _longest(members)
    counts = rules.piece_counts(longest, blank, limit, ops)
    segments = [_with_eos(tf.RaggedTensor.from_row_lengths(
        ids.flat_values, rules.piece_lengths(length, longest, counts, limit, ops)))
        for ids, length in zip(members, lengths)]
    return segments, counts


def _longest(members: list):
    """Each row's length in the longest member (`batching.source_length`)."""
    return tf.reduce_max(tf.stack([ids.row_lengths() for ids in members]), axis=0)


def _source_batch(members: list, rows):
    """The rows of every member's ids, padded: [b, S], or [b, M, S] for an ensemble of M (as
    `batching.pad_batch`); and each row's length in the longest member."""
    picked = [ids.to_tensor(PAD) for ids in (tf.gather(m, rows) for m in members)]
    lengths = _longest([tf.gather(m, rows) for m in members])
    if len(picked) == 1:
        return picked[0], lengths
    width = tf.reduce_max([tf.shape(p)[1] for p in picked])
    return tf.stack([tf.pad(p, [[0, 0], [0, width - tf.shape(p)[1]]]) for p in picked],
                    axis=1), lengths


def _content(ids):
    """int [N, T] hypotheses -> ragged [N, (T)]: the ids before the first EOS or PAD
    (`rules.content_lengths`)."""
    return tf.RaggedTensor.from_tensor(ids, lengths=rules.content_lengths(ids, rules.TENSORFLOW))


class Exported(NamedTuple):
    path: Path
    settings: dict
    files: list  # (relative path, bytes)


def check_output(out: str | os.PathLike) -> Path:
    """The export folder: it must not exist yet, or be an empty folder."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError("is a file; --out takes a new folder", str(out))
    if out.exists() and any(out.iterdir()):
        raise OutputError("exists and is not an empty folder; --out takes a new folder",
                          str(out))
    return out


def export(translator: Translator, out: str | os.PathLike, nbest: int = 1) -> Exported:
    """Writes the SavedModel of `translator`'s model and decode settings to `out`, atomically:
    into a temporary folder beside it, renamed when complete."""
    out = check_output(out)
    if not 1 <= nbest <= translator.decode.beam_size:
        raise NmtError(f"--nbest {nbest} must be between 1 and the beam size "
                       f"{translator.decode.beam_size}")
    tokenizers = [*translator.src_tokenizers, translator.tgt_tokenizer]
    settings = {"nmt_version": nmt.__version__,
                "models": [str(Path(d).resolve()) for d in translator.model_dirs],
                "tensorflow_text": any(isinstance(t, subwords.SentencePieceTokenizer)
                                       for t in tokenizers),
                "nbest": nbest, "decode": dataclasses.asdict(translator.decode)}
    with tempfile.TemporaryDirectory() as staging:
        module = TranslationModule(translator, nbest, Path(staging))
        with textio.atomic_folder(out) as tmp:
            try:
                tf.saved_model.save(module, str(tmp), signatures={
                    "serving_default": module.translate, "score": module.score})
            except (tf.errors.ResourceExhaustedError, tf.errors.PermissionDeniedError,
                    tf.errors.UnavailableError) as err:  # e.g. SaveV2 on a full disk
                reason = err.message.splitlines()[0][:200] if err.message else type(err).__name__
                raise OutputError(f"cannot write ({reason})", str(out)) from None
            (tmp / SETTINGS_FILE).parent.mkdir(exist_ok=True)
            (tmp / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n",
                                             encoding="utf-8")
            manifest.write(tmp, ["."])
    files = sorted((str(p.relative_to(out)), p.stat().st_size) for p in out.rglob("*")
                   if p.is_file())
    return Exported(out, settings, files)


def describe_signatures(export_dir: str | os.PathLike) -> str:
    """The signatures of a SavedModel, as `saved_model_cli show --dir DIR --all` lists them."""
    from tensorflow.core.framework import types_pb2
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((Path(export_dir) / "saved_model.pb").read_bytes())
    lines = []
    for meta in saved.meta_graphs:
        lines.append(f"MetaGraphDef with tag-set: '{', '.join(meta.meta_info_def.tags)}' "
                     "contains the following SignatureDefs:")
        for name in sorted(meta.signature_def):
            signature = meta.signature_def[name]
            lines += ["", f"signature_def['{name}']:"]
            for kind, tensors in (("input", signature.inputs), ("output", signature.outputs)):
                lines.append(f"  The given SavedModel SignatureDef contains the following "
                             f"{kind}(s):")
                for key in sorted(tensors):
                    info = tensors[key]
                    shape = ("unknown_rank" if info.tensor_shape.unknown_rank else
                             "(" + ", ".join(str(d.size) for d in info.tensor_shape.dim) + ")")
                    lines += [f"    {kind}s['{key}'] tensor_info:",
                              f"        dtype: {types_pb2.DataType.Name(info.dtype)}",
                              f"        shape: {shape}", f"        name: {info.name}"]
            lines.append(f"  Method name is: {signature.method_name}")
    return "\n".join(lines)
