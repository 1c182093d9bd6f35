from pathlib import Path

import pytest

from nmt.config import checks, options, recipes
from nmt.errors import ConfigError

RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*/recipe.yaml"))


def test_defaults_fill_missing_sections(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("model:\n  decoder_units: 64\n")
    recipe = recipes.load_recipe(path)
    assert recipe.model.decoder_units == 64
    assert recipe.model.encoder_units == options.ModelConfig().encoder_units
    assert recipe.train == options.TrainConfig()


def test_unknown_key_names_file_line_and_close_match(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("train:\n  epochs: 3\n  learning_rat: 0.1\n")
    with pytest.raises(ConfigError) as err:
        recipes.load_recipe(path)
    message = str(err.value)
    assert message.startswith(f"{path}:3: ")
    assert "train.learning_rat" in message and "did you mean 'learning_rate'" in message


def test_unknown_section(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("modle:\n  cell: lstm\n")
    with pytest.raises(ConfigError, match=r":1: unknown section 'modle' \(did you mean 'model'"):
        recipes.load_recipe(path)


@pytest.mark.parametrize("text, expected", [
    ("train:\n  batch_size: many\n", "train.batch_size must be an integer"),
    ("train:\n  batch_size: 0\n", "must be a positive integer"),
    ("model:\n  cell: rnn\n", "model.cell must be one of lstm, gru"),
    ("model:\n  dropout: 1.5\n", r"model.dropout must be in \[0, 1\)"),
    ("vocab:\n  size: 4\n", r"vocab.size must be in \[5, inf\), got 4"),  # the 4 specials only
    ("train:\n  lr_decay: 0\n", r"train.lr_decay must be in \(0, 1\]"),
    ("eval:\n  tokenize: moses\n", "eval.tokenize must be a sacrebleu tokenizer"),
    ("train:\n  precision: bfloat16\n",
     "train.precision must be one of float32, mixed_bfloat16, mixed_float16"),
    ("decode:\n  precision: mixed_bfloat16\n", "decode.precision must be one of float32, bfloat16"),
    ("train:\n  mixed_precision: true\n", "r.yaml:2: train.mixed_precision is now train.precision: "
     "write 'precision: mixed_float16'"),
    ("eval:\n  beam_sweep: [1, x]\n", "a list of positive integers"),
    ("train: 3\n", "section 'train' must be a mapping"),
    ("train:\n  epochs: [1\n", "invalid YAML"),
])
def test_bad_values_are_one_line_errors(tmp_path, text, expected):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected) as err:
        recipes.load_recipe(path)
    assert "\n" not in str(err.value)


def test_overrides_are_typed_and_validated(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("train:\n  epochs: 3\n")
    recipe = recipes.load_recipe(path, ["train.epochs=7", "model.dropout=0.5", "model.cell=gru"])
    assert (recipe.train.epochs, recipe.model.dropout, recipe.model.cell) == (7, 0.5, "gru")
    with pytest.raises(ConfigError, match="unknown key 'train.epoch'"):
        recipes.load_recipe(path, ["train.epoch=7"])
    with pytest.raises(ConfigError, match="section.key=value"):
        recipes.load_recipe(path, ["epochs=7"])


def test_exponent_notation_without_a_dot_is_a_number(tmp_path):
    """YAML 1.1 reads 1e-8 as a string; the float keys take it as the number people mean."""
    path = tmp_path / "r.yaml"
    path.write_text("train:\n  adam_epsilon: 1e-8\n  learning_rate: 5E-4\n")
    recipe = recipes.load_recipe(path, ["train.min_learning_rate=1e-6"])
    assert (recipe.train.adam_epsilon, recipe.train.learning_rate,
            recipe.train.min_learning_rate) == (1e-8, 5e-4, 1e-6)
    for bad in ("train.learning_rate=fast", "train.learning_rate=1e999", "train.epochs=1e3"):
        with pytest.raises(ConfigError, match="must be"):
            recipes.load_recipe(path, [bad])


def test_dump_round_trips(tmp_path):
    recipe = recipes.load_recipe(RECIPES[0], ["train.epochs=2"])
    path = tmp_path / "resolved.yaml"
    path.write_text(recipes.dump_recipe(recipe))
    assert recipes.load_recipe(path) == recipe


def test_recipe_folder_or_file(tmp_path):
    folder = RECIPES[0].parent
    assert recipes.load_recipe(folder) == recipes.load_recipe(RECIPES[0])
    with pytest.raises(ConfigError, match="no such recipe file"):
        recipes.load_recipe(tmp_path / "missing")


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.parent.name)
def test_shipped_recipes_load_and_explain_the_keys_they_list(path):
    """A recipe lists the keys it sets (the others are their defaults, documented by the options'
    help): each listed key is valid (the recipe loads) and says why on its line."""
    recipes.load_recipe(path)
    for number, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and not stripped.endswith(":"):
            key = stripped.split(":")[0]
            assert "#" in line, f"{path.name}:{number}: key '{key}' has no comment"


def test_a_recipe_need_not_list_every_key(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("data:\n  corpus: c  # a folder\nmodel:\n  cell: gru  # smaller\n")
    recipe = recipes.load_recipe(path)
    assert recipe.model == options.ModelConfig(cell="gru")
    assert recipe.train == options.TrainConfig() and recipe.eval == options.EvalConfig()


@pytest.mark.parametrize("name", [f"{section}.{key}" for section, keys in options.OPTIONS.items()
                                  for key in keys])
def test_every_option_has_help_and_a_default_its_check_accepts(name):
    found = options.get(name)
    assert found.help and "\n" not in found.help and found.name == name
    held = found.validate(recipes.to_dict(options.Recipe())[found.section][found.key])
    assert held == found.default
    if found.type is tuple:  # a bare tuple is a list its check describes: it needs one
        assert found.check is not None


@pytest.mark.parametrize("name, good, bad", [
    ("train.batch_size", 1, 0),
    ("model.dropout", 0.0, 1.0),
    ("train.lr_decay", 1.0, 0.0),
    ("eval.tokenize", "intl", "moses"),
    ("eval.tune_beams", [1, 3], [1, 0]),
    ("model.pretrained_embeddings", {"tgt": "v.txt"}, {"tgt": ""}),
])
def test_an_option_checks_its_values(name, good, bad):
    found = options.get(name)
    found.validate(good)
    with pytest.raises(checks.Invalid) as caught:
        found.validate(bad)
    assert caught.value.expected == found.check.expected and caught.value.value == bad


@pytest.mark.parametrize("rule", options.RULES, ids=lambda rule: f"{rule.option}-{rule.needs}")
def test_every_rule_between_options_is_blamed_on_its_line(tmp_path, rule):
    """One recipe per rule that breaks it; the error points at the option's line."""
    breaking = {
        "model.pretrained_embeddings-vocab.kind":
            "vocab:\n  kind: sentencepiece\nmodel:\n  pretrained_embeddings: {src: v.txt}\n",
        "model.freeze_embeddings-train.init_from":
            "vocab:\n  kind: words\nmodel:\n  freeze_embeddings: true\n",
        "model.pretrained_embeddings-train.init_from":
            "train:\n  init_from: base\nmodel:\n  pretrained_embeddings: {src: v.txt}\n",
        "train.init_optimizer-train.init_from": "model:\n  cell: lstm\ntrain:\n"
                                                "  init_optimizer: keep\n",
        "train.init_optimizer-model.freeze_embeddings":
            "model:\n  freeze_embeddings: true\ntrain:\n  init_optimizer: keep\n"
            "  init_from: base\n",
        "vocab.from_model-train.init_from":
            "train:\n  init_from: base\nvocab:\n  from_model: other\n",
        "model.tie-vocab.joint": "vocab:\n  joint: false\nmodel:\n  tie: all\n",
        "vocab.sampling_alpha-vocab.kind":
            "model:\n  cell: lstm\nvocab:\n  sampling_alpha: 0.1\n",
        "train.average_best-train.keep_best":
            "train:\n  keep_best: 2\n  epochs: 3\n  average_best: 3\n",
        "data.prepared-vocab.sampling_alpha":
            "vocab: {kind: sentencepiece, sampling_alpha: 0.1}\ndata:\n  corpus: c\n"
            "  prepared: p\n",
        "train.replicas-train.distribution":
            "train:\n  distribution: multi_worker\n  epochs: 3\n  replicas: 2\n"}
    path = tmp_path / "r.yaml"
    path.write_text(breaking[f"{rule.option}-{rule.needs}"])
    with pytest.raises(ConfigError) as caught:
        recipes.load_recipe(path)
    assert caught.value.line == 4 and str(caught.value).startswith(f"{path}:4: {rule.option}")


def test_a_model_description_alone_is_checked_by_its_own_section():
    """model.json holds the model section only: tie: all was checked with the vocabulary."""
    assert recipes.recipe_from_dict({"model": {"tie": "all"}}).model.tie == "all"
    with pytest.raises(ConfigError, match="model.tie: all shares"):
        recipes.recipe_from_dict({"model": {"tie": "all"}, "vocab": {"joint": False}})
    # Freezing needs vectors or a model to start from (train.init_from): not for model.json.
    assert recipes.recipe_from_dict({"model": {"freeze_embeddings": True}}).model.freeze_embeddings
    with pytest.raises(ConfigError, match="model.freeze_embeddings keeps"):
        recipes.recipe_from_dict({"model": {"freeze_embeddings": True}, "train": {}})


def test_data_root_and_paths(monkeypatch, tmp_path):
    monkeypatch.setenv("NMT_DATA", str(tmp_path))
    data = options.DataConfig(corpus="c", src="de", tgt="en", train="tr")
    assert recipes.corpus_path(data, "train", "src") == tmp_path / "c" / "tr.de"
    absolute = options.DataConfig(corpus=str(tmp_path / "x"))
    assert recipes.corpus_path(absolute, "dev", "tgt") == tmp_path / "x" / "dev.en"


@pytest.mark.parametrize("text, fragment, line", [
    ("model:\n  cell: lstm\n  cell: gru\n", "key 'model.cell' appears twice", 3),
    ("model:\n  cell: lstm\ntrain:\n  epochs: 2\nmodel:\n  cell: gru\n",
     "section 'model' appears twice", 5),
    ("decode:\n  alpha: .nan\n", "decode.alpha must be a finite non-negative number", 2),
    ("train:\n  learning_rate: .inf\n", "train.learning_rate must be a finite", 2),
    ("", "empty recipe", None),
])
def test_duplicates_non_finite_and_empty_recipes_are_errors(tmp_path, text, fragment, line):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        recipes.load_recipe(path)
    assert fragment in str(caught.value) and caught.value.line == line


def test_override_errors_name_the_option(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("model:\n  cell: lstm\n")
    with pytest.raises(ConfigError) as caught:
        recipes.load_recipe(path, ["train.epoks=2"])
    assert str(caught.value).startswith("--set: unknown key 'train.epoks' (did you mean 'epochs'?)")


@pytest.mark.parametrize("text, expected", [
    ("model:\n  pretrained_embeddings: {src: a.txt, middle: b.txt}\n",
     r":2: model.pretrained_embeddings must be a mapping of src and/or tgt to file paths"),
    ("model:\n  pretrained_embeddings: glove.txt\n", "must be a mapping"),
    ("vocab:\n  kind: sentencepiece\nmodel:\n  pretrained_embeddings: {tgt: a.txt}\n",
     r":4: model.pretrained_embeddings needs a word vocabulary"),
    ("model:\n  freeze_embeddings: true\n",
     r":2: model.freeze_embeddings keeps pretrained vectors fixed: it needs"),
    ("train:\n  weight_decay: -0.1\n", "train.weight_decay must be a finite non-negative number"),
    ("train:\n  adam_epsilon: 0\n", r"train.adam_epsilon must be in \(0, 1\), got 0"),
    ("train:\n  warmup_steps: -5\n", "train.warmup_steps must be a positive integer, got -5"),
])
def test_pretrained_embeddings_and_optimizer_settings_are_checked(tmp_path, text, expected):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected):
        recipes.load_recipe(path)


def test_a_model_is_built_without_the_initialization_keys():
    model = options.ModelConfig(pretrained_embeddings={"tgt": "v.txt"}, freeze_embeddings=True)
    built = options.architecture(model)
    assert "pretrained_embeddings" not in built and "freeze_embeddings" not in built
    assert built["embedding_dim"] == model.embedding_dim


@pytest.mark.parametrize("old, new", [(True, "mixed_float16"), (False, "float32")])
def test_run_directories_of_earlier_versions_keep_loading(tmp_path, old, new):
    path = tmp_path / "recipe.yaml"  # as earlier versions wrote it: mixed_precision, no precision
    path.write_text(f"train:\n  epochs: 3\n  mixed_precision: {str(old).lower()}\n")
    recipe = recipes.load_recipe(path, written_by_nmt=True)
    assert recipe.train.precision == new and recipe.train.epochs == 3
    assert recipe.decode.precision == "float32"


@pytest.mark.parametrize("verb, flag, name", [
    ("translate", "--beam-size", "decode.beam_size"),
    ("translate", "--alpha", "decode.alpha"),
    ("translate", "--length-penalty", "decode.length_penalty"),
    ("translate", "--batch-size", "decode.batch_size"),
    ("translate", "--precision", "decode.precision"),
    ("evaluate", "--tokenize", "eval.tokenize"),
    ("tune", "--batch-size", "decode.batch_size"),
])
def test_flags_that_override_an_option_show_its_help_and_choices(verb, flag, name):
    from nmt import cli
    parser = cli.build_parser()
    command = parser._subparsers._group_actions[0].choices[verb]
    action = next(a for a in command._actions if flag in a.option_strings)
    found = options.get(name)
    assert action.help == f"{found.help} (default: the recipe's {name})"
    assert action.choices == found.choices


def test_vocab_from_model_may_name_the_init_from_folder_another_way(tmp_path, monkeypatch):
    """The same folder, relative in one key and absolute in the other, is no difference."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "r.yaml"
    path.write_text(f"train:\n  init_from: base\nvocab:\n  from_model: {tmp_path / 'base'}/\n")
    assert recipes.load_recipe(path).train.init_from == "base"
    path.write_text("train:\n  init_from: base\nvocab:\n  from_model: other\n")
    with pytest.raises(ConfigError, match="differs from train.init_from"):
        recipes.load_recipe(path)
