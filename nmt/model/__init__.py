"""The translation model: Keras layers that map ids to logits (`seq2seq.Seq2Seq` wires them).

May import: `nmt.config.options`, Keras and TensorFlow. Knows nothing of files, strings,
training or search.
"""
