"""The whole toolkit learns: a model trained by `nmt train` reverses held-out digit strings, in
float32 and in bfloat16 alike."""
import pytest


@pytest.mark.parametrize("run, compute_dtype", [
    ("reverse_run", "float32"),
    pytest.param("reverse_run_bfloat16", "bfloat16", marks=pytest.mark.slow)])
def test_reverse_task_is_learned(request, run, compute_dtype):
    from nmt import evaluate, textio
    from nmt.translate import Translator
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
    bleu = evaluate.bleu([hypotheses[i] for i in held_out], [references[i] for i in held_out],
                         tokenize="none")
    assert bleu.score >= 90, bleu.text
