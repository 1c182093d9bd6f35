"""Training a recipe: the run (`train`), the compiled trainer and datasets a recipe makes
(`setup`, shared with the benchmarks), the Keras training step (`train_step`), the optimizer
(`optimizers`) and the callbacks (`callbacks`).

May import everything below it, `nmt.translation` included (tuning and averaging at the end of a
run; `nmt.serving` too, though it needs nothing of it). Nothing imports it but the command line
and the benchmarks.
"""
