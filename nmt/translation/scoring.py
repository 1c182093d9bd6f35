"""`nmt score`: the model's score of given translations, by forced decoding.

The numbers are those of the search and of the error analysis (`Translator.score`, the same
graph and the same `normalized_score`), so a line of `nmt score` compares directly with
`nmt translate --scores` and with the report of `nmt evaluate`.
"""
from __future__ import annotations

import sys
from typing import TextIO

from nmt.evaluation import metrics
from nmt.files import textio


def score_files(translator, source: str, target: str, output: str | None = None,
                per_token: bool = False) -> int:
    """Writes one line per (source, target) pair: "log_p<TAB>score<TAB>tokens", tokens counting
    EOS (the T of the penalty); `per_token` appends "<TAB>" and each token's log p, EOS last.
    Returns the number of pairs."""
    sources = list(textio.read_lines(source, allow_blank=True, allow_tab=True))
    targets = list(textio.read_lines(target, allow_blank=True, allow_tab=True))
    metrics.check_lengths(targets, sources, target, source, "the source")
    chunk = 16 * translator.decode.batch_size

    def write_all(out: TextIO) -> None:
        for start in range(0, len(sources), chunk):
            hyps, _ = translator.score(sources[start:start + chunk], targets[start:start + chunk])
            for hyp in hyps:
                out.write(format_line(hyp, per_token))
            out.flush()

    if output in (None, "-"):
        write_all(sys.stdout)
    else:
        with textio.atomic_write(output) as out:
            write_all(out)
    return len(sources)


def format_line(hyp, per_token: bool = False) -> str:
    line = f"{hyp.log_prob:.6f}\t{hyp.score:.6f}\t{len(hyp.ids) + 1}"
    if per_token:
        line += "\t" + " ".join(f"{lp:.6f}" for lp in hyp.token_log_probs)
    return line + "\n"
