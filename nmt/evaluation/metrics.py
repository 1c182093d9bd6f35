"""Corpus metrics through sacrebleu's API: BLEU, chrF and TER, each with its signature."""
from __future__ import annotations

import functools
from typing import NamedTuple, Sequence

from sacrebleu.metrics import BLEU, CHRF, TER

from nmt.errors import DataError, NmtError


class Score(NamedTuple):
    name: str
    score: float
    text: str  # sacrebleu's own formatting, e.g. "BLEU = 31.2 62.0/37.6/... (BP = ...)"
    signature: str


def bleu(hypotheses: Sequence[str], references: Sequence[str], tokenize: str = "13a") -> Score:
    metric = bleu_metric(tokenize)
    result = metric.corpus_score(list(hypotheses), [list(references)])
    return Score("BLEU", result.score, str(result), str(metric.get_signature()))


@functools.lru_cache(maxsize=8)
def bleu_metric(tokenize: str, effective_order: bool = False) -> BLEU:
    """sacrebleu's BLEU with `tokenize`, built once per setting (tokenizers may load models).
    Some tokenizers need extra packages (ja-mecab,
    ko-mecab) or a download (spm, flores*): their failures become one-line errors."""
    try:
        # With tokenize="none" the text is declared tokenized: skip sacrebleu's warning about it.
        return BLEU(tokenize=tokenize, force=tokenize == "none", effective_order=effective_order)
    except Exception as err:  # noqa: BLE001  sacrebleu raises RuntimeError, ImportError, OSError
        reason = " ".join(str(err).split())
        raise NmtError(f"sacrebleu cannot set up the '{tokenize}' tokenizer: {reason}") from None


def corpus_scores(hypotheses: Sequence[str], references: Sequence[str],
                  tokenize: str = "13a") -> list[Score]:
    """BLEU (with `tokenize`), chrF and TER of hypotheses against one reference each."""
    scores = [bleu(hypotheses, references, tokenize)]
    for name, metric in (("chrF", CHRF()), ("TER", TER())):
        result = metric.corpus_score(list(hypotheses), [list(references)])
        scores.append(Score(name, result.score, str(result), str(metric.get_signature())))
    return scores


def sentence_bleu(hypothesis: str, reference: str, tokenize: str = "13a") -> float:
    """Smoothed sentence BLEU (sacrebleu's default exp smoothing), for per-sentence analysis."""
    return bleu_metric(tokenize, effective_order=True).sentence_score(hypothesis,
                                                                       [reference]).score


def check_lengths(hypotheses: Sequence[str], references: Sequence[str], hyp_name: str,
                  ref_name: str, ref_role: str = "the reference") -> None:
    """One hypothesis per reference line, and at least one line; `ref_role` names the second
    file in the message (e.g. "the source" for `nmt score`)."""
    if not references:
        raise DataError("empty file", ref_name)
    if len(hypotheses) != len(references):
        raise DataError(f"{len(hypotheses)} lines, but {ref_role} {ref_name} has "
                        f"{len(references)}", hyp_name)
