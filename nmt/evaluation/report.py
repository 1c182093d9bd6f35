"""`nmt evaluate`: translate a test set, score it, analyse its errors and write a report folder.

    OUT/report.md        tables and figures, readable on GitHub or any Markdown viewer
    OUT/report.json      every per-sentence number, the sweep, the corpus scores
    OUT/hypotheses.txt   the translations, one per source line
    OUT/figures/*.png    the beam sweep and attention heatmaps
"""
from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path
from typing import Sequence

from nmt.errors import DataError, OutputError
from nmt.evaluation import analysis, metrics, plotting
from nmt.files import textio
from nmt.search.decoding import score_all

REPORT_FILES = ("report.md", "report.json", "hypotheses.txt")
FIGURES = "figures"
_FIGURE = re.compile(r"(beam_sweep|attention-line[0-9]+)\.png")

EXPLANATION = (
    "For each sentence the model scores its reference y* and the beam output y^ by forced "
    "decoding, with the search's own length-normalized score. If score(y*) > score(y^), the model "
    "prefers the reference but the search did not find it: a **search error** (a wider beam may "
    "help). Otherwise the model prefers its own wrong output: a **model error** (architecture, "
    "regularization, more data). *correct*: the output is the reference. *oov*: the reference "
    "has out-of-vocabulary words, so its score is not comparable.")


def run_evaluation(translator, source: str, reference: str, out: str | Path,
                   beams: Sequence[int], tokenize: str, heatmaps: int = 5,
                   show: Sequence[int] = ()) -> dict:
    """Evaluates a loaded `Translator`; writes the report folder and returns its JSON."""
    source_lines = list(textio.read_lines(source, allow_blank=True, allow_tab=True))
    reference_lines = list(textio.read_lines(reference, allow_blank=True, allow_tab=True))
    metrics.check_lengths(source_lines, reference_lines, source, reference)
    for line in show:
        if not 1 <= line <= len(source_lines):
            raise DataError(f"--show {line}: the file has {len(source_lines)} lines", source)
    if not any(translator.in_one_search(line, translator.source_ids(line))
               for line in source_lines):
        raise DataError(f"no line can be scored: every source line is blank or longer than "
                        f"decode.max_input_len ({translator.decode.max_input_len} tokens)",
                        source)
    decode = translator.decode
    result, hypotheses = analysis.analyze_corpus(translator, source_lines, reference_lines,
                                                 decode.beam_size, tokenize, beams)
    scores = metrics.corpus_scores(hypotheses, reference_lines, tokenize)
    out = Path(out)
    figures = out / FIGURES
    report = {
        "model": " + ".join(map(str, translator.model_dirs)), "source": str(source),
        "reference": str(reference),
        "beam_size": decode.beam_size, "alpha": decode.alpha,
        "length_penalty": decode.length_penalty, "precision": decode.precision,
        "scores": [{"name": s.name, "score": s.score, "text": s.text, "signature": s.signature}
                   for s in scores],
        "by_length": analysis.by_length(result.sentences, tokenize),
        "oov_references": sum(s.category == "oov" for s in result.sentences),
        "references_beyond_length_limit": sum(s.reference_beyond_limit
                                              for s in result.sentences),
        **result.to_json(),
    }
    if beams:
        plotting.sweep_plot([p.beam_size for p in result.sweep], [p.bleu for p in result.sweep],
                            [p.search_error_rate for p in result.sweep],
                            figures / "beam_sweep.png")
    chosen = _chosen(result.sentences, heatmaps, show)
    report["heatmaps"] = _draw_heatmaps(translator, chosen, figures)
    with textio.atomic_write(out / "hypotheses.txt") as handle:
        handle.write("".join(h + "\n" for h in hypotheses))
    with textio.atomic_write(out / "report.json") as handle:
        json.dump(report, handle, indent=1, ensure_ascii=False)
    with textio.atomic_write(out / "report.md") as handle:
        handle.write(markdown(report))
    _remove_stale_figures(figures, {e["figure"] for e in report["heatmaps"]} |
                          ({f"{FIGURES}/beam_sweep.png"} if beams else set()))
    return report


def check_report_folder(out: Path) -> None:
    """Before any work: `out` can be written, and holds nothing but an earlier report (which
    this one replaces), so that no file of the user's is overwritten or mixed into it."""
    textio.check_writable(out, folder=True)
    if not out.is_dir():
        return
    figures = out / FIGURES
    found = [p for p in out.iterdir() if p.name not in REPORT_FILES and p != figures
             and not p.name.startswith(".")]
    if figures.exists():
        found += ([p for p in figures.iterdir() if not _FIGURE.fullmatch(p.name)
                   and not p.name.startswith(".")] if figures.is_dir() else [figures])
    if found:
        raise OutputError(f"holds files that are not a report of `nmt evaluate` ("
                          f"{', '.join(sorted(p.name for p in found)[:3])}); choose another "
                          f"--out or an empty folder", str(out))


def _remove_stale_figures(folder: Path, written: set) -> None:
    """Deletes an earlier report's figures that this report does not show."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if _FIGURE.fullmatch(path.name) and f"{FIGURES}/{path.name}" not in written:
            path.unlink(missing_ok=True)


def totals(sentences: Sequence[dict]) -> dict:
    """Per class: count, share and mean sentence BLEU (recomputed from per-sentence records)."""
    rows = {}
    for category in analysis.CATEGORIES:
        group = [s for s in sentences if s["category"] == category]
        rows[category] = {
            "sentences": len(group), "share": len(group) / max(len(sentences), 1),
            "mean_sentence_bleu": statistics.fmean(s["sentence_bleu"] for s in group)
            if group else None}
    return rows


def markdown(report: dict) -> str:
    lines = [f"# Evaluation: `{report['source']}`", "",
             f"Model `{report['model']}`, beam {report['beam_size']}, alpha {report['alpha']} "
             f"({report['length_penalty']} length penalty), search in {report['precision']} "
             f"(forced scores in float32).", "", "## Scores", "",
             "| metric | score | sacrebleu signature |", "|---|---|---|"]
    lines += [f"| {s['name']} | {s['score']:.2f} | `{s['signature']}` |" for s in report["scores"]]
    lines += ["", f"`{report['scores'][0]['text']}`", "",
              "## Search errors and model errors", "", EXPLANATION, "",
              "| class | sentences | share | mean sentence BLEU |", "|---|---|---|---|"]
    for category, row in totals(report["sentences"]).items():
        mean = "–" if row["mean_sentence_bleu"] is None else f"{row['mean_sentence_bleu']:.1f}"
        lines.append(f"| {category} | {row['sentences']} | {100 * row['share']:.1f} % | {mean} |")
    lines += ["", f"References with out-of-vocabulary words (flagged, class *oov*): "
              f"{report['oov_references']}. References longer than the search's length limit: "
              f"{report['references_beyond_length_limit']}.", "", "## By source length", "",
              "| source tokens | sentences | BLEU | search errors (share of comparable) |",
              "|---|---|---|---|"]
    lines += [f"| {r['lengths']} | {r['sentences']} | {r['bleu']:.2f} | "
              f"{100 * r['search_error_share']:.1f} % |" for r in report["by_length"]]
    if report["sweep"]:
        lines += ["", "## Beam sweep", "",
                  "| beam | BLEU | search errors | mean normalized score | seconds |",
                  "|---|---|---|---|---|"]
        lines += [f"| {p['beam_size']} | {p['bleu']:.2f} | {p['search_errors']} / "
                  f"{p['comparable']} ({100 * p['search_error_rate']:.1f} %) | "
                  f"{p['mean_hypothesis_score']:.4f} | {p['seconds']:.1f} |"
                  for p in report["sweep"]]
        lines += ["", "![BLEU and search errors against beam width](figures/beam_sweep.png)"]
    lines += ["", "## Worst and chosen sentences", ""]
    by_line = {s["line"]: s for s in report["sentences"]}
    for entry in report["heatmaps"]:
        s = by_line[entry["line"]]
        lines += [f"### Line {s['line']} ({s['category'].replace('_', ' ')}, sentence BLEU "
                  f"{s['sentence_bleu']:.1f})", "",
                  f"- source: {s['source']}", f"- reference: {s['reference']}",
                  f"- output: {s['hypothesis']}",
                  f"- score(reference) = {s['reference_score']:.4f}, score(output) = "
                  f"{s['hypothesis_score']:.4f}", ""]
        if entry["figure"]:
            lines += [f"![attention, line {s['line']}]({entry['figure']})", ""]
        if not entry["labels_drawn"]:
            lines += [f"(Some tokens could not be drawn: {plotting.INSTALL_HINT}. Axis labels "
                      f"#i are positions: source {entry['source_tokens']}, output "
                      f"{entry['output_tokens']}.)", ""]
    return "\n".join(lines) + "\n"


def summary(report: dict) -> str:
    """The short terminal summary."""
    lines = [f"{s['text']}\n  signature: {s['signature']}" for s in report["scores"]]
    counts = report["counts"]
    total = max(sum(counts.values()), 1)
    lines.append("errors: " + ", ".join(f"{k.replace('_', ' ')} {v} ({100 * v / total:.0f} %)"
                                        for k, v in counts.items()))
    for p in report["sweep"]:
        lines.append(f"beam {p['beam_size']:>3}: BLEU {p['bleu']:6.2f}  search errors "
                     f"{100 * p['search_error_rate']:5.1f} %")
    return "\n".join(lines)


def _chosen(sentences, worst: int, show: Sequence[int]):
    ranked = sorted((s for s in sentences if s.category != "correct"),
                    key=lambda s: (s.sentence_bleu, s.hypothesis_score))
    picked = {s.line: s for s in ranked[:worst]}
    by_line = {s.line: s for s in sentences}
    for line in show:
        if line in by_line:
            picked.setdefault(line, by_line[line])
    return list(picked.values())


def _draw_heatmaps(translator, sentences, folder: Path) -> list[dict]:
    src_tok, tgt_tok = translator.src_tokenizer, translator.tgt_tokenizer
    sources = [translator.source_ids(s.source) for s in sentences]
    _, attention = score_all(translator.scorer, sources, [s.hypothesis_ids for s in sentences],
                             translator.decode)
    entries = []
    for sentence, weights in zip(sentences, attention):
        source_labels = src_tok.source_pieces(sentence.source) + ["</s>"]
        output_labels = tgt_tok.pieces(sentence.hypothesis_ids) + ["</s>"]
        name = f"{FIGURES}/attention-line{sentence.line}.png"
        drawn = plotting.attention_heatmap(weights, source_labels, output_labels,
                                           folder.parent / name, f"line {sentence.line}")
        entries.append({"line": sentence.line, "figure": name, "labels_drawn": drawn,
                        "source_tokens": " ".join(source_labels),
                        "output_tokens": " ".join(output_labels)})
    if not all(e["labels_drawn"] for e in entries):
        print(f"nmt: warning: no CJK font found, heatmap labels use positions "
              f"({plotting.INSTALL_HINT})", file=sys.stderr)
    return entries
