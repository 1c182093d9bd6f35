"""`nmt embeddings` on a trained model: nearest neighbours against brute force, the map file."""
import numpy as np
import pytest
from tests.helpers import assert_one_line_error, run_nmt


@pytest.mark.slow
@pytest.mark.parametrize("side", ["src", "tgt"])
def test_nearest_words_match_a_brute_force_cosine(reverse_run, side):
    from nmt.storage import modeldir
    loaded = modeldir.load_model(reverse_run)
    tokenizer = loaded.src_tokenizer if side == "src" else loaded.tgt_tokenizer
    matrix = loaded.model.embedding_layer(side).embeddings.numpy()
    words = tokenizer.tokens[4:]  # the specials are not neighbours
    query = words.index("7")
    cosines = [float(np.dot(matrix[4 + query], matrix[4 + i]) /
                     (np.linalg.norm(matrix[4 + query]) * np.linalg.norm(matrix[4 + i])))
               for i in range(len(words))]
    expected = sorted((i for i in range(len(words)) if i != query), key=lambda i: -cosines[i])[:4]

    code, out, err = run_nmt("embeddings", "--model", reverse_run, "--side", side,
                             "--nearest", "7", "-k", "4")
    assert code == 0, err
    printed = [line.split("\t") for line in out.splitlines()]
    assert [word for word, _ in printed] == [words[i] for i in expected]
    assert [float(value) for _, value in printed] == pytest.approx(
        [cosines[i] for i in expected], abs=1e-4)


@pytest.mark.slow
def test_map_is_written_and_bad_requests_are_one_line_errors(reverse_run, tmp_path):
    picture = tmp_path / "map.png"
    code, _, err = run_nmt("embeddings", "--model", reverse_run, "--plot", picture,
                           "--words", "8", "--nearest", "3", "-k", "2")
    assert code == 0, err
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "map of 8 words" in err
    code, _, err = run_nmt("embeddings", "--model", reverse_run, "--nearest", "seven")
    assert_one_line_error(code, err, "'seven' is not in the source vocabulary")
    code, _, err = run_nmt("embeddings", "--model", reverse_run)
    assert_one_line_error(code, err, "give --nearest WORD, --plot FILE.png or both")


def test_pca_map_keeps_the_main_direction():
    from nmt.translation.embeddings import pca_2d
    rng = np.random.default_rng(0)
    along = rng.normal(size=50)
    rows = np.outer(along, [3.0, 4.0, 0.0]) + rng.normal(scale=0.01, size=(50, 3))
    points = pca_2d(rows)
    # The first component carries the line the rows lie on (length 5 per unit of `along`).
    assert abs(np.corrcoef(points[:, 0], along)[0, 1]) > 0.999
    assert np.std(points[:, 0]) == pytest.approx(5 * np.std(along), rel=0.01)
    assert pca_2d(rows[:1]).shape == (1, 2)
