"""Every layer of the model survives get_config/from_config (through JSON) and a save/load of its
weights with equal outputs (as keras-hub's `run_serialization_test` and `run_model_saving_test`).

The decoder's parts (cells, bridges, outputs) are not layers: they are covered through the
decoder, in each cell kind, bridge and tie setting.
"""
import json

import numpy as np
import pytest

from nmt.config.options import ModelConfig

SIZES = dict(embedding_dim=8, encoder_units=6, encoder_layers=2, decoder_units=10,
             attention_units=7, dropout=0.2)
SOURCE = np.array([[4, 5, 6, 7, 3], [8, 9, 3, 0, 0]], np.int32)
TARGET_IN = np.array([[2, 5, 6, 7], [2, 9, 4, 0]], np.int32)


def revived(layer):
    """The layer rebuilt from its config, after a trip through JSON; the configs must agree."""
    import keras
    text = json.dumps(keras.saving.serialize_keras_object(layer))
    clone = keras.saving.deserialize_keras_object(json.loads(text))
    assert type(clone) is type(layer)
    assert clone.get_config() == layer.get_config()
    # Sub-layers made from the config are made alike (the embeddings' initializer was omitted once)
    embeddings = [[sub.get_config()["embeddings_initializer"] for sub in x._flatten_layers()
                   if isinstance(sub, keras.layers.Embedding)] for x in (layer, clone)]
    assert embeddings[0] == embeddings[1]
    return clone


def assert_weights_carry_over(layer, clone, outputs, tmp_path):
    """Saves `layer`'s weights, loads them into `clone`; `outputs(layer)` then agree exactly.

    The layers are held by a model so that they save as a part of one, as they are in Seq2Seq.
    """
    import keras

    class Holder(keras.Model):
        def __init__(self, part):
            super().__init__()
            self.part = part
            self.built = True  # the part is

    expected = [np.asarray(x) for x in outputs(layer)]
    assert not all(np.array_equal(a, np.asarray(b)) for a, b in zip(expected, outputs(clone)))
    path = tmp_path / "layer.weights.h5"
    (layer if isinstance(layer, keras.Model) else Holder(layer)).save_weights(path)
    (clone if isinstance(clone, keras.Model) else Holder(clone)).load_weights(path)
    assert [tuple(w.shape) for w in clone.weights] == [tuple(w.shape) for w in layer.weights]
    for a, b in zip(expected, outputs(clone)):
        np.testing.assert_array_equal(np.asarray(b), a)


@pytest.fixture
def seeded(tf):
    import keras
    keras.utils.set_random_seed(5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_encoder(seeded, tmp_path, cell):
    from nmt.model.encoder import Encoder
    encoder = Encoder(20, 8, 6, num_layers=2, cell=cell, dropout=0.2, name="encoder",
                      embeddings_initializer="random_normal")
    clone = revived(encoder)
    for layer in (encoder, clone):
        layer.build((None, None))

    def outputs(layer):
        memory, final, _ = layer(SOURCE)
        return [memory, *final]
    assert_weights_carry_over(encoder, clone, outputs, tmp_path)


@pytest.mark.parametrize("name", ["additive", "multiplicative"])
def test_attention(seeded, tmp_path, name):
    from nmt.model.attention import ATTENTIONS
    attention = ATTENTIONS[name].for_model(ModelConfig(**SIZES))
    clone = revived(attention)
    rng = np.random.default_rng(0)
    values = rng.normal(size=(2, 5, 12)).astype("float32")
    query = rng.normal(size=(2, 10)).astype("float32")
    mask = SOURCE != 0
    for layer in (attention, clone):
        layer.build((None, 10), values_shape=(None, None, 12))

    def outputs(layer):
        return layer(query, layer.project_keys(values), values, mask)
    assert_weights_carry_over(attention, clone, outputs, tmp_path)


DECODERS = [dict(cell=cell, tie=tie, bridge=bridge, attention=attention)
            for cell in ("lstm", "gru") for tie, bridge, attention in (
                ("none", "per_state", "additive"), ("decoder", "hidden", "multiplicative"),
                ("none", "zero", "multiplicative"))] + \
    [dict(tie="decoder", embedding_dim=10)]  # no output projection


@pytest.mark.parametrize("options", DECODERS, ids=lambda o: "-".join(map(str, o.values())))
def test_decoder(seeded, tf, tmp_path, options):
    from nmt.model.decoder import AttentionDecoder, Memory
    config = ModelConfig(**{**SIZES, **options})
    decoder = AttentionDecoder(config, 15, embeddings_initializer="random_normal", name="decoder")
    clone = revived(decoder)
    rng = np.random.default_rng(0)
    values = rng.normal(size=(2, 5, 12)).astype("float32")
    final = [rng.normal(size=(2, 12)).astype("float32") for _ in decoder.cell.state_parts]
    for layer in (decoder, clone):
        layer.build()

    def outputs(layer):
        memory = Memory(tf.constant(values), layer.attention.project_keys(values),
                        tf.constant(SOURCE != 0))
        return [layer(TARGET_IN, layer.initial_state(final), memory)]
    assert_weights_carry_over(decoder, clone, outputs, tmp_path)


SEQ2SEQS = [dict(cell=cell, tie=tie, bridge=bridge, attention=attention)
            for cell in ("lstm", "gru") for tie, bridge, attention in (
                ("none", "per_state", "additive"), ("decoder", "hidden", "additive"),
                ("all", "zero", "multiplicative"))]


@pytest.mark.parametrize("options", SEQ2SEQS, ids=lambda o: "-".join(o.values()))
def test_seq2seq(seeded, tmp_path, options):
    from nmt.model.seq2seq import Seq2Seq
    model = Seq2Seq(ModelConfig(**{**SIZES, **options}), 20, 20)
    clone = revived(model)
    assert clone.model_config == model.model_config
    assert (clone.encoder.embedding is clone.decoder.embedding) == (options["tie"] == "all")

    def outputs(layer):
        return [layer({"source": SOURCE, "target_in": TARGET_IN})]
    assert_weights_carry_over(model, clone, outputs, tmp_path)


def test_a_model_keeps_only_the_options_of_its_layers(tf):
    """The initialization keys (pretrained vectors) say how a run starts, not what the model is."""
    from nmt.model.seq2seq import Seq2Seq
    config = ModelConfig(**SIZES, pretrained_embeddings={"tgt": "v.txt"}, freeze_embeddings=True)
    clone = Seq2Seq.from_config(Seq2Seq(config, 20, 15).get_config())
    assert clone.model_config == ModelConfig(**SIZES)
    assert (clone.src_vocab_size, clone.tgt_vocab_size) == (20, 15)
