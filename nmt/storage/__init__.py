"""Folders on disk: weights files (`weights`), a folder's manifest of files, sizes and hashes
(`manifest`), the model folder a trained model is (`modeldir`) and the run directory of a
training (`rundir`: layout, lock, epoch commits, resume checks), and the prepared training data
of `nmt prepare` (`prepared`).

May import: `nmt.errors`, `nmt.config`, `nmt.files`, `nmt.model`, `nmt.system`, `nmt.data`,
`vocab`.
"""
