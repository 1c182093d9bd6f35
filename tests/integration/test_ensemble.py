"""Ensembles: members' log-probs averaged at each step, each member reading its own source ids."""
import dataclasses
import shutil

import numpy as np
import pytest

from nmt import cli
from nmt.config.options import DecodeConfig
from tests.helpers import random_seq2seq, random_sources
from vocab import PAD


def test_a_model_ensembled_with_itself_gives_its_outputs_and_scores(tf):
    from nmt.search.decoding import Searcher
    from nmt.search.inference import Ensemble
    model = random_seq2seq(7)
    config = DecodeConfig(alpha=1.0)
    alone, twice = Searcher(model), Searcher(Ensemble([model, model]))
    single = random_sources(6, seed=3)
    stacked = np.stack([single, single], axis=1)  # [B, M, S]
    assert twice.greedy(stacked, config) == alone.greedy(single, config)
    beam4 = dataclasses.replace(config, beam_size=4)
    assert twice.beam(stacked, beam4, nbest=4) == alone.beam(single, beam4, nbest=4)
    targets = [h.ids for h in alone.greedy(single, config)]
    (ours, ours_attention), (theirs, theirs_attention) = (
        twice.score(stacked, targets, config), alone.score(single, targets, config))
    assert ours == theirs
    for a, b in zip(ours_attention, theirs_attention):
        np.testing.assert_array_equal(a, b)


def test_two_member_forced_score_is_the_mean_of_the_members(tf):
    from nmt.search.decoding import Searcher
    from nmt.search.inference import Ensemble
    first, second = random_seq2seq(1), random_seq2seq(2, src_vocab=15)  # own source vocabularies
    config = DecodeConfig(beam_size=3, alpha=1.0, length_penalty="gnmt")
    source_a, source_b = random_sources(5, seed=8), random_sources(5, seed=9, vocab=15)
    width = max(source_a.shape[1], source_b.shape[1])
    stacked = np.stack([np.pad(s, ((0, 0), (0, width - s.shape[1])), constant_values=PAD)
                        for s in (source_a, source_b)], axis=1)
    ensemble = Searcher(Ensemble([first, second]))
    found = [hyps[0] for hyps in ensemble.beam(stacked, config)]
    targets = [h.ids for h in found]
    forced, _ = ensemble.score(stacked, targets, config)
    members = [Searcher(m).score(s, targets, config)[0]
               for m, s in ((first, source_a), (second, source_b))]
    for hyp, again, a, b in zip(found, forced, *members):
        assert again.log_prob == pytest.approx((a.log_prob + b.log_prob) / 2, abs=1e-5)
        assert again.score == pytest.approx((a.score + b.score) / 2, abs=1e-5)
        np.testing.assert_allclose(again.token_log_probs,
                                   (np.array(a.token_log_probs) + b.token_log_probs) / 2,
                                   atol=1e-5)
        # The ensemble's search scores its hypotheses as forced scoring does.
        assert hyp.score == pytest.approx(again.score, abs=1e-5)


@pytest.mark.slow
def test_translator_and_cli_ensembles(reverse_run, tmp_path, capsys):
    from nmt.translation.translate import Translator
    lines = ["3 1 4 1 5", "2 7", "", "9 9 8"]
    alone = Translator(reverse_run, beam_size=3).translate(lines, nbest=2)
    twice = Translator([reverse_run, reverse_run], beam_size=3).translate(lines, nbest=2)
    assert twice == alone
    # A member whose target ids mean other words: a one-line error naming it.
    other = tmp_path / "other"
    shutil.copytree(reverse_run, other)
    vocab = other / "vocab" / "tgt.words.txt"
    tokens = vocab.read_text().splitlines()
    tokens[4], tokens[5] = tokens[5], tokens[4]
    vocab.write_text("".join(t + "\n" for t in tokens))
    (other / "manifest.json").unlink()  # another model, not a damaged one
    source = tmp_path / "in.txt"
    source.write_text("1 2\n")
    code = cli.main(["translate", "--model", str(reverse_run), "--model", str(other), "-i",
                     str(source)])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith(f"nmt: error: {other}: ") and err.count("\n") == 1
    assert "target vocabulary differs" in err
