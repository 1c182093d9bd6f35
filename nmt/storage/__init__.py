"""Folders on disk: weights files (`weights`), the model folder a trained model is (`modeldir`)
and the run directory of a training (`rundir`: layout, lock, epoch commits, resume checks).

May import: `nmt.errors`, `nmt.config`, `nmt.files`, `nmt.model`, `nmt.system`, `vocab`.
"""
