"""Source encoder: embeddings and a stack of bidirectional recurrent layers."""
from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="nmt")
class Encoder(keras.layers.Layer):
    """Embeds source ids and runs stacked bidirectional LSTM (or GRU) layers over them.

    From the second layer on, each layer's output is added to its input (a residual connection).
    Padding (id 0) is masked, so padding a sentence does not change its encoding.

    Args:
        vocab_size: source vocabulary size.
        embedding_dim: embedding width E.
        units: hidden size H of each direction; the memory is 2H wide.
        num_layers: number of bidirectional layers.
        cell: "lstm" or "gru".
        dropout: dropout on the embeddings and between layers.
        embedding: an Embedding layer to use (shared with the decoder), or None for our own.
        embeddings_initializer: of our own embeddings (Keras's default: uniform).

    Call arguments:
        source: int tensor [B, S], 0 = padding.
        training: whether dropout is active.

    Returns:
        memory: [B, S, 2H] outputs of the last layer (zero at padding).
        final: the last layer's final states, concatenated over the two directions:
            a list [h [B, 2H], c [B, 2H]] for LSTM, [h [B, 2H]] for GRU.
        mask: bool [B, S], True at real tokens.
    """

    def __init__(self, vocab_size, embedding_dim, units, num_layers=1, cell="lstm", dropout=0.0,
                 embedding=None, embeddings_initializer="uniform", **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.embedding_dim, self.units = vocab_size, embedding_dim, units
        self.num_layers, self.cell, self.dropout = num_layers, cell, dropout
        self.embedding = embedding or keras.layers.Embedding(
            vocab_size, embedding_dim, embeddings_initializer=embeddings_initializer,
            name="embedding")
        rnn = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[cell]
        # Keras's CPU recurrent layers keep their state in the compute dtype, which bfloat16 is too
        # coarse for: they run in float32 then. (float16, meant for GPUs, is left to cuDNN.)
        rnn_policy = "float32" if self.compute_dtype == "bfloat16" else self.dtype_policy
        # Default activations and no recurrent dropout keep Keras's cuDNN path open on GPUs.
        self.rnns = [keras.layers.Bidirectional(rnn(units, return_sequences=True, return_state=True,
                                                    dtype=rnn_policy),
                                                name=f"birnn_{i}", dtype=rnn_policy)
                     for i in range(num_layers)]
        self.drop = keras.layers.Dropout(dropout)

    def build(self, source_shape):
        if not self.embedding.built:  # a shared embedding is built once
            self.embedding.build(source_shape)
        width = self.embedding_dim
        for rnn in self.rnns:
            rnn.build((None, None, width))
            width = 2 * self.units

    def call(self, source, training=False):
        mask = ops.not_equal(source, 0)
        x = self.drop(self.embedding(source), training=training)
        for index, rnn in enumerate(self.rnns):
            if index > 0:
                x = self.drop(x, training=training)
            outputs = rnn(x, mask=mask, training=training)
            # Bidirectional returns [out, fw states..., bw states...]
            y, states = ops.cast(outputs[0], x.dtype), outputs[1:]
            x = y + x if index > 0 else y
        half = len(states) // 2
        final = [ops.cast(ops.concatenate([fw, bw], axis=-1), self.compute_dtype)
                 for fw, bw in zip(states[:half], states[half:])]
        memory = x * ops.cast(mask[:, :, None], x.dtype)
        return memory, final, mask

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size,
                "embedding_dim": self.embedding_dim, "units": self.units,
                "num_layers": self.num_layers, "cell": self.cell, "dropout": self.dropout,
                "embeddings_initializer": keras.initializers.serialize(
                    self.embedding.embeddings_initializer)}
