"""The length-penalty registry: one list of names for recipe, CLI and search; the stop rule's
assumption checked for every penalty."""
import typing

import numpy as np
import pytest

from nmt import cli
from nmt.config import options, recipes
from nmt.config import penalties


def test_recipe_cli_and_search_read_the_same_names():
    hint = typing.get_type_hints(options.DecodeConfig)["length_penalty"]
    assert typing.get_args(hint) == penalties.NAMES
    parser = cli.build_parser()
    translate = parser._subparsers._group_actions[0].choices["translate"]
    option = next(a for a in translate._actions if "--length-penalty" in a.option_strings)
    assert tuple(option.choices) == penalties.NAMES


def test_unknown_names_are_errors_everywhere(tf, tmp_path):
    with pytest.raises(ValueError, match="unknown length penalty 'linear'"):
        penalties.get("linear")
    from nmt.search.decoding import Searcher
    from tests.helpers import SHORT_OR_LONG, A, ScriptedModel
    from vocab import EOS
    with pytest.raises(ValueError, match="unknown length penalty"):
        Searcher(ScriptedModel(SHORT_OR_LONG)).search(np.array([[A, EOS]], np.int32),
                                                      options.DecodeConfig(length_penalty="linear"))
    with pytest.raises(recipes.ConfigError, match="decode.length_penalty must be one of"):
        recipes.recipe_from_dict({"decode": {"length_penalty": "linear"}})


@pytest.mark.parametrize("name", penalties.NAMES)
def test_the_stop_rule_bound_holds(name):
    """`best_reachable` assumes log p <= 0 falls and the penalty never decreases with T: then no
    continuation of an open hypothesis scores above the bound."""
    penalty = penalties.get(name)
    rng = np.random.default_rng(0)
    for alpha in (0.0, 0.5, 1.0, 2.0):
        lengths = np.arange(1, 60, dtype=np.float64)
        values = penalty.penalty(lengths, alpha)
        assert np.all(np.diff(values) >= 0) and np.all(values > 0)
        limit = 59
        for _ in range(50):
            now = rng.integers(1, limit)
            log_prob = -rng.exponential(5.0)
            later_log_prob = log_prob - rng.exponential(2.0, size=limit - now)
            later = later_log_prob / penalty.penalty(np.arange(now + 1, limit + 1.0), alpha)
            assert np.all(later <= penalty.best_reachable(log_prob, values[-1]) + 1e-12)
