"""Recipe files: reading, checking and writing the YAML that fills `nmt.config.options`.

A recipe is YAML with one mapping per section of `options.Recipe`; it lists the keys it sets,
the others take their defaults. Loading validates every key and value once against the option
definitions (`options.OPTIONS`, `options.RULES`), so the rest of the code can trust a `Recipe`;
errors name the file and line (or --set) and the closest valid key.
"""
from __future__ import annotations

import dataclasses
import difflib
import os
import typing
from pathlib import Path
from typing import Any

import yaml

from nmt.config import options
from nmt.config.checks import Invalid
from nmt.config.options import SECTIONS, DataConfig, Recipe
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
    _check_rules(recipe, SECTIONS, lines, str(path))  # a file's missing sections are defaults
    return recipe


def _upgrade(values: dict) -> None:
    """Rewrites the renamed keys of a recipe written by an earlier nmt, in place."""
    train = values.get("train")
    if isinstance(train, dict) and "mixed_precision" in train:
        train["precision"] = "mixed_float16" if train.pop("mixed_precision") is True else "float32"


def recipe_from_dict(values: dict, source: str = "<recipe>") -> Recipe:
    """Builds a validated recipe from plain nested dicts (tests, the Python API).

    Rules between options are checked where both sections are given: a model description alone
    (as model.json holds) is checked by its own section."""
    recipe = _build(values, {}, source)
    _check_rules(recipe, set(values), {}, source)
    return recipe


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


def _where(lines: dict, section: str, key: str | None, path: str) -> tuple[str, int | None]:
    """The file and line to blame for a key; a value from `--set` is blamed on the option."""
    line = lines.get((section, key))
    return ("--set", None) if line is OVERRIDE else (path, line)


def _build(values: dict, lines: dict, path: str) -> Recipe:
    sections = {}
    for section, entries in values.items():
        if section not in SECTIONS:
            raise ConfigError(f"unknown section '{section}'{_suggest(section, SECTIONS)}",
                              *_where(lines, section, None, path))
        if not isinstance(entries, dict):
            raise ConfigError(f"section '{section}' must be a mapping of keys", path,
                              lines.get((section, None)))
        known = options.OPTIONS[section]
        checked = {}
        for key, value in entries.items():
            where, line = _where(lines, section, key, path)
            if (section, key) in _RENAMED:
                raise ConfigError(_RENAMED[(section, key)], where, line)
            if key not in known:
                raise ConfigError(f"unknown key '{section}.{key}'{_suggest(key, known)}", where,
                                  line)
            try:
                checked[key] = known[key].validate(value)
            except Invalid as err:
                raise ConfigError(f"{section}.{key} must be {err.expected}, got {err.value!r}",
                                  where, line) from None
        sections[section] = options.SECTION_TYPES[section](**checked)
    return Recipe(**sections)


def _check_rules(recipe: Recipe, given: typing.Collection[str], lines: dict, path: str) -> None:
    """Settings valid alone but not together (`options.RULES` whose sections are all given)."""
    for rule in options.RULES:
        if rule.sections <= set(given) and rule.broken(recipe):
            section, _, key = rule.option.partition(".")
            raise ConfigError(rule.message.format(recipe=recipe), *_where(lines, section, key,
                                                                         path))


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""
