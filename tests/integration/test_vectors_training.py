"""Training that starts from pretrained word vectors, frozen, and no longer needs them."""
import gzip

import numpy as np
import pytest

from tests.helpers import tiny_recipe_dict, write_recipe


@pytest.mark.slow
def test_training_starts_from_the_vectors_and_no_longer_needs_them(tmp_path, reverse_corpus):
    from nmt.config import recipes
    from nmt.storage import modeldir
    from nmt.training.setup import compiled_trainer
    from nmt.training.train import train
    from nmt.translation.translate import Translator
    rng = np.random.default_rng(3)
    table = {str(digit): rng.normal(size=16).round(4) for digit in range(7)}  # not 7, 8, 9
    path = tmp_path / "digits.vec.gz"
    path.write_bytes(gzip.compress("".join(
        f"{word} {' '.join(map(str, row))}\n" for word, row in [*table.items(),
                                                                ("ten", np.ones(16))]).encode()))
    recipe = write_recipe(tmp_path / "recipe", tiny_recipe_dict(
        reverse_corpus, data={"train_lines": 320},
        model={"pretrained_embeddings": {"tgt": str(path)}, "freeze_embeddings": True},
        train={"weight_decay": 0.5}))
    run = tmp_path / "run"
    train(recipe, run, verbose=0)
    assert "pretrained tgt embeddings: 7 of 10 words found in" in (run / "train.log").read_text()

    def target_embeddings():
        loaded = modeldir.load_model(run, "last")
        return loaded.tgt_tokenizer, loaded.model.embedding_layer("tgt").embeddings.numpy()

    tokenizer, trained = target_embeddings()
    # Frozen rows stay as they started, whatever the weight decay: the file's vectors, and for
    # the words it lacks the random initialization of a fresh model with the same seed.
    import keras
    keras.utils.set_random_seed(1)
    fresh = compiled_trainer(recipes.load_recipe(recipe), len(modeldir.load_tokenizers(
        modeldir.ModelDir(run))[0]), len(tokenizer)).seq2seq.embedding_layer("tgt")
    for word in tokenizer.tokens:
        expected = table[word] if word in table else fresh.embeddings.numpy()[tokenizer.ids[word]]
        np.testing.assert_allclose(trained[tokenizer.ids[word]], expected, rtol=1e-6)
    # Neither resuming nor translating reads the vectors file again.
    path.unlink()
    assert train(recipe, run, overrides=["train.epochs=2"], verbose=0).epochs == 2
    np.testing.assert_array_equal(target_embeddings()[1], trained)
    assert len(Translator(run, beam_size=1).translate(["1 2 3"])) == 1
