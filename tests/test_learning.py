"""The whole toolkit learns: a model trained by `nmt train` reverses held-out digit strings."""


def test_reverse_task_is_learned(reverse_run):
    from nmt import evaluate, textio
    from nmt.translate import Translator
    corpus = reverse_run.parent / "reverse"
    sources = list(textio.read_lines(corpus / "test.src"))
    references = list(textio.read_lines(corpus / "test.tgt"))
    train = set(textio.read_lines(corpus / "train.src"))
    held_out = [i for i, s in enumerate(sources) if s not in train]
    assert len(held_out) >= 50
    hypotheses = [t[0].text for t in Translator(reverse_run).translate(sources)]
    bleu = evaluate.bleu([hypotheses[i] for i in held_out], [references[i] for i in held_out],
                         tokenize="none")
    assert bleu.score >= 90, bleu.text
