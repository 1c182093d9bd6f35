"""Corpora and what is made of them: the files of a recipe, fetched if need be (`corpus`), the
training and dev pairs read, checked and counted, and the vocabularies trained on them
(`prepare`), pretrained word vectors (`vectors`), tf.data pipelines and inference batches
(`batching`), and token-id shards: made in parallel once, read each epoch (`shards`).

May import: `nmt.errors`, `nmt.config`, `nmt.files`, `nmt.system`, `vocab`. TensorFlow only
inside functions.
"""
