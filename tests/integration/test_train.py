"""Training from a recipe: the run directory, resuming, and refusing to mix runs."""
import json

import pytest
from tests.helpers import metrics_rows, tiny_recipe_dict, write_recipe

from nmt.config import options, recipes
from nmt.errors import ConfigError
from nmt.storage import modeldir, rundir

pytestmark = pytest.mark.slow  # every test trains a model


@pytest.fixture
def recipe(tmp_path, reverse_corpus):
    return write_recipe(tmp_path / "recipe", tiny_recipe_dict(
        reverse_corpus, train={"epochs": 1, "patience": 5}))


def test_run_directory_is_self_describing(recipe, tmp_path, reverse_corpus):
    from nmt.training.train import train
    result = train(recipe, tmp_path / "run", verbose=0)
    run = rundir.RunDir(tmp_path / "run")
    assert result.epochs == 1
    for path in (run.recipe, run.model_json, run.best, run.last, run.metrics, run.log):
        assert path.is_file(), path
    assert any(run.tensorboard.rglob("events.out.tfevents.*"))
    assert recipes.load_recipe(run.recipe) == recipes.load_recipe(recipe)
    description = json.loads(run.model_json.read_text())
    assert description["format_version"] == modeldir.FORMAT_VERSION
    assert description["tgt_vocab_size"] == len(modeldir.load_tokenizers(run)[1])
    row, = metrics_rows(run.root)
    for key in ("loss", "nll", "ppl", "val_nll", "val_ppl", "val_bleu", "tokens_per_sec",
                "learning_rate"):
        assert float(row[key]) >= 0, key
    assert float(row["ppl"]) == pytest.approx(2.718281828 ** float(row["nll"]), rel=1e-4)
    # The logged dev BLEU is that of the weights at the epoch's end: the dev search follows them.
    from nmt.evaluation import metrics
    from nmt.files import textio
    from nmt.translation.translate import Translator
    sources, references = (list(textio.read_lines(reverse_corpus / f"dev.{side}"))
                           for side in ("src", "tgt"))
    found = Translator(run.root, beam_size=1, weights="last").translate(sources)
    dev_bleu = metrics.bleu([hyps[0].text for hyps in found], references, "none").score
    assert dev_bleu > 0 and float(row["val_bleu"]) == pytest.approx(dev_bleu, abs=1e-6)
    # Only the model folder is needed to translate: copy it elsewhere and load it.
    import shutil
    copy = tmp_path / "elsewhere"
    shutil.copytree(run.root, copy)
    loaded = modeldir.load_model(copy)
    assert loaded.model.count_params() > 0 and loaded.recipe == recipes.load_recipe(recipe)


def optimizer_steps(run, recipe_path):
    """The optimizer's step counter saved in a run's resume weights."""
    from nmt.training.setup import compiled_trainer
    state = rundir.read_resume_state(rundir.RunDir(run))
    sizes = json.loads((run / "model.json").read_text())
    trainer = compiled_trainer(recipes.load_recipe(run / "recipe.yaml"),
                               sizes["src_vocab_size"], sizes["tgt_vocab_size"])
    rundir.restore_resume_state(rundir.RunDir(run), trainer, state)
    return int(trainer.optimizer.iterations.numpy())


def test_resume_continues_and_a_finished_run_stays_finished(recipe, tmp_path):
    from nmt.training.train import train
    run = tmp_path / "run"
    train(recipe, run, verbose=0)
    weights_after_one = (run / "last.weights.h5").read_bytes()
    steps_per_epoch = optimizer_steps(run, recipe)
    result = train(recipe, run, overrides=["train.epochs=2"], verbose=0)
    assert result.epochs == 2
    assert [r["epoch"] for r in metrics_rows(run)] == ["0", "1"]
    assert (run / "last.weights.h5").read_bytes() != weights_after_one
    # The optimizer state carried on (bucketing makes every epoch the same number of steps).
    assert steps_per_epoch > 0 and optimizer_steps(run, recipe) == 2 * steps_per_epoch
    state = json.loads((run / "backup" / "state.json").read_text())
    assert state["epoch"] == 2 and (run / "backup" / state["resume"]).is_file()
    again = train(recipe, run, overrides=["train.epochs=2"], verbose=0)
    assert again.epochs == 2 and len(metrics_rows(run)) == 2


def test_a_run_directory_refuses_other_settings(recipe, tmp_path):
    from nmt.training.train import train
    train(recipe, tmp_path / "run", verbose=0)
    with pytest.raises(ConfigError, match=r"different settings \(model.decoder_units\)"):
        train(recipe, tmp_path / "run", overrides=["model.decoder_units=8"], verbose=0)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        train(recipe, tmp_path / "other", verbose=0)
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


def test_sentencepiece_vocabulary_and_gru(tmp_path, reverse_corpus):
    from nmt.training.train import train
    recipe = write_recipe(tmp_path / "r", tiny_recipe_dict(
        reverse_corpus, data={"train_lines": 300},
        vocab={"kind": "sentencepiece", "size": 30, "model_type": "bpe"},
        model={"cell": "gru", "encoder_layers": 2}))
    train(recipe, tmp_path / "run", verbose=0)
    assert (tmp_path / "run" / "vocab" / "tgt.spm.model").is_file()
    loaded = modeldir.load_model(tmp_path / "run")
    assert loaded.model.model_config.cell == "gru"


def test_shipped_tiny_recipe_trains_on_the_real_corpus(tmp_path):
    """The README's recipe, a few steps on the real data: guards paths, keys and vocabulary."""
    from tests.helpers import real_corpus

    from nmt.training.train import train
    assert (real_corpus() / "train.ja").is_file(), "set NMT_DATA to the folder of the corpora"
    root = __import__("pathlib").Path(__file__).resolve().parents[2]
    # The end-of-training tune on a smaller grid: the shipped one decodes dev 7 times.
    result = train(root / "recipes" / "ja-en-tiny", tmp_path / "run",
                   overrides=["data.train_lines=300", "train.epochs=1", "vocab.size=500",
                              "eval.tune_beams=[1, 2]", "eval.tune_alphas=[0.0]"],
                   verbose=0)
    assert result.epochs == 1 and (tmp_path / "run" / "best.weights.h5").is_file()
    assert (tmp_path / "run" / "tune.json").is_file()


@pytest.mark.slow
def test_weight_decay_shrinks_the_weights(tmp_path, reverse_corpus):
    import numpy as np

    from nmt.training.train import train
    norms = {}
    for decay in (0.0, 2.0):  # same seed, data and batches; 20 steps at learning rate 0.01
        recipe = write_recipe(tmp_path / f"recipe{decay}", tiny_recipe_dict(
            reverse_corpus, data={"train_lines": 640}, train={"weight_decay": decay}))
        train(recipe, tmp_path / f"run{decay}", verbose=0)
        weights = modeldir.load_model(tmp_path / f"run{decay}", "last").model.weights
        norms[decay] = np.sqrt(sum(float(np.sum(np.square(w.numpy()))) for w in weights
                                   if len(w.shape) > 1))
    # Decay alone would scale every matrix by (1 - 0.01 * 2)^20 = 0.67.
    assert norms[2.0] < 0.85 * norms[0.0]


@pytest.mark.parametrize("metric, rates", [("bleu", [0.01, 0.01, 0.01]),
                                           ("ppl", [0.01, 0.005, 0.0025])])
def test_the_decay_watches_dev_bleu_or_dev_perplexity(tf, metric, rates):
    """Dev BLEU climbs while dev perplexity rises (over-confidence): only the ppl decay acts."""
    import keras

    from nmt.training.train import learning_rate_decay
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    decay = learning_rate_decay(options.TrainConfig(lr_decay=0.5, lr_patience=1,
                                                   lr_decay_metric=metric))
    decay.set_model(model)
    decay.on_train_begin()
    after_each_epoch = []
    for epoch, (bleu, nll) in enumerate([(20.0, 1.8), (22.0, 1.9), (24.0, 2.0)]):
        decay.on_epoch_end(epoch, {"val_bleu": bleu, "val_nll": nll})
        after_each_epoch.append(float(model.optimizer.learning_rate))
    assert after_each_epoch == pytest.approx(rates)
