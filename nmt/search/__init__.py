"""Search: greedy and beam search, forced scoring, the length penalties, and the inference
protocol a single model and an ensemble satisfy.

May import: `nmt.config.options`, `nmt.data.batching`, `vocab`. Sees models only through
`inference.InferenceModel`. `penalties` is plain Python (the recipe options read it).
"""
