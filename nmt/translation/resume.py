"""`nmt translate -i BIG -o OUT --resume`: an output that an interrupted run continues.

OUT is written in place (not through a temporary), one chunk of input lines at a time, and
beside it `.OUT.resume.json` records after each chunk how many input lines and bytes of OUT are
complete, with what shapes the output: the input's size and sha256, each model's files (as a
manifest lists them), the decode settings (the chunk size, `16 x decode.batch_size`, among
them) and the output format. A rerun with the same settings truncates OUT to the recorded bytes
and goes on from the next chunk: the chunks, and so the batches, are those of an uninterrupted
run, and the output is byte-identical to one. The record is removed when OUT is complete.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import nmt
from nmt.errors import NmtError, OutputError
from nmt.files import textio
from nmt.storage import manifest, modeldir


class Progress:
    """How far OUT got, by its record beside it."""

    def __init__(self, output: str | os.PathLike, settings: dict):
        self.output = Path(output)
        self.record = self.output.parent / f".{self.output.name}.resume.json"
        self.settings = settings
        self.lines = self.bytes = 0

    def start(self) -> int:
        """Truncates OUT to its last complete chunk (or empties it if there is no record) and
        returns the input lines done. An unfinished OUT of other settings is refused."""
        if self.record.is_file():
            try:
                found = json.loads(self.record.read_text(encoding="utf-8"))
                lines, size, settings = found["lines"], found["bytes"], found["settings"]
            except (OSError, ValueError, KeyError, TypeError) as err:
                raise OutputError(f"unreadable resume record {self.record.name} ({err}); "
                                  f"translate without --resume to start again",
                                  str(self.output)) from None
            changed = _changed(settings, self.settings)
            if changed:
                raise OutputError(f"an unfinished translation with other settings "
                                  f"({', '.join(changed)} changed); translate without --resume "
                                  f"(or to another -o) to start again", str(self.output))
            if not self.output.is_file() or self.output.stat().st_size < size:
                raise OutputError(f"shorter than its resume record says ({size} bytes); "
                                  f"translate without --resume to start again", str(self.output))
            self.lines, self.bytes = lines, size
        with textio.reported_as_output_error(self.output):
            with open(self.output, "r+b" if self.output.exists() else "wb") as handle:
                handle.truncate(self.bytes)
            self._save()
        return self.lines

    def advance(self, lines: int, size: int) -> None:
        """Records a chunk as complete (OUT's bytes are on disk first)."""
        self.lines, self.bytes = lines, size
        self._save()

    def finish(self) -> None:
        self.record.unlink(missing_ok=True)

    def _save(self) -> None:
        try:
            with textio.atomic_write(self.record) as handle:
                json.dump({"lines": self.lines, "bytes": self.bytes, "settings": self.settings},
                          handle)
        except OutputError as err:  # the user named OUT, not its record
            raise OutputError(err.reason, str(self.output)) from None


def check_paths(source: str | None, output: str | None) -> None:
    """Before any work: --resume needs a regular input file, to be read again, and an output
    file, to be continued (not stdout, a pipe or a device)."""
    if output in (None, "-") or (os.path.exists(output) and not os.path.isfile(output)):
        raise NmtError("--resume needs -o naming a file (stdout, a pipe or a device cannot be "
                       "continued)")
    if source in (None, "-") or not os.path.isfile(source):
        raise NmtError("--resume needs -i naming a file (stdin or a pipe cannot be read again)")


def settings(translator, source: str, nbest: int, scores: bool, alignments: bool) -> dict:
    """What shapes the output, as JSON values."""
    return {"input": {"size": os.path.getsize(source),
                      "sha256": manifest.sha256_file(Path(source))},
            "models": [manifest.entries(Path(d), modeldir.MODEL_FILES)
                       for d in translator.model_dirs],
            "weights": translator.weights, "decode": dataclasses.asdict(translator.decode),
            "format": {"nbest": nbest, "scores": scores, "alignments": alignments},
            "nmt_version": nmt.__version__}


def _changed(before: dict, now: dict) -> list[str]:
    """The settings that differ, e.g. ["decode.beam_size", "input"]."""
    found = []
    for key in sorted({*before, *now}):
        old, new = before.get(key), now.get(key)
        if old != new and isinstance(old, dict) and isinstance(new, dict) and key != "input":
            found += [f"{key}.{k}" for k in sorted({*old, *new}) if old.get(k) != new.get(k)]
        elif old != new:
            found.append(key)
    return found
