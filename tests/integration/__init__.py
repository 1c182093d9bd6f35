"""Integration tests: several parts together on small models, some trained a few steps."""
