import sys

import pytest

import vocab
from vocab import specials


def test_vocab_package_does_not_import_tensorflow():
    assert "vocab" in sys.modules
    import subprocess
    code = "import vocab, sys; print('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


def test_words_special_ids_limits_and_round_trip(tmp_path):
    lines = ["a b c a", "a b d", "a e"]
    tok = vocab.train("words", lines, size=6)
    assert tok.tokens[:4] == list(specials.SPECIAL_TOKENS)
    assert (specials.PAD, specials.UNK, specials.BOS, specials.EOS) == (0, 1, 2, 3)
    assert tok.tokens[4:] == ["a", "b"]  # most frequent first, size includes the specials
    assert tok.encode("a b zzz") == [4, 5, specials.UNK]
    assert tok.decode([4, 5, specials.EOS, 4]) == "a b"
    assert tok.decode([specials.BOS, 4, specials.PAD]) == "a"
    assert len(vocab.train("words", lines, size=100, min_freq=2)) == 4 + 2
    tok.save(tmp_path / "src")
    again = vocab.load(tmp_path / "src")
    assert again.tokens == tok.tokens and again.encode("b a") == tok.encode("b a")


def test_sentencepiece_fixed_ids_and_detokenization(tmp_path):
    lines = [f"the quick brown fox number {i} jumps over the lazy dog" for i in range(300)]
    tok = vocab.train("sentencepiece", lines, size=60, model_type="bpe")
    assert [tok.processor.id_to_piece(i) for i in range(4)] == list(specials.SPECIAL_TOKENS)
    ids = tok.encode(lines[7])
    assert specials.BOS not in ids and specials.EOS not in ids
    assert tok.decode(ids + [specials.EOS, 9, 9]) == lines[7]
    tok.save(tmp_path / "tgt")
    again = vocab.load(tmp_path / "tgt")
    assert again.encode(lines[3]) == tok.encode(lines[3]) and len(again) == len(tok)


def test_unigram_trains_and_missing_vocab_is_reported(tmp_path):
    lines = [f"sentence {i} with some words" for i in range(200)]
    assert len(vocab.train("sentencepiece", lines, size=40)) <= 40
    with pytest.raises(FileNotFoundError):
        vocab.load(tmp_path / "nothing")
