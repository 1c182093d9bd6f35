"""Learning curves: dev BLEU and perplexity per epoch, from a run's metrics.csv or a peer's CSV.

A run's `metrics.csv` is written by Keras's CSVLogger (epoch counted from 0) with the columns of
`nmt.training.callbacks`: val_bleu, val_ppl and epoch_seconds (wall-clock time of the epoch, dev
evaluation included). A peer's CSV (another toolkit's figures) has the columns `epoch` (from 1),
`bleu`, `ppl` and optionally `minutes` (wall-clock time at the end of that epoch).
"""
from __future__ import annotations

import csv
import itertools
from dataclasses import dataclass
from pathlib import Path

from nmt.errors import DataError

METRICS_FILE = "metrics.csv"


@dataclass(frozen=True)
class Curve:
    label: str
    epochs: tuple[int, ...]  # 1 = after the first epoch
    bleu: tuple[float, ...]
    ppl: tuple[float, ...]
    minutes: tuple[float, ...] | None  # wall-clock time at each epoch's end, if known


def run_curve(run_dir: str | Path, label: str | None = None) -> Curve:
    """The learning curve of a run directory (or of a metrics.csv given directly)."""
    path = Path(run_dir)
    if path.is_dir():
        path = path / METRICS_FILE
    rows = _rows(path, ("epoch", "val_bleu", "val_ppl"))
    seconds = [row.get("epoch_seconds") for row, _ in rows]
    timed = all(s not in (None, "") for s in seconds)
    return Curve(label or (path.parent.name if path.name == METRICS_FILE else path.stem),
                 tuple(int(_number(row["epoch"], path, line)) + 1 for row, line in rows),
                 tuple(_number(row["val_bleu"], path, line) for row, line in rows),
                 tuple(_number(row["val_ppl"], path, line) for row, line in rows),
                 tuple(itertools.accumulate(_number(s, path, line) / 60
                                            for s, (_, line) in zip(seconds, rows)))
                 if timed else None)


def peer_curve(path: str | Path) -> Curve:
    """A peer's learning curve from a CSV of epoch, bleu, ppl[, minutes]."""
    path = Path(path)
    rows = _rows(path, ("epoch", "bleu", "ppl"))
    timed = all(row.get("minutes") not in (None, "") for row, _ in rows)
    return Curve(path.stem, tuple(int(_number(row["epoch"], path, line)) for row, line in rows),
                 tuple(_number(row["bleu"], path, line) for row, line in rows),
                 tuple(_number(row["ppl"], path, line) for row, line in rows),
                 tuple(_number(row["minutes"], path, line) for row, line in rows)
                 if timed else None)


def _rows(path: Path, required: tuple[str, ...]) -> list[tuple[dict, int]]:
    """(row, line number) of a CSV with a header holding `required`; at least one row."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in required if c not in (reader.fieldnames or ())]
            if missing:
                raise DataError(f"no column {', '.join(missing)} in the header", str(path), 1)
            rows = [(row, reader.line_num) for row in reader]
    except OSError as err:
        raise DataError(f"cannot read ({err.strerror})", str(path)) from None
    except UnicodeDecodeError:
        raise DataError("not UTF-8", str(path)) from None
    if not rows:
        raise DataError("no epochs in it yet", str(path))
    return rows


def _number(text: str | None, path: Path, line: int) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        raise DataError(f"not a number: {text!r}", str(path), line) from None
