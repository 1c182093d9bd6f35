"""Search: greedy and beam search, forced scoring, the length penalties, the inference
protocol a single model and an ensemble satisfy, and the translation rules (`rules`: cutting
lines, length limits, sorted batches, joining) that `nmt translate` and `nmt export` share.

May import: `nmt.config.options`, `nmt.data.batching`, `vocab`. Sees models only through
`inference.InferenceModel`. `penalties` is plain Python (the recipe options read it).
"""
