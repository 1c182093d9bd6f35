"""Special token ids and strings, shared by every tokenizer kind and by the model (PAD = 0)."""
from __future__ import annotations

from typing import Iterable

PAD, UNK, BOS, EOS = 0, 1, 2, 3
PAD_TOKEN, UNK_TOKEN, BOS_TOKEN, EOS_TOKEN = "<pad>", "<unk>", "<s>", "</s>"
SPECIAL_TOKENS = (PAD_TOKEN, UNK_TOKEN, BOS_TOKEN, EOS_TOKEN)  # index = id


def content_ids(ids: Iterable[int]) -> list[int]:
    """The ids a tokenizer turns into text: up to the first EOS, without PAD and BOS."""
    out = []
    for index in ids:
        index = int(index)
        if index == EOS:
            break
        if index not in (PAD, BOS):
            out.append(index)
    return out
