"""The training objective and the optimizer against Keras's own implementations."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_token_losses_equal_keras_crossentropy_with_label_smoothing(tf):
    import keras

    from nmt.training.train_step import token_losses
    rng = np.random.default_rng(0)
    logits = tf.constant(rng.normal(size=(3, 4, 9)) * 3, tf.float32)
    targets = tf.constant([[5, 6, 3, 0], [7, 3, 0, 0], [4, 4, 8, 3]], tf.int32)
    mask = (targets.numpy() != 0).astype("float32")
    for smoothing in (0.0, 0.1, 0.3):
        loss_sum, nll_sum, count = token_losses(targets, logits, smoothing)
        keras_loss = keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=smoothing, reduction=None)(
            tf.one_hot(targets, 9), logits)
        nll = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)(
            targets, logits)
        assert float(count) == mask.sum() == 9
        assert float(loss_sum) == pytest.approx(float(np.sum(keras_loss * mask)), rel=1e-5)
        assert float(nll_sum) == pytest.approx(float(np.sum(nll * mask)), rel=1e-5)


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_the_written_out_gradient_equals_the_formulas(tf, smoothing):
    """`smoothed_cross_entropy`'s gradient against TensorFlow's gradient of the formula it
    implements (dense smoothed labels), for the loss, the NLL and a mix of both, eager and traced;
    PAD rows get none."""
    from nmt.training.train_step import token_losses
    rng = np.random.default_rng(3)
    logits = tf.constant(rng.normal(size=(3, 4, 9)) * 3, tf.float32)
    targets = tf.constant([[5, 6, 3, 0], [7, 3, 0, 0], [4, 4, 8, 3]], tf.int32)
    mask = tf.cast(targets != 0, tf.float32)[..., None]

    def reference(logits):
        labels = tf.one_hot(targets, 9) * (1 - smoothing) + smoothing / 9
        loss = tf.nn.softmax_cross_entropy_with_logits(labels, logits)[..., None] * mask
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits)[..., None] * mask
        return tf.reduce_sum(loss), tf.reduce_sum(nll)

    def gradients(losses):
        found = []
        for weights in ((1.0, 0.0), (0.0, 1.0), (0.7, 2.0)):
            with tf.GradientTape() as tape:
                tape.watch(logits)
                loss, nll = losses(logits)[:2]
                # The training step differentiates the loss alone: the NLL then gets no gradient.
                objective = weights[0] * loss + weights[1] * nll if weights[1] else loss
            found.append(tape.gradient(objective, logits).numpy())
        return found

    ours = gradients(lambda z: token_losses(targets, z, smoothing))
    traced = gradients(tf.function(lambda z: token_losses(targets, z, smoothing)))
    for mine, mine_traced, expected in zip(ours, traced, gradients(reference)):
        np.testing.assert_allclose(mine, expected, atol=1e-6)
        np.testing.assert_allclose(mine_traced, expected, atol=1e-6)
        assert np.abs(mine).sum() > 0.1
        assert not mine[1, 2:].any()  # PAD positions


def test_fused_adam_equals_keras_adam(tf):
    import keras

    from nmt.training.optimizers import FusedAdam
    rng = np.random.default_rng(1)
    start = [rng.normal(size=(5, 3)).astype("float32"), rng.normal(size=(3,)).astype("float32")]
    gradients = [[tf.constant(rng.normal(size=w.shape) * 4, tf.float32) for w in start]
                 for _ in range(5)]
    results = []
    for optimizer in (FusedAdam(0.01, global_clipnorm=1.0),
                      keras.optimizers.Adam(0.01, global_clipnorm=1.0)):
        variables = [keras.Variable(w) for w in start]
        for step in gradients:
            optimizer.apply_gradients(zip(step, variables))
        results.append([v.numpy() for v in variables])
    for fused, reference, initial in zip(*results, start):
        assert not np.allclose(fused, initial)
        np.testing.assert_allclose(fused, reference, atol=1e-6)


def test_a_token_budget_weighs_every_token_the_same(tf):
    """Per-batch mean: a batch and the same batch twice move the weights equally far. With a token
    budget the loss is a sum over tokens / budget: the doubled batch moves them twice as far."""
    import keras

    from nmt.config.options import ModelConfig
    from nmt.model.seq2seq import Seq2Seq
    from nmt.training.train_step import Seq2SeqTrainer
    rng = np.random.default_rng(2)
    source = rng.integers(4, 20, size=(3, 5)).astype("int32")
    target = np.concatenate([np.full((3, 1), 2), rng.integers(4, 20, size=(3, 4)),
                             np.full((3, 1), 3)], axis=1).astype("int32")
    batch = ({"source": source, "target_in": target[:, :-1]}, target[:, 1:])
    doubled = tuple(np.concatenate([x, x]) if not isinstance(x, dict) else
                    {k: np.concatenate([v, v]) for k, v in x.items()} for x in batch)
    config = ModelConfig(embedding_dim=8, encoder_units=8, encoder_layers=1, decoder_units=16,
                         attention_units=8, dropout=0.0)
    for budget, ratio in ((0, 1.0), (40, 2.0)):
        moves = []
        for data in (batch, doubled):
            keras.utils.set_random_seed(3)
            model = Seq2Seq(config, 20, 20)
            trainer = Seq2SeqTrainer(model, token_budget=budget)
            trainer.compile(optimizer=keras.optimizers.SGD(0.1))
            before = [w.numpy() for w in model.trainable_weights]
            trainer.train_on_batch(*data)
            moves.append(sum(float(np.sum((w.numpy() - b) ** 2))
                             for w, b in zip(model.trainable_weights, before)) ** 0.5)
        assert moves[0] > 0
        assert moves[1] / moves[0] == pytest.approx(ratio, rel=1e-3)


def test_weight_decay_is_decoupled_and_spares_biases(tf):
    import keras

    from nmt.config.options import TrainConfig
    from nmt.training.optimizers import adam
    matrix, bias = keras.Variable(np.ones((4, 3), "float32")), keras.Variable(np.ones(3, "float32"))
    optimizer = adam(TrainConfig(learning_rate=0.1, weight_decay=0.5), [matrix, bias])
    # A zero gradient leaves Adam's own step at zero: only the decay moves the weights.
    optimizer.apply_gradients([(tf.zeros((4, 3)), matrix), (tf.zeros(3), bias)])
    np.testing.assert_allclose(matrix.numpy(), 1 - 0.1 * 0.5)
    np.testing.assert_array_equal(bias.numpy(), 1.0)
    assert adam(TrainConfig(), [matrix, bias]).weight_decay is None  # 0: today's update


def test_warmup_ramps_the_learning_rate_then_the_plateau_decay_takes_over(tf):
    import keras

    from nmt.config.options import TrainConfig
    from nmt.training.optimizers import adam
    weight = keras.Variable(np.zeros(3, "float32"))
    optimizer = adam(TrainConfig(learning_rate=0.1, warmup_steps=4, clip_norm=0.0), [weight])
    steps = []
    for _ in range(6):
        before = weight.numpy().copy()
        # A constant gradient makes each Adam step the learning rate itself (m / sqrt(v) = 1).
        optimizer.apply_gradients([(tf.ones(3), weight)])
        steps.append(float(np.mean(before - weight.numpy())))
    np.testing.assert_allclose(steps, [0.025, 0.05, 0.075, 0.1, 0.1, 0.1], rtol=1e-4)
    optimizer.learning_rate = 0.05  # what ReduceLROnPlateau does after the warm-up
    before = weight.numpy().copy()
    optimizer.apply_gradients([(tf.ones(3), weight)])
    assert float(optimizer.learning_rate) == pytest.approx(0.05)
    assert float(np.mean(before - weight.numpy())) == pytest.approx(0.05, rel=1e-4)
    assert adam(TrainConfig(adam_epsilon=1e-8), [weight]).epsilon == 1e-8


def accumulated_and_large(weight_decay: float, budget: int, strategy=None) -> list:
    """The weights after two updates of three batches each, fed as `train.accumulate: 3` groups
    (under `strategy`, default none), and after two updates on the same batches joined, one
    three-times larger batch each (token budget 3 x `budget`; 0: sentence batches), from the
    same initial weights; then the initial weights."""
    import keras
    import tensorflow as tf

    from nmt.config.options import ModelConfig, TrainConfig
    from nmt.model.seq2seq import Seq2Seq
    from nmt.training.optimizers import adam
    from nmt.training.train_step import Seq2SeqTrainer, grouped
    rng = np.random.default_rng(4)
    batches = []
    for rows, source_len, target_len in ((4, 5, 5), (1, 3, 4), (3, 7, 2),
                                         (5, 4, 6), (2, 6, 3), (4, 2, 5)):  # two updates
        source = rng.integers(4, 20, size=(rows, source_len)).astype("int32")
        source[0, -2:] = 0  # padding ends a source shorter than the batch's longest
        target = np.concatenate([np.full((rows, 1), 2), rng.integers(4, 20, size=(
            rows, target_len - 1)), np.full((rows, 1), 3)], axis=1).astype("int32")
        batches.append(({"source": source, "target_in": target[:, :-1]}, target[:, 1:]))

    def joined(group):
        def padded(arrays):
            longest = max(a.shape[1] for a in arrays)
            return np.concatenate([np.pad(a, ((0, 0), (0, longest - a.shape[1])))
                                   for a in arrays])
        return ({key: padded([b[0][key] for b in group]) for key in group[0][0]},
                padded([b[1] for b in group]))

    def dataset(feed):
        return tf.data.Dataset.from_generator(lambda: iter(feed), output_signature=(
            {"source": tf.TensorSpec([None, None], tf.int32),
             "target_in": tf.TensorSpec([None, None], tf.int32)},
            tf.TensorSpec([None, None], tf.int32)))

    config = ModelConfig(embedding_dim=8, encoder_units=8, encoder_layers=1, decoder_units=16,
                         attention_units=8, dropout=0.0)
    strategy = strategy or tf.distribute.get_strategy()
    results = []
    for accumulate, feed, scope in ((3, batches, strategy),
                                    (1, [joined(batches[:3]), joined(batches[3:])],
                                     tf.distribute.get_strategy())):
        keras.utils.set_random_seed(3)
        with scope.scope():
            model = Seq2Seq(config, 20, 20)
            settings = TrainConfig(learning_rate=0.01, clip_norm=1.0, warmup_steps=2,
                                   weight_decay=weight_decay, accumulate=accumulate)
            trainer = Seq2SeqTrainer(model, token_budget=budget * 3 // accumulate,
                                     accumulate=accumulate)
            trainer.compile(optimizer=adam(settings, model.trainable_variables))
        start = [w.numpy() for w in model.trainable_weights]
        trainer.fit(grouped(dataset(feed), accumulate, scope.num_replicas_in_sync),
                    steps_per_epoch=2, verbose=0)
        assert int(trainer.optimizer.iterations.numpy()) == 2
        for weight in model.trainable_weights:  # every replica's copy took the same update
            copies = getattr(weight.value, "values", ())
            for copy in copies[1:]:
                np.testing.assert_array_equal(copy.numpy(), copies[0].numpy())
        results.append([w.numpy() for w in model.trainable_weights])
    return results + [start]


@pytest.mark.parametrize("weight_decay, budget", [(0.0, 30), (0.1, 0)])
def test_accumulating_k_batches_is_one_k_times_larger_batch(tf, weight_decay, budget):
    """train.accumulate: 3 batches of a 30-token budget (or of sentences) per update give the
    weights of one update on the 3 batches joined under a 90-token budget (or their token mean):
    Adam, clipping, warm-up and decay alike; the optimizer counts updates, not batches."""
    for accumulated, large, initial in zip(*accumulated_and_large(weight_decay, budget)):
        assert not np.allclose(accumulated, initial)
        np.testing.assert_allclose(accumulated, large, atol=2e-6)


def test_accumulating_under_two_mirrored_replicas_is_one_larger_batch():
    """The same (sentence batches: a token mean over both replicas) under MirroredStrategy over
    two logical CPU devices (`train.replicas: 2`): the rows of each batch dealt out to the
    replicas, a 1-sentence batch leaving one of them none; every replica's copy updated alike.
    In a process of its own: the devices are fixed when TensorFlow starts."""
    script = ("from nmt.system import distribute\n"
              "distribute.use_cpu_replicas(2)\n"
              "import numpy as np, tensorflow as tf\n"
              "from tests.unit.test_train_step import accumulated_and_large\n"
              "strategy = tf.distribute.MirroredStrategy()\n"
              "assert strategy.num_replicas_in_sync == 2\n"
              "accumulated, large, initial = accumulated_and_large(0.1, 0, strategy)\n"
              "for a, b, c in zip(accumulated, large, initial):\n"
              "    assert not np.allclose(a, c)\n"
              "    np.testing.assert_allclose(a, b, atol=2e-6)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-5000:]
