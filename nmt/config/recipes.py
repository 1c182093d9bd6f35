"""Recipe files: reading, checking and writing the YAML that fills `nmt.config.options`.

A recipe is YAML with one mapping per section of `options.Recipe`. Loading validates every key
and value once, so the rest of the code can trust a `Recipe`; errors name the file, the line
and the closest valid key.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import os
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from sacrebleu.metrics import BLEU

from nmt.config.options import (
    _INTERVALS,
    _POSITIVE,
    _SECTION_TYPES,
    SECTIONS,
    SIDES,
    DataConfig,
    Recipe,
)
from nmt.errors import ConfigError


def recipe_file(path: str | os.PathLike) -> Path:
    """RECIPE may be a recipe folder or its recipe.yaml."""
    path = Path(path)
    if path.is_dir():
        path = path / "recipe.yaml"
    if not path.is_file():
        raise ConfigError("no such recipe file", str(path))
    return path


OVERRIDE = "override"  # the "line" of a value given with --set


# Keys of earlier versions: (section, key) -> how to write them now.
_RENAMED = {("train", "mixed_precision"):
            "train.mixed_precision is now train.precision: write 'precision: mixed_float16' "
            "(true) or 'precision: float32' (false)"}


def load_recipe(path: str | os.PathLike, overrides: typing.Sequence[str] = (),
                written_by_nmt: bool = False) -> Recipe:
    """Reads, validates and applies `section.key=value` overrides to a recipe file.

    `written_by_nmt`: the resolved recipe of a run directory, which earlier versions wrote with
    keys since renamed; they are translated rather than refused, so old model folders load.
    """
    path = recipe_file(path)
    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except UnicodeDecodeError as err:
        raise ConfigError(f"not UTF-8 ({err.reason})", str(path)) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise ConfigError(f"invalid YAML: {getattr(err, 'problem', err)}", str(path),
                          line) from None
    if node is None:
        raise ConfigError("empty recipe: it needs at least a data section", str(path))
    values, lines = _mapping_with_lines(node, str(path))
    for override in overrides:
        section, key, value = _parse_override(override)
        if section not in values:
            lines[(section, None)] = OVERRIDE
        values.setdefault(section, {})[key] = value
        lines[(section, key)] = OVERRIDE
    if written_by_nmt:
        _upgrade(values)
    recipe = _build(values, lines, str(path))
    _check_together(recipe, lines, str(path))
    return recipe


def _upgrade(values: dict) -> None:
    """Rewrites the renamed keys of a recipe written by an earlier nmt, in place."""
    train = values.get("train")
    if isinstance(train, dict) and "mixed_precision" in train:
        train["precision"] = "mixed_float16" if train.pop("mixed_precision") is True else "float32"


def recipe_from_dict(values: dict, source: str = "<recipe>") -> Recipe:
    """Builds a validated recipe from plain nested dicts (tests, the Python API)."""
    return _build(values, {}, source)


def to_dict(recipe: Recipe) -> dict:
    """Plain nested dicts (tuples as lists), the form `save_recipe` writes."""
    def plain(value):
        return list(value) if isinstance(value, tuple) else value
    return {name: {k: plain(v) for k, v in dataclasses.asdict(getattr(recipe, name)).items()}
            for name in SECTIONS}


def dump_recipe(recipe: Recipe) -> str:
    """The resolved recipe as YAML: every key, defaults filled in."""
    return yaml.safe_dump(to_dict(recipe), sort_keys=False, allow_unicode=True)


def with_changes(recipe: Recipe, section: str, **changes) -> Recipe:
    """A copy of `recipe` with keys of one section changed (validated like a recipe file)."""
    values = to_dict(recipe)
    values[section].update(changes)
    return recipe_from_dict(values)


def data_root() -> Path:
    """$NMT_DATA if set, else the per-user data folder."""
    if os.environ.get("NMT_DATA"):
        return Path(os.environ["NMT_DATA"]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "nmt" / "data"


def corpus_path(data: DataConfig, split: str, side: str) -> Path:
    """The file of one split ("train", "dev", "test") and side ("src", "tgt")."""
    folder = Path(data.corpus).expanduser()
    if not folder.is_absolute():
        folder = data_root() / folder
    return folder / f"{getattr(data, split)}.{getattr(data, side)}"


def _parse_override(text: str) -> tuple[str, str, Any]:
    name, sep, raw = text.partition("=")
    section, dot, key = name.strip().partition(".")
    if not sep or not dot or not key:
        raise ConfigError(f"--set expects section.key=value, got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return section, key, value


def _mapping_with_lines(node, path: str) -> tuple[dict, dict]:
    """Nested dict of a two-level YAML mapping, and the line of every (section, key)."""
    if not isinstance(node, yaml.MappingNode):
        raise ConfigError("a recipe must be a mapping of sections", path, node.start_mark.line + 1)
    values, lines = {}, {}
    for key_node, section_node in node.value:
        section = key_node.value
        if section in values:
            raise ConfigError(f"section '{section}' appears twice", path,
                              key_node.start_mark.line + 1)
        lines[(section, None)] = key_node.start_mark.line + 1
        if isinstance(section_node, yaml.ScalarNode) and section_node.value in ("", "~", "null"):
            values[section] = {}
            continue
        if not isinstance(section_node, yaml.MappingNode):
            raise ConfigError(f"section '{section}' must be a mapping of keys", path,
                              key_node.start_mark.line + 1)
        values[section] = {}
        for item_key, item_value in section_node.value:
            if item_key.value in values[section]:
                raise ConfigError(f"key '{section}.{item_key.value}' appears twice", path,
                                  item_key.start_mark.line + 1)
            values[section][item_key.value] = yaml.safe_load(yaml.serialize(item_value))
            lines[(section, item_key.value)] = item_key.start_mark.line + 1
    return values, lines


def _build(values: dict, lines: dict, path: str) -> Recipe:
    sections = {}
    for section, entries in values.items():
        if section not in SECTIONS:
            line = lines.get((section, None))
            where, line = ("--set", None) if line is OVERRIDE else (path, line)
            raise ConfigError(f"unknown section '{section}'{_suggest(section, SECTIONS)}", where,
                              line)
        if not isinstance(entries, dict):
            raise ConfigError(f"section '{section}' must be a mapping of keys", path,
                              lines.get((section, None)))
        cls = _SECTION_TYPES[section]
        hints = typing.get_type_hints(cls)
        checked = {}
        for key, value in entries.items():
            line = lines.get((section, key))
            # A value from `--set` is blamed on the option, not on the file.
            where, line = ("--set", None) if line is OVERRIDE else (path, line)
            if (section, key) in _RENAMED:
                raise ConfigError(_RENAMED[(section, key)], where, line)
            if key not in hints:
                raise ConfigError(f"unknown key '{section}.{key}'{_suggest(key, hints)}", where,
                                  line)
            checked[key] = _check_value(f"{section}.{key}", hints[key], value, where, line)
        try:
            sections[section] = cls(**checked)
        except TypeError as err:
            raise ConfigError(f"section '{section}': {err}", path) from None
    recipe = Recipe(**sections)
    _check_pretrained(recipe, lines, path)
    return recipe


def _check_pretrained(recipe: Recipe, lines: dict, path: str) -> None:
    """Pretrained vectors are looked up by word, and freezing needs vectors to keep."""
    def fail(key: str, message: str):
        line = lines.get(("model", key))
        where, line = ("--set", None) if line is OVERRIDE else (path, line)
        raise ConfigError(message, where, line)

    model = recipe.model
    if model.pretrained_embeddings and recipe.vocab.kind != "words":
        fail("pretrained_embeddings", "model.pretrained_embeddings needs a word vocabulary "
             f"(vocab.kind: words), not {recipe.vocab.kind}")
    if model.freeze_embeddings and not model.pretrained_embeddings:
        fail("freeze_embeddings", "model.freeze_embeddings keeps pretrained vectors fixed: it "
             "needs model.pretrained_embeddings")


def _check_together(recipe: Recipe, lines: dict, path: str) -> None:
    """Settings of a recipe file that are valid alone but not together (a model description
    alone, as model.json holds, is checked by its sections only)."""
    def fail(section: str, key: str, message: str):
        line = lines.get((section, key))
        where, line = ("--set", None) if line is OVERRIDE else (path, line)
        raise ConfigError(message, where, line)

    if recipe.model.tie == "all" and not recipe.vocab.joint:
        fail("model", "tie", "model.tie: all shares the source embeddings too, which needs one "
             "vocabulary for both sides: set vocab.joint: true (or model.tie: decoder)")
    if recipe.vocab.sampling_alpha and recipe.vocab.kind != "sentencepiece":
        fail("vocab", "sampling_alpha", "vocab.sampling_alpha samples SentencePiece "
             "segmentations: it needs vocab.kind: sentencepiece")


def _check_value(name: str, hint, value, path: str, line: int | None):
    def fail(expected: str):
        raise ConfigError(f"{name} must be {expected}, got {value!r}", path, line)

    origin = typing.get_origin(hint)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            fail("one of " + ", ".join(map(str, choices)))
        return value
    if hint is bool:
        if not isinstance(value, bool):
            fail("true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            fail("an integer")
        if value < 0 or (value == 0 and name.split(".")[1] in _POSITIVE):
            fail("a positive integer")
        return value
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-8 (no dot) as a string; people write it
            value = _number_or_text(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail("a number")
        if not math.isfinite(value) or value < 0:
            fail("a finite non-negative number")
        interval = _INTERVALS.get(name.split(".")[1])
        if interval and not _inside(value, interval):
            fail(f"in {interval}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            fail("a string")
        if name == "eval.tokenize" and value not in BLEU.TOKENIZERS:
            fail("a sacrebleu tokenizer: " + ", ".join(BLEU.TOKENIZERS))
        return value
    if origin is tuple:  # tuple[item, ...]: every item checked as `item`
        if not isinstance(value, (list, tuple)):
            fail("a list")
        item = typing.get_args(hint)[0]
        return tuple(_check_value(name, item, v, path, line) for v in value)
    if hint is tuple:
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
            fail("a list of positive integers")
        return tuple(value)
    if hint is dict:
        if not isinstance(value, dict):
            fail("a mapping")
        if name == "model.pretrained_embeddings" and not all(
                side in SIDES and isinstance(file, str) and file for side, file in value.items()):
            fail("a mapping of src and/or tgt to file paths")
        return dict(value)
    raise AssertionError(f"unhandled config type {hint} for {name}")


def _number_or_text(text: str):
    """The float a string such as "1e-8" stands for, or the string itself; words float() would
    also read ("nan", "inf") stay text, to be refused as not a number."""
    try:
        return float(text) if any(c.isdigit() for c in text) else text
    except ValueError:
        return text


def _inside(value: float, interval: str) -> bool:
    """Whether value lies in an interval written "[0, 1)" or "(0, 1]"."""
    low, high = (float(x) for x in interval[1:-1].split(","))
    above = value >= low if interval[0] == "[" else value > low
    below = value <= high if interval[-1] == "]" else value < high
    return above and below


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""
