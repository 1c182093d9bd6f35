"""Length penalties: the one registry the recipe, the CLI and the search read (no TensorFlow).

A hypothesis of T tokens (EOS included) scores `sum log p / penalty(T)`. Each penalty also gives
the beam's stop rule, because that rule is only valid for the penalty it was derived for.
"""
from __future__ import annotations

from typing import Callable, NamedTuple


class LengthPenalty(NamedTuple):
    formula: str  # for help texts
    penalty: Callable  # (length as float, alpha) -> penalty; works on floats and tensors alike

    def best_reachable(self, log_prob, limit_penalty):
        """The highest score an open hypothesis with `log_prob` can still reach, given
        `limit_penalty` = penalty(length limit).

        Valid because log p only falls as tokens are added (log p <= 0) and every penalty here
        never decreases with T for alpha >= 0 (the recipe refuses a negative alpha): the best
        a hypothesis can do is keep its log p and be divided by the largest penalty, that of the
        length limit. A penalty that could decrease with T would need another bound.
        """
        return log_prob / limit_penalty


PENALTIES = {
    "average": LengthPenalty("T^alpha", lambda length, alpha: length ** alpha),
    "gnmt": LengthPenalty("((5+T)/6)^alpha (Wu et al. 2016; JoeyNMT's)",
                          lambda length, alpha: ((5.0 + length) / 6.0) ** alpha),
}
NAMES = tuple(PENALTIES)


def get(name: str) -> LengthPenalty:
    """The penalty called `name`; an unknown name is an error, never a silent default."""
    try:
        return PENALTIES[name]
    except KeyError:
        raise ValueError(f"unknown length penalty {name!r}; expected one of "
                         f"{', '.join(NAMES)}") from None


def help_text() -> str:
    return "; ".join(f"{name}: {p.formula}" for name, p in PENALTIES.items())
