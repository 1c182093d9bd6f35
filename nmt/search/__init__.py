"""Search: greedy and beam search and forced scoring (`decoding`), the inference protocol a
single model and an ensemble satisfy (`inference`), and the translation rules (`rules`: cutting
lines, length limits, sorted batches, joining) that `nmt translate` and `nmt export` share. The
length penalties it applies are a registry of the options (`nmt.config.penalties`).

May import: `nmt.config.options`, `nmt.config.penalties`, `nmt.data.batching`, `vocab`. Sees
models only through `inference.InferenceModel`.
"""
