"""Unit tests: one part at a time on hand-made or random inputs; no training, no nmt command."""
