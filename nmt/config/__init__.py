"""Settings: the option dataclasses of a recipe (`options`) and recipe files (`recipes`).

May import: `nmt.errors`, `nmt.search.penalties` (a registry in plain Python). No TensorFlow.
"""
