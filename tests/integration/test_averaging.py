"""Keeping the K best / last epochs, averaging their weights into a model folder, and tuning the
decode default on dev at the end of training and with `nmt tune`."""
import csv
import json

import numpy as np
import pytest
from tests.helpers import tiny_recipe_dict, write_recipe

from nmt import cli


def weights_of(run, path):
    from nmt.storage import modeldir, weights
    model = modeldir.load_model(run).model
    weights.load_weights(model, path)
    return model.get_weights()


@pytest.mark.slow
def test_the_k_best_and_last_epochs_are_kept_and_averaged(kept_run, tmp_path, capsys):
    from nmt.storage import rundir
    from nmt.translation.translate import Translator
    state = rundir.read_resume_state(rundir.RunDir(kept_run))
    with open(kept_run / "metrics.csv", newline="") as handle:
        bleu = {int(row["epoch"]) + 1: float(row["val_bleu"]) for row in csv.DictReader(handle)}
    ranked = sorted(bleu, key=lambda epoch: (-bleu[epoch], epoch))[:2]
    assert [entry["epoch"] for entry in state["kept"]] == ranked
    assert state["recent"] == [f"last-{e:04d}.weights.h5" for e in (2, 3, 4)]
    named = {state["resume"], *state["recent"], *(e["weights"] for e in state["kept"])}
    assert {p.name for p in (kept_run / "backup").glob("*.weights.h5")} == named
    # train.average_best: the element-wise mean of the two best epochs' weights.
    folder = kept_run / "average-best-2"
    members = [weights_of(kept_run, kept_run / "backup" / e["weights"]) for e in state["kept"]]
    for averaged, first, second in zip(weights_of(kept_run, folder / "best.weights.h5"),
                                       *members):
        np.testing.assert_allclose(averaged, (first + second) / 2, rtol=1e-6, atol=1e-7)
    assert Translator(folder, beam_size=2).translate(["1 2 3"])[0][0].text
    record = json.loads((folder / "averaged.json").read_text())
    assert record["weights"] == [{"file": e["weights"], "dev_bleu": e["bleu"]}
                                 for e in state["kept"]]
    # nmt average --last 3 -o DIR; asking for more epochs than kept is a one-line error.
    assert cli.main(["average", str(kept_run), "--last", "3", "-o", str(tmp_path / "l3")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "l3")
    recent = [weights_of(kept_run, kept_run / "backup" / name) for name in state["recent"]]
    for averaged, *epochs in zip(weights_of(kept_run, tmp_path / "l3" / "best.weights.h5"),
                                 *recent):
        np.testing.assert_allclose(averaged, sum(epochs) / 3, rtol=1e-6, atol=1e-7)
    assert cli.main(["average", str(kept_run), "--best", "3"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"nmt: error: {kept_run}: ") and "train.keep_best" in err
    assert err.count("\n") == 1


@pytest.mark.slow
def test_averaging_a_run_that_translates_in_bfloat16_keeps_float32_means(kept_run, tmp_path):
    """decode.precision bfloat16 is how the model translates, not how its weights are stored:
    the means are float32, not rounded to bfloat16's 8 bits."""
    import shutil

    import yaml
    run = shutil.copytree(kept_run, tmp_path / "run")
    recipe = yaml.safe_load((run / "recipe.yaml").read_text())
    recipe["decode"]["precision"] = "bfloat16"
    (run / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    assert cli.main(["average", str(run), "--last", "3", "-o", str(tmp_path / "l3")]) == 0
    recent = [weights_of(kept_run, kept_run / "backup" / f"last-{e:04d}.weights.h5")
              for e in (2, 3, 4)]
    for averaged, *epochs in zip(weights_of(kept_run, tmp_path / "l3" / "best.weights.h5"),
                                 *recent):
        assert averaged.dtype == np.float32
        np.testing.assert_allclose(averaged, sum(epochs) / 3, rtol=1e-6, atol=1e-7)


def test_average_best_above_keep_best_is_a_recipe_error(tmp_path, reverse_corpus, capsys):
    recipe = write_recipe(tmp_path / "recipe", tiny_recipe_dict(
        reverse_corpus, train={"keep_best": 2, "average_best": 3}))
    assert cli.main(["train", str(recipe), "--run-dir", str(tmp_path / "run")]) == 1
    assert "train.average_best (3) needs train.keep_best >= it" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_training_ends_by_tuning_the_decode_default_on_dev(kept_run):
    from nmt.config import recipes
    record = json.loads((kept_run / "tune.json").read_text())
    assert [(p["beam_size"], p["alpha"]) for p in record["grid"]] == [
        (1, 0.0), (1, 1.0), (2, 0.0), (2, 1.0)]
    chosen = record["chosen"]
    assert chosen["bleu"] == max(p["bleu"] for p in record["grid"])
    decode = recipes.load_recipe(kept_run / "recipe.yaml").decode
    assert (decode.beam_size, decode.alpha) == (chosen["beam_size"], chosen["alpha"])
    assert (kept_run / "tune" / "tune_heatmap.png").stat().st_size > 1000


@pytest.mark.slow
def test_nmt_tune_writes_the_best_setting_and_its_bleu_is_reproduced(reverse_run, tmp_path,
                                                                       capsys):
    import shutil

    from nmt.config import recipes
    from nmt.evaluation import metrics
    from nmt.translation.translate import Translator
    model = tmp_path / "model"
    shutil.copytree(reverse_run, model, ignore=shutil.ignore_patterns("backup", "tensorboard"))
    corpus = reverse_run.parent / "reverse"
    assert cli.main(["tune", "--model", str(model), "--src", str(corpus / "dev.src"), "--ref",
                     str(corpus / "dev.tgt"), "--beams", "1,3", "--alphas", "0,2",
                     "--length-penalties", "average,gnmt", "--write"]) == 0
    out = capsys.readouterr().out
    assert "| beam | penalty | alpha 0 | alpha 2 |" in out and "best: beam " in out
    record = json.loads((model / "tune.json").read_text())
    assert len(record["grid"]) == 8 and "tok:none" in record["signature"]
    chosen = record["chosen"]
    decode = recipes.load_recipe(model / "recipe.yaml").decode
    assert (decode.beam_size, decode.alpha, decode.length_penalty) == (
        chosen["beam_size"], chosen["alpha"], chosen["length_penalty"])
    # The folder's new default reproduces the BLEU the grid reported for it.
    sources = (corpus / "dev.src").read_text().splitlines()
    found = Translator(model).translate(sources)
    bleu = metrics.bleu([t[0].text for t in found], (corpus / "dev.tgt").read_text()
                         .splitlines(), "none").score
    assert bleu == pytest.approx(chosen["bleu"])
    assert (model / "tune-dev.src" / "tune_heatmap.png").stat().st_size > 1000
