"""The whole toolkit learns: a model trained by `nmt train` reverses held-out digit strings, in
float32 and in bfloat16 alike."""
import pytest


@pytest.mark.parametrize("run, compute_dtype", [
    ("reverse_run", "float32"),
    pytest.param("reverse_run_bfloat16", "bfloat16", marks=pytest.mark.slow)])
def test_reverse_task_is_learned(request, run, compute_dtype):
    from nmt.evaluation import metrics
    from nmt.files import textio
    from nmt.translation.translate import Translator
    reverse_run = request.getfixturevalue(run)
    corpus = reverse_run.parent / "reverse"
    sources = list(textio.read_lines(corpus / "test.src"))
    references = list(textio.read_lines(corpus / "test.tgt"))
    train = set(textio.read_lines(corpus / "train.src"))
    held_out = [i for i, s in enumerate(sources) if s not in train]
    assert len(held_out) >= 50
    translator = Translator(reverse_run)  # in the recipe's decode.precision
    assert translator.model.decoder.compute_dtype == compute_dtype
    hypotheses = [t[0].text for t in translator.translate(sources)]
    bleu = metrics.bleu([hypotheses[i] for i in held_out], [references[i] for i in held_out],
                         tokenize="none")
    assert bleu.score >= 90, bleu.text


@pytest.mark.slow
def test_reverse_task_is_learned_from_token_batches(tmp_path):
    from tests.helpers import make_reverse_corpus, tiny_recipe_dict, write_recipe

    from nmt.evaluation import metrics
    from nmt.files import textio
    from nmt.training.train import train
    from nmt.translation.translate import Translator
    corpus = make_reverse_corpus(tmp_path / "reverse", train=3000)
    recipe = write_recipe(tmp_path / "recipe", tiny_recipe_dict(
        corpus, model={"embedding_dim": 32, "encoder_units": 32, "decoder_units": 64,
                       "attention_units": 32},
        # about as many target tokens per batch as 32 sentences of 2-8 digits and EOS
        train={"epochs": 5, "learning_rate": 0.01, "patience": 10, "batch_type": "tokens",
               "batch_tokens": 200}))
    result = train(recipe, tmp_path / "run", verbose=0)
    sources = list(textio.read_lines(corpus / "test.src"))
    references = list(textio.read_lines(corpus / "test.tgt"))
    hypotheses = [t[0].text for t in Translator(result.run_dir).translate(sources)]
    bleu = metrics.bleu(hypotheses, references, tokenize="none")
    assert bleu.score >= 90, bleu.text
