"""`nmt tune` with a scripted translator: a grid where no setting translates anything right (BLEU
0 everywhere) leaves the model's decode default alone (issue 30, defect 5)."""
from types import SimpleNamespace

import pytest
from nmt.errors import DataError
from nmt.translation import tuning
from tests.helpers import write_lines


class ConstantTranslator:
    """Translates every line into the same text, whatever the setting: every point ties."""

    def __init__(self, model_dir, text=""):
        self.model_dir, self.text, self.calls = model_dir, text, 0

    def translate(self, sources, **setting):
        self.calls += 1
        return [[SimpleNamespace(text=self.text)] for _ in sources]


def test_a_grid_of_ties_does_not_overwrite_the_decode_default(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    recipe = model / "recipe.yaml"
    recipe.write_text("decode: {beam_size: 10}\n")
    src = write_lines(tmp_path / "dev.src", ["1 2", "3 4"])
    ref = write_lines(tmp_path / "dev.ref", ["2 1", "4 3"])
    with pytest.raises(tuning.NothingToChoose, match="scores dev BLEU 0.00.*is kept") as caught:
        tuning.tune(ConstantTranslator(model), str(src), str(ref), [1, 5, 10], [0.0, 1.0],
                    ["gnmt"], "none", tmp_path / "tune", write=True)
    assert str(caught.value).startswith(f"{src}: ") and "\n" not in str(caught.value)
    assert recipe.read_text() == "decode: {beam_size: 10}\n"
    assert not (model / tuning.RECORD).exists()
    assert (tmp_path / "tune" / "tune.md").is_file()  # the grid's table is kept all the same


def test_a_grid_of_ties_is_still_reported_without_write(tmp_path):
    src = write_lines(tmp_path / "dev.src", ["1 2"])
    points, chosen, _ = tuning.tune(ConstantTranslator(tmp_path), str(src), str(src), [1, 5],
                                    [0.0], ["gnmt"], "none", tmp_path / "tune")
    assert len(points) == 2 and chosen.beam_size == 1


def test_a_blank_dev_source_is_refused_before_decoding(tmp_path):
    src = write_lines(tmp_path / "dev.src", ["", " "])
    ref = write_lines(tmp_path / "dev.ref", ["1", "2"])
    translator = ConstantTranslator(tmp_path)
    with pytest.raises(DataError, match="every source line is blank"):
        tuning.tune(translator, str(src), str(ref), [1, 5], [0.0], ["gnmt"], "none",
                    tmp_path / "tune", write=True)
    assert translator.calls == 0 and not (tmp_path / "tune").exists()


def test_distinguishes():
    def points(*scores):
        return [tuning.TunePoint(i + 1, 0.0, "gnmt", s) for i, s in enumerate(scores)]
    assert tuning.distinguishes(points(1.0, 2.0))
    assert tuning.distinguishes(points(3.0))
    assert tuning.distinguishes(points(2.0, 2.0))  # ties above 0: the documented tie-break
    assert not tuning.distinguishes(points(0.0, 0.0))
    assert not tuning.distinguishes(points(0.0))
