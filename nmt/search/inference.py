"""The inference protocol the search sees a model through, and an ensemble that satisfies it.

As in Sockeye, search is written once against this protocol; a single `Seq2Seq` satisfies it
directly and `Ensemble` combines several. Search never calls `model(...)` and knows nothing of
Keras.
"""
from __future__ import annotations

from typing import Protocol, Sequence


class InferenceModel(Protocol):
    """What greedy search, beam search and forced scoring use of a model.

        tables = model.step_tables()                 weight-derived constants, once per weights
        memory, state = model.encode(source)
        log_probs, state, attention = model.decode_step(token, state, memory, tables, R)
        log_probs, attention = model.teacher_forced(source, target_in)

    `source` is int [B, S] for one model, [B, M, S] for an ensemble of M (each member's own ids);
    search reads only its first dimension. `token` is int [B]; `log_probs` [B, V] (normalized:
    scores are sums of them) or [B, T, V]; attention [B, S] or [B, T, S]. `memory` and `state`
    are nested structures of tensors with the batch first, which search gathers (the memory
    per sentence) and reorders (the state per hypothesis).
    `decode_step` takes R = `rows_per_memory` (default 1) consecutive rows of `token` and `state`
    per row of `memory`: beam search keeps one copy of a sentence's memory for its hypotheses.
    """

    def step_tables(self): ...

    def encode(self, source): ...

    def decode_step(self, token, state, memory, tables, rows_per_memory: int = 1): ...

    def teacher_forced(self, source, target_in): ...


class Ensemble:
    """Members whose log-probabilities are averaged at each step (the mean of log-probs, not
    renormalized: a hypothesis's score is the mean of its members' scores, as forced scoring
    computes it).

    Every member must share the target vocabulary; each reads the source in its own vocabulary
    (`source` [B, M, S], member m's ids in [:, m, :]). Attention is the members' mean.
    """

    def __init__(self, members: Sequence[InferenceModel]):
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two members")
        self.members = tuple(members)

    def step_tables(self):
        return tuple(m.step_tables() for m in self.members)

    def encode(self, source):
        encoded = [m.encode(source[:, i, :]) for i, m in enumerate(self.members)]
        return tuple(e[0] for e in encoded), tuple(e[1] for e in encoded)

    def decode_step(self, token, state, memory, tables, rows_per_memory: int = 1):
        found = [m.decode_step(token, s, mem, t, rows_per_memory)
                 for m, s, mem, t in zip(self.members, state, memory, tables)]
        return (_mean([f[0] for f in found]), tuple(f[1] for f in found),
                _mean([f[2] for f in found]))

    def teacher_forced(self, source, target_in):
        found = [m.teacher_forced(source[:, i, :], target_in) for i, m in enumerate(self.members)]
        return _mean([f[0] for f in found]), _mean([f[1] for f in found])


def _mean(tensors):
    total = tensors[0]
    for tensor in tensors[1:]:
        total = total + tensor
    return total / len(tensors)
