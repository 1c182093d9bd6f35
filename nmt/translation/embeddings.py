"""`nmt embeddings`: what a trained model's embeddings learned. Nearest neighbours by cosine
similarity, and a 2-D map of the most frequent words.

The map is a PCA projection (the rows' first two principal components, from numpy's SVD):
deterministic and fast, with no dependency beyond numpy. It keeps the directions of largest
variance, so clusters that t-SNE would pull apart can overlap; neighbours are best read from
`--nearest`, which uses all dimensions.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from nmt.errors import NmtError
from vocab.specials import SPECIAL_TOKENS


class Embeddings(NamedTuple):
    """The content rows of one side's embedding matrix, in vocabulary-id order."""
    words: list  # vocabulary entries without the specials; a word vocabulary lists them by
    # frequency, a SentencePiece one by piece score
    matrix: np.ndarray  # float32 [len(words), embedding_dim]
    side: str = "src"  # "src" or "tgt", for messages


def load_embeddings(model_dir: str | Path, side: str) -> Embeddings:
    """The source ("src") or target ("tgt") embeddings of a model folder's best weights."""
    from keras import ops

    from nmt.storage import modeldir

    loaded = modeldir.load_model(model_dir, precision="float32")  # not rounded to bfloat16
    tokenizer = loaded.src_tokenizer if side == "src" else loaded.tgt_tokenizer
    first = len(SPECIAL_TOKENS)
    matrix = ops.convert_to_numpy(loaded.model.embedding_layer(side).embeddings)
    return Embeddings(tokenizer.pieces(range(first, len(tokenizer))), matrix[first:], side)


def nearest(embeddings: Embeddings, word: str, k: int) -> list[tuple[str, float]]:
    """The k entries most cosine-similar to `word` (itself excluded), most similar first."""
    try:
        index = embeddings.words.index(word)
    except ValueError:
        side = {"src": "source", "tgt": "target"}[embeddings.side]
        raise NmtError(f"{word!r} is not in the {side} vocabulary ({len(embeddings.words)} "
                       f"entries besides the specials)") from None
    norms = np.linalg.norm(embeddings.matrix, axis=1)
    # A zero row (never trained) has no direction: it gets similarity 0, not a division by 0.
    unit = embeddings.matrix / np.maximum(norms, 1e-12)[:, None]
    similarity = unit @ unit[index]
    similarity[index] = -np.inf
    order = np.argsort(-similarity, kind="stable")[:min(k, len(embeddings.words) - 1)]
    return [(embeddings.words[i], float(similarity[i])) for i in order]


def pca_2d(matrix: np.ndarray) -> np.ndarray:
    """[n, d] rows -> [n, 2] coordinates on their first two principal components."""
    centred = matrix - matrix.mean(axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    projected = centred @ components[:2].T
    return np.pad(projected, ((0, 0), (0, 2 - projected.shape[1])))  # fewer than 2 components


def plot_map(embeddings: Embeddings, count: int, path: str | Path) -> bool:
    """Draws the first `count` entries (the most frequent words) on their PCA plane as a PNG.

    Returns False when some labels could not be drawn (no CJK font) and show their rank instead.
    """
    from nmt.evaluation import plotting

    words = embeddings.words[:count]
    points = pca_2d(embeddings.matrix[:len(words)])
    return plotting.word_map(points, words, path,
                             title=f"{len(words)} most frequent words, PCA of the embeddings")
