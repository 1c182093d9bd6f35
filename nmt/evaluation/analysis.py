"""Error analysis: is a bad translation the search's fault or the model's?

For every sentence the model scores the reference y* by forced decoding, with the same
length-normalized score the beam search maximizes, and compares it with its score of the beam
output y^ (also by forced decoding, so both numbers come from one computation):

    score(y*) > score(y^)   search error: the model prefers the reference, the search missed it
                            (a wider beam may help)
    otherwise               model error: the model prefers its own wrong output
                            (architecture, regularization, data)

Two more classes keep the counts honest: "correct" (y^ = y*, nothing to blame) and "oov" (the
reference has words outside the vocabulary: its score is that of <unk>, not comparable).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict, dataclass, field
from typing import Sequence

from nmt.data import batching
from nmt.evaluation import metrics
from nmt.search import rules
from nmt.search.decoding import score_all, search_all
from vocab import UNK

CATEGORIES = ("search_error", "model_error", "correct", "oov")
LENGTH_BUCKETS = ((1, 5), (6, 10), (11, 15), (16, 20), (21, 30), (31, 10**9))


@dataclass
class Sentence:
    """Every number the report shows about one sentence."""
    line: int  # 1-based line in the source file
    source: str
    reference: str
    hypothesis: str
    source_length: int  # source tokens as the model sees them (EOS excluded)
    hypothesis_score: float
    reference_score: float
    hypothesis_log_prob: float
    reference_log_prob: float
    sentence_bleu: float
    category: str
    reference_beyond_limit: bool = False  # longer than the search's length limit allows
    hypothesis_ids: list = field(default_factory=list)


@dataclass
class SweepPoint:
    """Corpus figures of one beam width."""
    beam_size: int
    bleu: float
    search_errors: int
    comparable: int
    mean_hypothesis_score: float
    seconds: float

    @property
    def search_error_rate(self) -> float:
        return self.search_errors / max(self.comparable, 1)


@dataclass
class Analysis:
    sentences: list[Sentence]
    sweep: list[SweepPoint] = field(default_factory=list)

    def counts(self) -> dict:
        return {c: sum(s.category == c for s in self.sentences) for c in CATEGORIES}

    def to_json(self) -> dict:
        return {"counts": self.counts(), "sentences": [asdict(s) for s in self.sentences],
                "sweep": [{**asdict(p), "search_error_rate": p.search_error_rate}
                          for p in self.sweep]}


def classify(reference_score: float, hypothesis_score: float, identical: bool, oov: bool) -> str:
    if identical:
        return "correct"
    if oov:
        return "oov"
    return "search_error" if reference_score > hypothesis_score else "model_error"


def analyze_corpus(translator, source_lines: Sequence[str], reference_lines: Sequence[str],
                   beam_size: int, tokenize: str, sweep: Sequence[int] = ()):
    """Translates with `beam_size`, classifies every sentence, and runs the beam sweep.

    Lines whose source is longer than the model's `max_input_len` are translated in pieces and
    left out of the analysis (their scores would not be those of one search).
    Returns (Analysis, hypothesis lines for every input line).
    """
    # Search in the translator's precision; forced scores, which are compared, in float32.
    searcher, scorer, decode = translator.searcher, translator.scorer, translator.decode
    tgt_tok = translator.tgt_tokenizer
    sources = [translator.source_ids(line) for line in source_lines]
    references = [tgt_tok.encode(line) for line in reference_lines]
    usable = [i for i, s in enumerate(sources) if translator.in_one_search(source_lines[i], s)]

    usable_sources = [sources[i] for i in usable]
    reference_scores, _ = score_all(scorer, usable_sources, [references[i] for i in usable],
                                    decode)

    def run(beam: int):
        start = time.perf_counter()
        found = search_all(searcher, usable_sources, dataclasses.replace(decode, beam_size=beam))
        ids = [hyps[0].ids for hyps in found]
        scores, _ = score_all(scorer, usable_sources, ids, decode)
        return ids, scores, time.perf_counter() - start

    runs = {beam: run(beam) for beam in dict.fromkeys([beam_size, *sweep])}
    main_ids, main_scores, _ = runs[beam_size]
    hypotheses = [""] * len(source_lines)
    for index, ids in zip(usable, main_ids):
        hypotheses[index] = tgt_tok.decode(ids)
    rest = [i for i in sorted(set(range(len(source_lines))) - set(usable))
            if source_lines[i].strip()]
    for index, found in zip(rest, translator.translate([source_lines[i] for i in rest])):
        hypotheses[index] = found[0].text

    sentences = []
    for index, ids, ref, hyp in zip(usable, main_ids, reference_scores, main_scores):
        words = batching.source_length(sources[index]) - 1
        sentences.append(Sentence(
            line=index + 1, source=source_lines[index], reference=reference_lines[index],
            hypothesis=hypotheses[index], source_length=words, hypothesis_score=hyp.score,
            reference_score=ref.score, hypothesis_log_prob=hyp.log_prob,
            reference_log_prob=ref.log_prob,
            sentence_bleu=metrics.sentence_bleu(hypotheses[index], reference_lines[index],
                                                 tokenize),
            category=classify(ref.score, hyp.score, ids == references[index],
                              UNK in references[index]),
            reference_beyond_limit=len(references[index]) + 1 > rules.max_length(words, decode),
            hypothesis_ids=list(ids)))
    analysis = Analysis(sentences)
    refs = [reference_lines[i] for i in usable]
    usable_references = [references[i] for i in usable]
    for beam in sweep:
        ids, scores, seconds = runs[beam]
        # The sentence classes again, so that an output equal to its reference (scored in another
        # batch, so equal only up to rounding) is never counted as a search error.
        categories = [classify(ref.score, hyp.score, found == reference, UNK in reference)
                      for found, reference, ref, hyp
                      in zip(ids, usable_references, reference_scores, scores)]
        analysis.sweep.append(SweepPoint(
            beam_size=beam, bleu=metrics.bleu([tgt_tok.decode(h) for h in ids], refs,
                                               tokenize).score,
            search_errors=categories.count("search_error"),
            comparable=len(categories) - categories.count("oov"),
            mean_hypothesis_score=sum(h.score for h in scores) / max(len(scores), 1),
            seconds=seconds))
    return analysis, hypotheses


def by_length(sentences: Sequence[Sentence], tokenize: str) -> list[dict]:
    """Per source-length bucket: sentences, corpus BLEU and the share of search errors among
    sentences with comparable scores (as in the beam sweep: all but the oov class)."""
    rows = []
    for low, high in LENGTH_BUCKETS:
        group = [s for s in sentences if low <= s.source_length <= high]
        if not group:
            continue
        errors = sum(s.category == "search_error" for s in group)
        comparable = sum(s.category != "oov" for s in group)
        rows.append({"lengths": f"{low}-{high}" if high < 10**9 else f"{low}+",
                     "sentences": len(group),
                     "bleu": metrics.bleu([s.hypothesis for s in group],
                                           [s.reference for s in group], tokenize).score,
                     "search_error_share": errors / max(comparable, 1)})
    return rows
