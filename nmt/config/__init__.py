"""Settings: the option definitions of a recipe (`options`) and recipe files (`recipes`).

May import: `nmt.errors`, `nmt.search.penalties` (a registry in plain Python). No TensorFlow;
`options` imports neither YAML nor sacrebleu (its sacrebleu-tokenizer check does when it runs).
"""
