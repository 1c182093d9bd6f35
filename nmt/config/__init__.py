"""Settings: what an option is (`checks`), the recipe's options defined once (`options`), and
recipe files (`recipes`: YAML, --set overrides, the data root).

May import: `nmt.errors`, `nmt.search.penalties` (a registry in plain Python). No TensorFlow;
`checks` and `options` import neither YAML nor sacrebleu (the sacrebleu-tokenizer check does when
it runs), so the model can take its typed settings.
"""
