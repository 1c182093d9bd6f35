"""`nmt tune`: dev BLEU over a grid of beam widths x alphas x length penalties, and the best as
the model folder's decode default.

Greedy search (beam 1) does not depend on alpha or the penalty (they rescale the one hypothesis's
score), so it is decoded once and its BLEU stands for every alpha of beam 1.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Sequence

from nmt.config import recipes
from nmt.errors import DataError
from nmt.evaluation import metrics, plotting
from nmt.files import textio
from nmt.storage import modeldir

RECORD = "tune.json"  # in the model folder: the grid and the setting written from it


class NothingToChoose(DataError):
    """The grid's BLEU tells its settings apart by nothing: the decode default is kept."""


@dataclass(frozen=True)
class TunePoint:
    beam_size: int
    alpha: float
    length_penalty: str
    bleu: float


def grid_search(translator, sources: Sequence[str], references: Sequence[str],
                beams: Sequence[int], alphas: Sequence[float], kinds: Sequence[str],
                tokenize: str) -> list[TunePoint]:
    """Corpus BLEU of every setting of the grid, in grid order."""
    points, greedy = [], None
    for beam in beams:
        for kind in kinds:
            for alpha in alphas:
                if beam > 1 or greedy is None:
                    found = translator.translate(sources, beam_size=beam, alpha=alpha,
                                                 length_penalty=kind)
                    bleu = metrics.bleu([t[0].text for t in found], references, tokenize).score
                    if beam == 1:
                        greedy = bleu
                points.append(TunePoint(beam, alpha, kind, bleu if beam > 1 else greedy))
    return points


def best(points: Sequence[TunePoint]) -> TunePoint:
    """The highest BLEU; ties to the narrower beam (faster), then the smaller alpha."""
    return max(points, key=lambda p: (round(p.bleu, 6), -p.beam_size, -p.alpha))


def distinguishes(points: Sequence[TunePoint]) -> bool:
    """Whether the grid's BLEU says anything: the best setting translates something right. At
    BLEU 0 everywhere the tie-break alone would pick the narrowest beam; ties above 0 are
    settled by it as documented (narrower beam, smaller alpha)."""
    return max(p.bleu for p in points) > 0


def table(points: Sequence[TunePoint], chosen: TunePoint) -> str:
    """A Markdown table: one row per beam and penalty, one column per alpha; * marks the best."""
    alphas = sorted({p.alpha for p in points})
    rows = ["| beam | penalty | " + " | ".join(f"alpha {a:g}" for a in alphas) + " |",
            "|---|---|" + "---|" * len(alphas)]
    for beam, kind in dict.fromkeys((p.beam_size, p.length_penalty) for p in points):
        cells = {p.alpha: f"{p.bleu:.2f}" + (" *" if p == chosen else "") for p in points
                 if (p.beam_size, p.length_penalty) == (beam, kind)}
        rows.append(f"| {beam} | {kind} | " + " | ".join(cells.get(a, "") for a in alphas) + " |")
    return "\n".join(rows)


def write_default(model_dir: str | os.PathLike, chosen: TunePoint, points: Sequence[TunePoint],
                  signature: str, source: str, reference: str) -> None:
    """Makes `chosen` the decode section of the folder's recipe.yaml, and records the grid it
    came from in tune.json (both written atomically; recipe last, so a kill leaves the old
    default or the new one, never a recipe without its record)."""
    run = modeldir.ModelDir(model_dir)
    recipe = recipes.with_changes(recipes.load_recipe(run.recipe), "decode",
                                 beam_size=chosen.beam_size, alpha=chosen.alpha,
                                 length_penalty=chosen.length_penalty)
    record = {"chosen": asdict(chosen), "grid": [asdict(p) for p in points],
              "signature": signature, "source": str(source), "reference": str(reference)}
    with textio.atomic_write(run.root / RECORD) as handle:
        json.dump(record, handle, indent=2)
        handle.write("\n")
    with textio.atomic_write(run.recipe) as handle:
        handle.write(recipes.dump_recipe(recipe))


def check_outputs(model_dir: str | os.PathLike, out: str | os.PathLike, write: bool) -> None:
    """Before the model loads and the grid is decoded: the folder for tune.md and the heatmap
    can be written, and with `write` the model folder's recipe.yaml and tune.json too."""
    textio.check_writable(out, folder=True)
    if write:
        run = modeldir.ModelDir(model_dir)
        textio.check_writable(run.recipe)
        textio.check_writable(run.root / RECORD)


def tune(translator, source: str, reference: str, beams: Sequence[int],
         alphas: Sequence[float], kinds: Sequence[str], tokenize: str, out: str | os.PathLike,
         write: bool = False) -> tuple[list[TunePoint], TunePoint, str]:
    """Runs the grid on a source/reference pair of files; writes out/tune.md and
    out/tune_heatmap.png; with `write`, makes the best the model folder's default, unless the
    grid does not distinguish its settings (`distinguishes`): then NothingToChoose is raised,
    after the table and heatmap are written. A source of blank lines only is a DataError.
    Returns (points, the best, the BLEU signature)."""
    sources = list(textio.read_lines(source, allow_blank=True, allow_tab=True))
    references = list(textio.read_lines(reference, allow_blank=True, allow_tab=True))
    metrics.check_lengths(sources, references, source, reference)
    if not any(line.strip() for line in sources):  # as `nmt evaluate`, before any decoding
        raise DataError("no line to tune on: every source line is blank", str(source))
    points = grid_search(translator, sources, references, beams, alphas, kinds, tokenize)
    chosen = best(points)
    signature = str(metrics.bleu_metric(tokenize).get_signature())
    out = textio.make_folder(out)
    with textio.atomic_write(out / "tune.md") as handle:
        handle.write(f"dev BLEU of {source} against {reference} ({signature})\n\n"
                     f"{table(points, chosen)}\n")
    plotting.tune_heatmap(points, out / "tune_heatmap.png")
    if write and not distinguishes(points):
        raise NothingToChoose(f"every setting of the grid scores dev BLEU {chosen.bleu:.2f}, "
                              f"so none is better: the decode default of "
                              f"{modeldir.ModelDir(translator.model_dir).recipe} is kept "
                              f"(table: {out / 'tune.md'})", str(source))
    if write:
        write_default(translator.model_dir, chosen, points, signature, source, reference)
    return points, chosen, signature
