import math
import warnings

import numpy as np
import pytest
from tests.helpers import A, B, C, ScriptedModel
from vocab import BOS, EOS

from nmt.config.options import DecodeConfig
from nmt.evaluation import analysis

# Greedy takes A (0.6) then EOS (0.55): p = 0.33. The path B, EOS has p = 0.4: greedy misses it.
TRAP = {BOS: {A: 0.6, B: 0.4}, A: {EOS: 0.55, C: 0.45}, B: {EOS: 1.0}, C: {EOS: 1.0}}
SOURCE = [[A, B, EOS]]


def scores(model, reference, beam):
    from nmt.search.decoding import Searcher, score_all, search_all
    searcher, decode = Searcher(model), DecodeConfig(beam_size=beam, alpha=0.0, batch_size=8)
    output = search_all(searcher, SOURCE, decode)[0][0].ids
    (ref, hyp), _ = score_all(searcher, SOURCE * 2, [reference, output], decode)
    return output, ref.score, hyp.score


def test_reference_outscoring_the_output_is_a_search_error(tf):
    output, ref_score, hyp_score = scores(ScriptedModel(TRAP), [B], beam=1)
    assert output == [A]
    assert ref_score == pytest.approx(math.log(0.4), abs=1e-5)
    assert hyp_score == pytest.approx(math.log(0.6 * 0.55), abs=1e-5)
    assert analysis.classify(ref_score, hyp_score, output == [B], oov=False) == "search_error"
    # A wider beam finds the reference: the search error is gone.
    output, ref_score, hyp_score = scores(ScriptedModel(TRAP), [B], beam=2)
    assert output == [B] and analysis.classify(ref_score, hyp_score, True, False) == "correct"


def test_output_outscoring_the_reference_is_a_model_error(tf):
    output, ref_score, hyp_score = scores(ScriptedModel(TRAP), [C], beam=2)
    assert output == [B] and ref_score < hyp_score
    assert analysis.classify(ref_score, hyp_score, False, oov=False) == "model_error"
    assert analysis.classify(0.0, -1.0, False, oov=True) == "oov"


def test_japanese_heatmap_renders(tmp_path):
    from nmt.evaluation import plotting
    weights = np.full((3, 4), 0.25)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        drawn = plotting.attention_heatmap(weights, ["猫", "が", "寝る", "</s>"],
                                           ["the", "cat", "</s>"], tmp_path / "ja.png")
    missing = [w for w in caught if "missing from font" in str(w.message)]
    assert (tmp_path / "ja.png").stat().st_size > 1000
    if plotting.cjk_family():
        assert drawn and not missing
    else:  # the clear fallback: positions instead of boxes, and the caller is told
        assert not drawn and not missing
