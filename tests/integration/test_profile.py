"""`nmt bench profile`: where training steps and a search spend their time, by the model's
parts, from TensorFlow's profiler."""
import pytest

from nmt.system import profiling


def test_profile_splits_training_and_search_time_by_part(tiny_recipe):
    from nmt import bench
    # Greedy search: its graph traces faster than a beam's.
    train, translate = bench.bench_profile(tiny_recipe, steps=3, warmup=1, threads=1,
                                           sentences=8, beam_size=1)
    for result in (train, translate):
        assert set(result["shares"]) == set(profiling.NAMES)
        assert sum(result["shares"].values()) == pytest.approx(1.0, abs=0.01)
        assert 0 < result["cpu_seconds"] and result["ms"]["python_dispatch_other"] >= 0
        # Each part's ops are found under its name scope.
        for part in ("encoder", "decoder_loop", "attention", "output_and_loss", "tf_executor"):
            assert result["ms"][part] > 0, (result["what"], part)
    assert train["ms"]["optimizer"] > 0 and train["ms"]["search"] == 0
    assert translate["ms"]["search"] > 0 and translate["ms"]["optimizer"] == 0


def test_ops_are_grouped_by_their_scopes_first_part_first():
    assert profiling.group_of("gradient_tape/seq2_seq_1/decoder_1/while/attention_1/add:AddV2") \
        == "attention"
    assert profiling.group_of("search/while/body/_5/decoder/output/output/MatMul:_MklMatMul") \
        == "output_and_loss"
    assert profiling.group_of("search/while/TopKV2:TopKV2") == "search"
    assert profiling.group_of("IteratorGetNext:IteratorGetNext") == "input_pipeline"
    assert profiling.group_of("seq2_seq_1/bridge/Tanh:Tanh") == profiling.OTHER_OPS
    assert profiling.group_of("ExecutorState::Process") is None
    assert profiling.group_of("EagerLocalExecute: MatMul") is None
