import numpy as np
import pytest


@pytest.fixture
def layers(tf):
    import keras

    from nmt.model.encoder import Encoder
    keras.utils.set_random_seed(3)
    return Encoder


@pytest.mark.parametrize("cell, num_layers", [("lstm", 1), ("lstm", 3), ("gru", 2)])
def test_encoder_padding_changes_nothing(layers, cell, num_layers):
    Encoder = layers
    encoder = Encoder(30, 8, 5, num_layers=num_layers, cell=cell, dropout=0.5)
    short = np.array([[4, 5, 6, 3]], np.int32)
    padded = np.array([[4, 5, 6, 3, 0, 0, 0]], np.int32)
    memory, final, mask = encoder(short)
    memory_p, final_p, mask_p = encoder(padded)
    assert memory.shape == (1, 4, 10) and memory_p.shape == (1, 7, 10)
    np.testing.assert_allclose(memory_p[:, :4], memory, atol=1e-6)
    assert np.all(np.asarray(memory_p[:, 4:]) == 0.0)
    assert len(final) == (2 if cell == "lstm" else 1) and final[0].shape == (1, 10)
    for a, b in zip(final, final_p):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert np.asarray(mask_p).tolist() == [[True] * 4 + [False] * 3]


def test_encoder_config_round_trip(layers):
    Encoder = layers
    encoder = Encoder(30, 8, 5, num_layers=2, cell="gru", dropout=0.1)
    clone = Encoder.from_config(encoder.get_config())
    assert clone.get_config() == encoder.get_config()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_encoder_rnns_meet_the_cudnn_conditions(layers, cell):
    """Keras runs an LSTM/GRU with cuDNN on a GPU only with these settings (and right padding,
    which the data pipeline produces); a change here would silently fall back to the slow loop."""
    import keras
    Encoder = layers
    encoder = Encoder(30, 8, 5, num_layers=2, cell=cell, dropout=0.3)
    for bidirectional in encoder.rnns:
        for rnn in (bidirectional.forward_layer, bidirectional.backward_layer):
            assert rnn.use_cudnn == "auto" and not rnn.unroll
            assert rnn.cell.activation is keras.activations.tanh
            assert rnn.cell.recurrent_activation is keras.activations.sigmoid
            assert rnn.cell.use_bias and rnn.cell.recurrent_dropout == 0
            if cell == "gru":
                assert rnn.cell.reset_after


def _masked_steps(seed=0, batch=6, steps=9, width=8, left=False):
    """Random inputs [B, S, W] and a bool mask of varied lengths, padded right (or left)."""
    rng = np.random.default_rng(seed)
    inputs = rng.normal(size=(batch, steps, width)).astype("float32")
    lengths = np.array([steps, 1, 4, steps - 1, 2, 7])[:batch]
    mask = np.arange(steps)[None, :] < lengths[:, None]
    return inputs, mask[:, ::-1].copy() if left else mask


def _lstm_pair(keras, units=5, width=8, **kwargs):
    """A ProjectedLSTM and a Keras LSTM with the same (enlarged: saturated gates too) weights."""
    from nmt.model.encoder import ProjectedLSTM
    ours, kerass = ProjectedLSTM(units, **kwargs), keras.layers.LSTM(units, **kwargs)
    for layer in (ours, kerass):
        layer.build((None, None, width))
    ours.set_weights([w * 3 for w in kerass.get_weights()])
    kerass.set_weights(ours.get_weights())
    return ours, kerass


@pytest.mark.parametrize("batch", [1, 6])
@pytest.mark.parametrize("wrap", ["bidirectional", "forward", "backward"])
def test_projected_lstm_is_kerass_lstm_in_float32(layers, tf, wrap, batch):
    """Same weights: the same outputs and final states to the bit as Keras's LSTM, with padding,
    in either direction (translation output must not change; with TensorFlow's oneDNN
    products, its default on x86); gradients equal to rounding (the input kernel's sums over
    steps run in one product)."""
    import keras
    inputs, mask = _masked_steps(batch=batch)
    ours, kerass = _lstm_pair(keras, return_sequences=True, return_state=True,
                              go_backwards=wrap == "backward")
    if wrap == "bidirectional":
        ours, kerass = keras.layers.Bidirectional(ours), keras.layers.Bidirectional(kerass)
        for layer in (ours, kerass):
            layer.build((None, None, 8))
        ours.set_weights(kerass.get_weights())

    def run(layer):
        x = tf.constant(inputs)
        with tf.GradientTape() as tape:
            tape.watch(x)
            outputs = layer(x, mask=tf.constant(mask))
            loss = sum(tf.reduce_sum(tf.sin(part)) for part in outputs)
        return outputs, tape.gradient(loss, [x, *layer.trainable_weights])
    (got, got_grads), (want, want_grads) = run(ours), run(kerass)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for a, b in zip(got_grads, want_grads):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("return_sequences", [True, False])
def test_projected_lstm_keeps_kerass_masked_outputs(layers, tf, return_sequences):
    """Outside Bidirectional (zero_output_for_mask off), with an initial state, left padding and
    an int mask: a masked step repeats the last output, zero before the first, as Keras's."""
    import keras
    inputs, mask = _masked_steps(left=True)
    ours, kerass = _lstm_pair(keras, return_sequences=return_sequences, return_state=True)
    rng = np.random.default_rng(2)
    state = [rng.normal(size=(6, 5)).astype("float32") for _ in range(2)]
    got, want = (layer(inputs, mask=mask.astype("int32"), initial_state=state)
                 for layer in (ours, kerass))
    for a, b in zip(got, want):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_projected_lstm_keeps_the_cell_state_in_float32_under_bfloat16(layers, tf):
    """Under mixed_bfloat16 the products run in bfloat16 and c in float32: c grows by 0.003 a step
    (input and forget gates open, g = 0.003), which a bfloat16 c (spacing 0.0078 at 1) would
    lose once past 0.4; after 400 steps h = tanh(1.2) to bfloat16's rounding."""
    from nmt.model.encoder import ProjectedLSTM
    layer = ProjectedLSTM(2, dtype="mixed_bfloat16")
    layer.build((None, None, 3))
    kernel, recurrent, bias = (np.zeros(w.shape, "float32") for w in layer.get_weights())
    bias.reshape(4, 2)[:] = [[30.0], [30.0], [np.arctanh(0.003)], [30.0]]  # i, f, g, o
    layer.set_weights([kernel, recurrent, bias])
    h = layer(np.zeros((1, 400, 3), "float32"))
    assert h.dtype == "bfloat16"
    np.testing.assert_allclose(np.asarray(tf.cast(h, "float32")), np.tanh(1.2), rtol=0.01)


def test_projected_lstm_in_bfloat16_follows_float32(layers, tf):
    """Under mixed_bfloat16, over 60 steps of random weights, the outputs stay within bfloat16's
    rounding of float32's (Keras's LSTM under mixed_bfloat16, gates and c in bfloat16: mean
    error 7e-4 here)."""
    from nmt.model.encoder import ProjectedLSTM
    rng = np.random.default_rng(1)
    inputs = rng.normal(size=(4, 60, 8)).astype("float32")
    mask = np.ones((4, 60), bool)
    full = ProjectedLSTM(16, return_sequences=True)
    half = ProjectedLSTM(16, return_sequences=True, dtype="mixed_bfloat16")
    for layer in (full, half):
        layer.build((None, None, 8))
    half.set_weights(full.get_weights())
    want = np.asarray(full(inputs, mask=mask))
    got = half(inputs, mask=mask)
    assert got.dtype == "bfloat16"
    error = np.abs(np.asarray(tf.cast(got, "float32")) - want)
    assert error.max() < 0.02 and error.mean() < 5e-4


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_encoder_in_bfloat16_keeps_float32_recurrent_weights(layers, cell):
    """A model built for bfloat16 translation (bfloat16 variables) still builds its recurrent
    layers (the orthogonal initializer's QR has no bfloat16 kernel) and gives bfloat16 memory;
    the LSTMs compute in bfloat16, the GRUs in float32."""
    from nmt.system.precision import dtype_policy
    Encoder = layers
    with dtype_policy("bfloat16"):  # as `nmt translate --precision bfloat16` builds the model
        encoder = Encoder(30, 8, 5, num_layers=2, cell=cell)
        memory, final, _ = encoder(np.array([[4, 5, 6, 3]], np.int32))
    assert memory.dtype == "bfloat16" and final[0].dtype == "bfloat16"
    assert {w.dtype for rnn in encoder.rnns for w in rnn.weights} == {"float32"}
    assert {rnn.forward_layer.compute_dtype for rnn in encoder.rnns} == \
        {"bfloat16" if cell == "lstm" else "float32"}
    assert encoder.embedding.embeddings.dtype == "bfloat16"


def test_no_loop_of_a_bfloat16_training_step_casts_a_weight(layers, tf):
    """Under mixed_bfloat16 the weights are cast to bfloat16 once per step, outside the
    recurrences: a cast inside a while loop (a variable read there) runs at every time step, and
    costs about what the step's product does. Weights are the casts of fully known shape."""
    from nmt.config.options import ModelConfig
    from nmt.model.seq2seq import Seq2Seq
    from nmt.system.precision import dtype_policy
    from nmt.training.train_step import token_losses
    with dtype_policy("mixed_bfloat16"):
        model = Seq2Seq(ModelConfig(embedding_dim=8, encoder_units=6, decoder_units=6,
                                    attention_units=5, encoder_layers=2), 30, 20)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)] * 3)
    def gradients(source, target_in, target_out):
        with tf.GradientTape() as tape:
            logits = model({"source": source, "target_in": target_in}, training=True)
            loss = token_losses(target_out, logits, 0.1)[0]
        return tape.gradient(loss, model.trainable_variables)

    graph = gradients.get_concrete_function().graph
    loops, in_loops = [], []

    def visit(graph, in_loop):
        for op in graph.get_operations():
            if in_loop and op.type == "Cast" and op.inputs[0].shape.is_fully_defined():
                in_loops.append(op.name)
            for attr in ("body", "then_branch", "else_branch"):
                try:
                    function = graph._functions.get(op.get_attr(attr).name)
                except ValueError:
                    continue
                loops.append(attr == "body")
                visit(function.graph, in_loop or attr == "body")

    visit(graph, False)
    assert sum(loops) >= 4  # the encoder's, the decoder's, and their gradients' loops
    assert in_loops == []


@pytest.mark.parametrize("cell, dropout, traced", [("lstm", 0.0, False), ("lstm", 0.3, False),
                                                   ("lstm", 0.3, True), ("gru", 0.3, False)])
def test_gradients_taken_after_the_decoder_loop_equal_its_own(layers, tf, cell, dropout, traced):
    """Training takes two gradients after the decoder's loop, each as one product of all steps
    (`DeferredGradient`): the LSTM's recurrent kernel's and the attended memory's. Every weight's
    gradient is the one TensorFlow's step-by-step loop gradient gives, with padded sources and
    dropout (same masks: same seeds), eager and traced inside an outer while loop (as
    `train.accumulate` runs the model)."""
    import keras

    from nmt.config.options import ModelConfig
    from nmt.model.seq2seq import Seq2Seq
    from nmt.training.train_step import token_losses
    config = ModelConfig(embedding_dim=8, encoder_units=6, decoder_units=7, attention_units=5,
                         encoder_layers=2, cell=cell, dropout=dropout)
    models = []
    for deferred in (True, False):
        keras.utils.set_random_seed(4)
        model = Seq2Seq(config, 30, 20)
        model.decoder.deferred_gradients = deferred
        models.append(model)
    # Larger weights than the initial ones, so that the attention moves from step to step (a
    # step's weights paired with another step's gradient must show).
    for weight in models[0].trainable_variables:
        weight.assign(3 * weight)
    models[1].set_weights(models[0].get_weights())
    rng = np.random.default_rng(5)
    source = rng.integers(1, 30, size=(4, 6)).astype("int32")
    source[1, 4:] = 0
    target = rng.integers(1, 20, size=(4, 9)).astype("int32")
    target[2, 5:] = 0
    attention = models[0].teacher_forced(source, target[:, :-1])[1].numpy()
    assert np.ptp(attention, axis=1).max() > 0.1

    def gradients(model):
        with tf.GradientTape() as tape:
            logits = model({"source": source, "target_in": target[:, :-1]}, training=True)
            loss = token_losses(target[:, 1:], logits, 0.1)[0]
        return [tf.reshape(tf.convert_to_tensor(g), v.shape)
                for g, v in zip(tape.gradient(loss, model.trainable_variables),
                                model.trainable_variables)]

    def in_a_loop(model):
        return tf.while_loop(lambda i, _: i < 1, lambda i, _: (i + 1, gradients(model)),
                             (0, [tf.zeros_like(v) for v in model.trainable_variables]))[1]

    found = [[g.numpy() for g in (tf.function(in_a_loop)(model) if traced else gradients(model))]
             for model in models]
    paths = [v.path for v in models[0].trainable_variables]
    kernel = found[0][paths.index(models[0].decoder.cell.recurrent_kernel.path)]
    assert np.abs(kernel).sum() > 1e-3
    for path, ours, loops in zip(paths, *found):
        np.testing.assert_allclose(ours, loops, rtol=1e-4, atol=1e-6, err_msg=path)


@pytest.mark.parametrize("setting, value", [("dropout", 0.1), ("recurrent_dropout", 0.1),
                                            ("activation", "relu"),
                                            ("recurrent_activation", "hard_sigmoid"),
                                            ("use_bias", False), ("implementation", 1)])
def test_projected_lstm_refuses_what_its_loop_does_not_run(layers, setting, value):
    from nmt.model.encoder import ProjectedLSTM
    with pytest.raises(ValueError, match="no dropout|default LSTM cell only"):
        ProjectedLSTM(4, **{setting: value})


def test_dropout_only_in_training(layers):
    Encoder = layers
    encoder = Encoder(30, 8, 5, dropout=0.5)
    source = np.array([[4, 5, 6, 7, 8, 3]], np.int32)
    first, second = encoder(source)[0], encoder(source)[0]
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(encoder(source, training=True)[0], first)


@pytest.mark.parametrize("option, registry", [("model.attention", "attention.ATTENTIONS"),
                                              ("model.cell", "cells.CELLS"),
                                              ("model.bridge", "bridges.BRIDGES"),
                                              ("model.tie", "output.OUTPUTS")])
def test_every_model_option_choice_names_a_registered_part(option, registry):
    """A model part's option lists exactly the names its registry holds (the option is the one
    place a recipe reads them from)."""
    import importlib

    from nmt.config import options
    module, name = registry.split(".")
    parts = getattr(importlib.import_module(f"nmt.model.{module}"), name)
    assert options.get(option).choices == tuple(parts)


@pytest.mark.parametrize("name", ["additive", "multiplicative"])
def test_attention_sums_to_one_and_ignores_padding(layers, tf, name):
    from nmt.config.options import ModelConfig
    from nmt.model.attention import ATTENTIONS, Attention
    attention = ATTENTIONS[name].for_model(ModelConfig(attention_units=6))
    assert isinstance(attention, Attention)
    attention.build((None, 4), values_shape=(None, None, 10))
    rng = np.random.default_rng(0)
    values = rng.normal(size=(2, 5, 10)).astype("float32")
    mask = np.array([[True, True, True, False, False], [True] * 5])
    keys = attention.project_keys(values)
    query = rng.normal(size=(2, 4)).astype("float32")
    context, weights = attention(query, keys, values, mask)
    weights = np.asarray(weights)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-6)
    assert np.all(weights[0, 3:] == 0.0) and np.all(weights[1] > 0)
    np.testing.assert_allclose(context, np.einsum("bs,bsm->bm", weights, values), rtol=1e-5)
    # The cast-once weights of a step give the same result as the layer's own.
    np.testing.assert_array_equal(
        attention(query, keys, values, mask, attention.step_weights())[1], weights)
    # The padded positions' values do not matter at all.
    values[0, 3:] = 1000.0
    context2, _ = attention(query, attention.project_keys(values), values, mask)
    np.testing.assert_allclose(np.asarray(context2)[0], np.asarray(context)[0], rtol=1e-6)
    clone = type(attention).from_config(attention.get_config())
    assert clone.get_config() == attention.get_config()


@pytest.mark.parametrize("policy", ["float32", "bfloat16"])
@pytest.mark.parametrize("name", ["additive", "multiplicative"])
def test_queries_sharing_a_memory_row_attend_as_with_their_own_copy(layers, tf, name, policy):
    """Beam search passes one memory row per sentence for its R hypotheses (R consecutive query
    rows): the same context and weights as each query with its own copy of the row."""
    from nmt.config.options import ModelConfig
    from nmt.model.attention import ATTENTIONS
    from nmt.system import precision
    with precision.dtype_policy(policy):
        attention = ATTENTIONS[name].for_model(ModelConfig(attention_units=6))
        attention.build((None, 4), values_shape=(None, None, 10))
    rng = np.random.default_rng(2)
    values = tf.cast(rng.normal(size=(2, 5, 10)).astype("float32"), policy)
    mask = np.array([[True, True, True, False, False], [True] * 5])
    query = tf.cast(rng.normal(size=(2 * 3, 4)).astype("float32"), policy)  # 3 per memory row
    shared = attention(query, attention.project_keys(values), values, mask, rows_per_memory=3)
    copied = tf.repeat(values, 3, axis=0)
    own = attention(query, attention.project_keys(copied), copied, np.repeat(mask, 3, axis=0))
    for found, expected in zip(shared, own):
        assert found.shape == expected.shape == (6, expected.shape[1])
        np.testing.assert_allclose(tf.cast(found, "float32"), tf.cast(expected, "float32"),
                                   rtol=1e-6, atol=1e-7)
    assert not np.allclose(shared[1][0], shared[1][1])  # each query has its own weights


def test_multiplicative_attention_is_luongs_general_score(layers, tf):
    """score(s, h) = s^T W h: the weights are the softmax of these scores."""
    from nmt.model.attention import MultiplicativeAttention
    attention = MultiplicativeAttention()
    attention.build((None, 4), values_shape=(None, None, 10))
    rng = np.random.default_rng(1)
    values = rng.normal(size=(2, 5, 10)).astype("float32")
    query = rng.normal(size=(2, 4)).astype("float32")
    _, weights = attention(query, attention.project_keys(values), values, np.ones((2, 5), bool))
    scores = np.einsum("bq,bsq->bs", query, values @ attention.kernel.numpy())
    expected = np.exp(scores - scores.max(axis=1, keepdims=True))
    np.testing.assert_allclose(weights, expected / expected.sum(axis=1, keepdims=True), rtol=1e-5)
