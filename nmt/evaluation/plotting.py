"""Figures: attention heatmaps, the beam sweep, word maps and learning curves (matplotlib, drawn
off-screen, saved as PNG).

Japanese tokens need a CJK font. The first installed one of `CJK_FAMILIES` is used as a fallback
behind DejaVu Sans; with none installed, tokens the default font cannot draw are replaced by their
position ("#3") and the caller is told, so the report can list them as text instead.
"""
from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Sequence

from nmt.files.textio import atomic_path

CJK_FAMILIES = ("Noto Sans CJK JP", "Noto Sans JP", "Source Han Sans JP", "IPAexGothic",
                "IPAGothic", "IPAPGothic", "TakaoGothic", "VL Gothic", "Droid Sans Fallback",
                "WenQuanYi Zen Hei", "Noto Sans CJK SC")
CJK_FILE_NAME = re.compile(r"cjk|ipa|takao|vl-?gothic|droid|wqy|sourcehan", re.IGNORECASE)
INSTALL_HINT = "install a CJK font, e.g. `apt-get install fonts-noto-cjk` or fonts-ipafont-gothic"


@functools.lru_cache(maxsize=1)
def cjk_family() -> str | None:
    """The first CJK-capable font family installed, or None."""
    from matplotlib import font_manager
    installed = {font.name for font in font_manager.fontManager.ttflist}
    if not installed.intersection(CJK_FAMILIES):
        # Matplotlib's font cache predates fonts installed later (e.g. by .ci/run): register
        # the system's CJK font files it has not seen.
        known = {font.fname for font in font_manager.fontManager.ttflist}
        for path in font_manager.findSystemFonts():
            if path not in known and CJK_FILE_NAME.search(os.path.basename(path)):
                font_manager.fontManager.addfont(path)
        installed = {font.name for font in font_manager.fontManager.ttflist}
    return next((family for family in CJK_FAMILIES if family in installed), None)


@functools.lru_cache(maxsize=1)
def _default_charmap() -> frozenset:
    from matplotlib import font_manager, ft2font
    path = font_manager.findfont("DejaVu Sans")
    return frozenset(ft2font.FT2Font(path).get_charmap())


def drawable(label: str) -> bool:
    """Whether the fonts available can draw every character of `label`."""
    return cjk_family() is not None or all(ord(ch) in _default_charmap() for ch in label)


def attention_heatmap(weights, source_tokens: Sequence[str], target_tokens: Sequence[str],
                      path: str | Path, title: str = "") -> bool:
    """Draws attention weights [len(target_tokens), len(source_tokens)] as a PNG heatmap.

    Source tokens run along the x axis, output tokens down the y axis. Returns False when some
    labels could not be drawn and were replaced by their positions.
    """
    from matplotlib.figure import Figure

    all_drawn = all(drawable(t) for t in [*source_tokens, *target_tokens])
    xs = [t if drawable(t) else f"#{i}" for i, t in enumerate(source_tokens)]
    ys = [t if drawable(t) else f"#{i}" for i, t in enumerate(target_tokens)]
    width = 1.5 + 0.38 * len(xs)
    height = 1.5 + 0.32 * len(ys)
    figure = Figure(figsize=(max(width, 4), max(height, 3)), dpi=100)
    axes = figure.subplots()
    image = axes.imshow(weights, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    axes.set_xticks(range(len(xs)), xs, rotation=90, fontfamily=_families())
    axes.set_yticks(range(len(ys)), ys, fontfamily=_families())
    axes.set_xlabel("source")
    axes.set_ylabel("output")
    if title:
        axes.set_title(title, fontsize=9, fontfamily=_families())
    figure.colorbar(image, ax=axes, fraction=0.04)
    figure.tight_layout()
    _save(figure, path)
    return all_drawn


def sweep_plot(beams: Sequence[int], bleu: Sequence[float], search_error_rate: Sequence[float],
               path: str | Path) -> None:
    """BLEU and the share of search errors against the beam width."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.5, 3.5), dpi=100)
    axes = figure.subplots()
    axes.plot(beams, bleu, "o-", color="tab:blue")
    axes.set_xscale("log", base=2)
    axes.set_xticks(list(beams), [str(b) for b in beams])
    axes.set_xlabel("beam width")
    axes.set_ylabel("BLEU", color="tab:blue")
    errors = axes.twinx()
    errors.plot(beams, [100 * r for r in search_error_rate], "s--", color="tab:red")
    errors.set_ylabel("search errors (% of sentences)", color="tab:red")
    figure.tight_layout()
    _save(figure, path)


def tune_heatmap(points, path: str | Path) -> None:
    """Dev BLEU over beam width (rows) x alpha (columns), one panel per length penalty."""
    from matplotlib.figure import Figure

    kinds = list(dict.fromkeys(p.length_penalty for p in points))
    beams = sorted({p.beam_size for p in points})
    alphas = sorted({p.alpha for p in points})
    figure = Figure(figsize=(1.6 + 1.1 * len(alphas) * len(kinds), 1.2 + 0.5 * len(beams)),
                    dpi=100)
    panels = figure.subplots(1, len(kinds), squeeze=False)[0]
    values = [p.bleu for p in points]
    for axes, kind in zip(panels, kinds):
        grid = [[next((p.bleu for p in points if (p.beam_size, p.alpha, p.length_penalty)
                       == (b, a, kind)), float("nan")) for a in alphas] for b in beams]
        axes.imshow(grid, cmap="viridis", vmin=min(values), vmax=max(values), aspect="auto")
        for row, line in enumerate(grid):
            for column, bleu in enumerate(line):
                axes.text(column, row, f"{bleu:.1f}", ha="center", va="center", color="white")
        axes.set_xticks(range(len(alphas)), [f"{a:g}" for a in alphas])
        axes.set_yticks(range(len(beams)), [str(b) for b in beams])
        axes.set_xlabel("alpha")
        axes.set_ylabel("beam width")
        axes.set_title(f"dev BLEU, {kind} penalty", fontsize=9)
    figure.tight_layout()
    _save(figure, path)


def word_map(points, words: Sequence[str], path: str | Path, title: str = "") -> bool:
    """Words as labelled dots at 2-D `points` [len(words), 2].

    Returns False when some labels could not be drawn and were replaced by their rank ("#3").
    """
    from matplotlib.figure import Figure

    labels = [word if drawable(word) else f"#{rank}" for rank, word in enumerate(words, start=1)]
    figure = Figure(figsize=(12, 10), dpi=100)
    axes = figure.subplots()
    axes.scatter(points[:, 0], points[:, 1], s=6, color="tab:blue")
    for (x, y), label in zip(points, labels):
        axes.annotate(label, (x, y), xytext=(2, 2), textcoords="offset points", fontsize=8,
                      fontfamily=_families())
    axes.set_xlabel("first principal component")
    axes.set_ylabel("second principal component")
    if title:
        axes.set_title(title, fontsize=10)
    figure.tight_layout()
    _save(figure, path)
    return labels == list(words)


def learning_curves(curves: Sequence, path: str | Path):
    """Dev BLEU and perplexity of `nmt.evaluation.curves.Curve`s against epoch and wall-clock
    minutes.

    Curves without times appear in the epoch panels only. Returns the matplotlib Figure saved.
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 7), dpi=100)
    axes = figure.subplots(2, 2, sharex="col")
    for curve in curves:
        for row, values in enumerate((curve.bleu, curve.ppl)):
            line, = axes[row][0].plot(curve.epochs, values, "o-", markersize=3, label=curve.label)
            if curve.minutes is not None:
                axes[row][1].plot(curve.minutes, values, "o-", markersize=3,
                                  color=line.get_color(), label=curve.label)
    from matplotlib.ticker import MaxNLocator, ScalarFormatter
    axes[1][0].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[1][1].set_xlim(left=0)
    for column, xlabel in enumerate(("epoch", "wall-clock minutes")):
        axes[0][column].set_ylabel("dev BLEU")
        axes[1][column].set_ylabel("dev perplexity")
        axes[1][column].set_yscale("log")
        axes[1][column].set_xlabel(xlabel)
        for row in (0, 1):
            axes[row][column].grid(True, alpha=0.3)
    for ppl_axes in axes[1]:  # plain numbers on the log scale: 20, 30, 40 rather than 2x10^1
        ppl_axes.yaxis.set_major_formatter(ScalarFormatter())
        ppl_axes.yaxis.set_minor_formatter(ScalarFormatter())
    axes[0][0].legend(prop={"family": _families(), "size": 8})
    figure.tight_layout()
    _save(figure, path)
    return figure


def _families() -> list[str]:
    family = cjk_family()
    return ["DejaVu Sans", family] if family else ["DejaVu Sans"]


def _save(figure, path: str | Path) -> None:
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, format="png")
