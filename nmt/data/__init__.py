"""Corpora and batches: corpus files and downloads (`corpus`), word-vector files (`vectors`),
and ids to batches (`batching`: the tf.data training pipeline, order-keeping inference batches).

May import: `nmt.config`, `nmt.files`, `nmt.system`, `vocab`.
"""
