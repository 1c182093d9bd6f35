import numpy as np
import pytest

from nmt.config.options import ModelConfig


def tiny_model(cell="lstm", layers=1, dropout=0.0, seed=0, bridge="per_state"):
    import keras

    from nmt.model.seq2seq import Seq2Seq
    keras.utils.set_random_seed(seed)
    config = ModelConfig(cell=cell, embedding_dim=8, encoder_units=6, encoder_layers=layers,
                         decoder_units=10, attention_units=7, dropout=dropout, bridge=bridge)
    return Seq2Seq(config, 20, 15)


SOURCE = np.array([[4, 5, 6, 7, 3], [8, 9, 3, 0, 0]], np.int32)
TARGET_IN = np.array([[2, 5, 6, 7], [2, 9, 4, 0]], np.int32)


@pytest.mark.parametrize("cell, layers", [("lstm", 1), ("lstm", 2), ("gru", 2)])
def test_teacher_forced_call_equals_step_by_step(tf, cell, layers):
    model = tiny_model(cell, layers, dropout=0.3)
    logits = model({"source": SOURCE, "target_in": TARGET_IN})
    assert logits.shape == (2, 4, 15)
    memory, state = model.encode(SOURCE)
    tables = model.step_tables()
    steps = []
    for t in range(TARGET_IN.shape[1]):
        log_probs, state, weights = model.decode_step(TARGET_IN[:, t], state, memory, tables)
        steps.append(np.asarray(log_probs))
        assert weights.shape == (2, 5)
    np.testing.assert_allclose(np.stack(steps, axis=1), tf.nn.log_softmax(logits), atol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_the_bridge_sets_the_first_decoder_state(tf, tmp_path, cell):
    from nmt.model.bridges import BRIDGES
    from nmt.model.seq2seq import Seq2Seq
    _, final, _ = tiny_model(cell).encoder(SOURCE)
    states = {}
    for bridge in ("per_state", "hidden", "zero"):
        model = tiny_model(cell, bridge=bridge)
        _, state = model.encode(SOURCE)
        states[bridge] = [np.asarray(part) for part in state[:-1]]  # the last part is the feed
        assert len(model.decoder.bridges) == {"per_state": len(final), "hidden": 1,
                                              "zero": 0}[bridge]
        clone = Seq2Seq.from_config(model.get_config())
        assert isinstance(clone.decoder.bridge, BRIDGES[bridge])
        model.save_weights(tmp_path / "m.weights.h5")
        clone.load_weights(tmp_path / "m.weights.h5")
        inputs = {"source": SOURCE, "target_in": TARGET_IN}
        np.testing.assert_array_equal(clone(inputs), model(inputs))
    # JoeyNMT's bridge: h0 = c0 = tanh(W h + b) of the encoder's final h
    hidden = tiny_model(cell, bridge="hidden")
    expected = np.asarray(hidden.decoder.bridges[0](hidden.encoder(SOURCE)[1][0]))
    for part in states["hidden"]:
        np.testing.assert_allclose(part, expected, atol=1e-6)
    if cell == "lstm":
        assert not np.allclose(*states["per_state"])  # c0 from the encoder's c, by its own layer
    assert all(np.all(part == 0) for part in states["zero"])
    assert not np.allclose(states["per_state"][0], 0)


def test_teacher_forced_attention_matches_steps(tf):
    model = tiny_model()
    _, weights = model.teacher_forced(SOURCE, TARGET_IN)
    memory, state = model.encode(SOURCE)
    tables = model.step_tables()
    for t in range(TARGET_IN.shape[1]):
        _, state, step_weights = model.decode_step(TARGET_IN[:, t], state, memory, tables)
        np.testing.assert_allclose(weights[:, t], step_weights, atol=1e-6)
    assert np.all(np.asarray(weights)[1, :, 3:] == 0.0)


def test_training_mode_uses_dropout(tf):
    model = tiny_model(dropout=0.5)
    inputs = {"source": SOURCE, "target_in": TARGET_IN}
    np.testing.assert_array_equal(model(inputs), model(inputs))
    assert not np.allclose(model(inputs, training=True), model(inputs))


def test_weights_round_trip_and_config_rebuild(tf, tmp_path):
    from nmt.model.seq2seq import Seq2Seq
    model = tiny_model("gru", 2, seed=1)
    inputs = {"source": SOURCE, "target_in": TARGET_IN}
    path = tmp_path / "m.weights.h5"
    model.save_weights(path)
    clone = Seq2Seq.from_config(model.get_config())
    assert not np.allclose(clone(inputs), model(inputs))
    clone.load_weights(path)
    np.testing.assert_array_equal(clone(inputs), model(inputs))
    config = ModelConfig(cell="gru", embedding_dim=8, encoder_units=6, encoder_layers=2,
                         decoder_units=10, attention_units=7, dropout=0.0)
    assert Seq2Seq(config, 20, 15).count_params() == model.count_params()


def test_padding_the_source_changes_no_logit(tf):
    model = tiny_model(layers=2)
    padded = np.pad(SOURCE, ((0, 0), (0, 3)))
    np.testing.assert_allclose(model({"source": padded, "target_in": TARGET_IN}),
                               model({"source": SOURCE, "target_in": TARGET_IN}), atol=1e-5)


def test_a_gru_model_builds_for_bfloat16_translation(tf):
    """Orthogonal's QR has no bfloat16 kernel: the GRU step draws its recurrent kernel in float32
    and casts it, so `decode.precision: bfloat16` loads a GRU model (it raised before)."""
    from nmt.system import precision
    with precision.dtype_policy("bfloat16"):
        model = tiny_model("gru")
    kernel = model.decoder.cell.recurrent_kernel
    assert kernel.dtype == "bfloat16"
    reference = tiny_model("gru").decoder.cell.recurrent_kernel.numpy()
    np.testing.assert_allclose(tf.cast(kernel, "float32").numpy(), reference, atol=1e-2)
    logits = model({"source": SOURCE, "target_in": TARGET_IN})
    assert logits.dtype == "float32" and np.all(np.isfinite(logits))


def test_the_tied_output_multiplies_in_the_compute_dtype(tf):
    """Under mixed_bfloat16 the tied output layer's product, the model's largest, runs in
    bfloat16 as the untied layer's does; the logits come out float32, near float32's."""
    import keras

    from nmt.model.seq2seq import Seq2Seq
    from nmt.system import precision
    config = ModelConfig(tie="decoder", embedding_dim=8, encoder_units=6, decoder_units=10,
                         attention_units=7)
    reference = Seq2Seq(config, 20, 15)
    with precision.dtype_policy("mixed_bfloat16"):
        model = Seq2Seq(config, 20, 15)
    model.set_weights(reference.get_weights())
    attentional = keras.random.normal((3, 10), seed=1)
    logits = tf.function(lambda a: model.decoder.logits(tf.cast(a, "bfloat16")))
    graph = logits.get_concrete_function(attentional).graph
    # The projection to the embeddings' width and the product with them.
    assert [op.get_attr("T") for op in graph.get_operations() if op.type == "MatMul"] == \
        [tf.bfloat16] * 2
    found = logits(attentional)
    assert found.dtype == "float32"
    np.testing.assert_allclose(found, reference.decoder.logits(attentional), atol=0.02)
