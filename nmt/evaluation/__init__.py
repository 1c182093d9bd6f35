"""Scoring translations: sacrebleu metrics with signatures (`metrics`), error analysis
(`analysis`), the `nmt evaluate` report (`report`), figures (`plotting`) and learning curves
(`curves`).

May import: `nmt.errors`, `nmt.files`, `nmt.search`, `nmt.data`, `vocab`. Takes a translator as
an argument; never loads models itself.
"""
