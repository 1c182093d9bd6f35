"""The encoder-decoder: teacher-forced `call` for training; the inference protocol
(`nmt.search.inference`) for search.

The model maps ids to logits and knows nothing of files, strings, training or search.
"""
from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from nmt.config.options import ModelConfig, architecture
from nmt.model.decoder import AttentionDecoder, Memory
from nmt.model.encoder import Encoder


@keras.saving.register_keras_serializable(package="nmt")
class Seq2Seq(keras.Model):
    """Bidirectional-RNN encoder, attentional RNN decoder with input feeding.

    Args:
        config: the model's options (`nmt.config.options.ModelConfig`); tie "all" needs one
            vocabulary, embedding_init "normal" draws embeddings from N(0, 0.1), as JoeyNMT.
        src_vocab_size, tgt_vocab_size: vocabulary sizes (PAD = 0 on both sides).

    Call arguments:
        inputs: {"source": int [B, S], "target_in": int [B, T]} (target_in = BOS + target).

    Returns:
        logits [B, T, V] predicting target_out = target + EOS.

    Satisfies `nmt.search.inference.InferenceModel`, the protocol search uses (`step_tables`,
    `encode`, `decode_step`, `teacher_forced`).
    """

    def __init__(self, config: ModelConfig, src_vocab_size: int, tgt_vocab_size: int, **kwargs):
        super().__init__(**kwargs)
        self.model_config = config
        self.src_vocab_size, self.tgt_vocab_size = src_vocab_size, tgt_vocab_size
        if config.tie == "all" and src_vocab_size != tgt_vocab_size:
            raise ValueError(f"tie='all' needs one vocabulary: sizes {src_vocab_size} and "
                             f"{tgt_vocab_size} differ")
        # One initializer for both sides, made before the layers (the order the seeds are drawn in).
        initializer = {"uniform": "uniform",  # Keras's default for embeddings: U(-0.05, 0.05)
                       "normal": keras.initializers.RandomNormal(0.0, 0.1)}[config.embedding_init]
        decoder = AttentionDecoder(config, tgt_vocab_size, embeddings_initializer=initializer,
                                   name="decoder")
        self.encoder = Encoder(src_vocab_size, config.embedding_dim, config.encoder_units,
                               config.encoder_layers, config.cell, config.dropout,
                               embedding=decoder.embedding if config.tie == "all" else None,
                               embeddings_initializer=initializer, name="encoder")
        self.decoder = decoder
        self.build(None)

    def build(self, input_shape=None):
        # Every size is known from the config: build now, so weights exist before the first call
        # (the while loops of training and search cannot create variables).
        self.encoder.build((None, None))
        self.decoder.build()
        self.built = True

    def embedding_layer(self, side: str):
        """The source ("src") or target ("tgt") `keras.layers.Embedding`."""
        return {"src": self.encoder.embedding, "tgt": self.decoder.embedding}[side]

    def call(self, inputs, training=False):
        memory, state = self.encode(inputs["source"], training=training)
        return self.decoder(inputs["target_in"], state, memory, training=training)

    def encode(self, source, training=False):
        """Encodes int [B, S] source ids -> (Memory, initial decoder state)."""
        values, final, mask = self.encoder(source, training=training)
        with tf.name_scope("attention"):  # scopes name the parts in `nmt bench profile`
            keys = self.decoder.attention.project_keys(values)
        return Memory(values, keys, mask), self.decoder.initial_state(final)

    def step_tables(self):
        """Tensors derived from the weights alone that make each `decode_step` cheaper.

        The input projection of every target id, [V, G*U]: a step then gathers rows instead of
        multiplying embeddings (about 8 % of a step's arithmetic); and the step's kernels in the
        compute dtype (cast once, not at each step, under mixed precision). Recompute after the
        weights change.
        """
        return {"input_table": self.decoder.project_inputs(ops.arange(self.tgt_vocab_size)),
                "step_weights": self.decoder.step_weights()}

    def decode_step(self, token, state, memory, tables, rows_per_memory: int = 1):
        """One step of search: int [N] previous tokens -> (log_probs [N, V], state, weights [N, S]).

        `tables` comes from `step_tables` of the current weights. `token` and `state` have
        N = B * R rows, R = `rows_per_memory` consecutive ones per row of `memory` [B, ...].
        """
        with tf.name_scope("decoder"):
            attentional, state, weights = self.decoder.step(
                ops.take(tables["input_table"], token, axis=0), state, memory,
                weights=tables["step_weights"], rows_per_memory=rows_per_memory)
            logits = self.decoder.logits(attentional)
            with tf.name_scope("output"):
                log_probs = ops.log_softmax(logits, axis=-1)
        return log_probs, state, weights

    def teacher_forced(self, source, target_in):
        """Log-probs [B, T, V] and attention weights [B, T, S] of given targets (no dropout)."""
        memory, state = self.encode(source)
        logits, weights = self.decoder(target_in, state, memory, return_attention=True)
        return ops.log_softmax(logits, axis=-1), weights

    def get_config(self):
        return {"config": architecture(self.model_config), "src_vocab_size": self.src_vocab_size,
                "tgt_vocab_size": self.tgt_vocab_size, "name": self.name}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(ModelConfig(**config.pop("config")), **config)
