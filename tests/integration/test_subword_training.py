"""Training with a joint vocabulary, tied embeddings and subword sampling, then translating."""
import pytest

from tests.helpers import make_reverse_corpus, tiny_recipe_dict, write_recipe


@pytest.mark.slow
def test_joint_tied_sampled_training_runs_and_translates(tmp_path):
    from nmt.storage import modeldir
    from nmt.training.train import train
    from nmt.translation.translate import Translator
    corpus = make_reverse_corpus(tmp_path / "reverse", train=600)
    recipe = write_recipe(tmp_path / "recipe", tiny_recipe_dict(
        corpus, vocab={"kind": "sentencepiece", "size": 30, "joint": True,
                       "sampling_alpha": 0.2},
        model={"tie": "all"}))
    train(recipe, tmp_path / "run", verbose=0)
    loaded = modeldir.load_model(tmp_path / "run")
    assert loaded.model.encoder.embedding is loaded.model.decoder.embedding
    assert loaded.src_tokenizer.sampling_alpha == 0  # translation segments deterministically
    hypotheses = Translator(tmp_path / "run").translate(["1 2 3", "4 5"])
    assert len(hypotheses) == 2
