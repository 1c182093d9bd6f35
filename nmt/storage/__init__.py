"""Folders on disk: the run directory of a training and loading a model folder.

May import: `nmt.config`, `nmt.files`, `nmt.model`, `nmt.system`, `vocab`.
"""
