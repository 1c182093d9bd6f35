"""Settings: what an option is (`checks`), the recipe's options defined once (`options`), the
length-penalty registry that `decode.length_penalty` names and the search applies (`penalties`),
and recipe files (`recipes`: YAML, --set overrides, the data root).

May import: `nmt.errors`. No TensorFlow; `checks`, `options` and `penalties` import neither YAML
nor sacrebleu (the sacrebleu-tokenizer check does when it runs), so the model can take its typed
settings.
"""
