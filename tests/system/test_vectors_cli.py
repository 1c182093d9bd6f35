"""A bad pretrained vectors file named by a recipe: `nmt train` stops with one line."""
from tests.helpers import run_nmt, tiny_recipe_dict, write_recipe


def test_a_bad_vectors_file_stops_training_with_one_line(tmp_path, reverse_corpus):
    path = tmp_path / "v.txt"
    path.write_text("1 " + " ".join(["0.5"] * 16) + "\n2 0.5 0.5\n")
    recipe = write_recipe(tmp_path / "recipe", tiny_recipe_dict(
        reverse_corpus, model={"pretrained_embeddings": {"src": str(path)}}))
    code, _, err = run_nmt("train", recipe, "--run-dir", tmp_path / "run")
    # After the vocabulary's progress lines (the words to look up), one error line, no traceback.
    assert code == 1 and "Traceback" not in err
    assert err.splitlines()[-1].startswith(
        f"nmt: error: {path}:2: ragged row: 2 numbers after the word")
