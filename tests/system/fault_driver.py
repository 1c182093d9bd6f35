"""Runs `nmt train` with a fault injected: the process SIGKILLs itself at a chosen moment.

Usage: python fault_driver.py FAULT EPOCH RECIPE RUN_DIR

FAULT is where the kill happens, during epoch EPOCH (0-based):
    mid_epoch        after a few training batches
    validation       while the dev set is being decoded for BLEU
    writing_weights  when the epoch's model weights are written, before their temporary file
                     is renamed (before the commit)
    writing_state    after the epoch's weights are written, before state.json names them
    publishing       after state.json is written, while last.weights.h5 is being replaced
                     (every epoch: best.weights.h5 only when dev BLEU improved)
or where the disk fills up (the process is not killed; it must fail with one line):
    disk_full        from epoch EPOCH on, the disk reports no free space
    hdf5_disk_full   the free-space check is skipped, so that HDF5 itself meets a full disk
                     (RUN_DIR must be on a small file system)
Used by test_faults.py and test_user_faults.py only; the patches below are test scaffolding,
not product code.
"""
import dataclasses
import os
import signal
import sys

from nmt import cli
from nmt.files import textio
from nmt.storage import rundir, weights
from nmt.training import callbacks

fault, kill_epoch, recipe, run_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
current = {"epoch": -1}


def die():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


original_epoch_begin = callbacks.EpochSummary.on_epoch_begin


def on_epoch_begin(self, epoch, logs=None):
    current["epoch"] = epoch
    original_epoch_begin(self, epoch, logs)


original_statvfs = os.statvfs


def statvfs(path):
    """The file system of `path`, reported full from the chosen epoch on."""
    real = original_statvfs(path)
    if fault == "disk_full" and current["epoch"] >= kill_epoch:
        return os.statvfs_result((real.f_bsize, real.f_frsize, real.f_blocks, 0, 0,
                                  *real[5:]))
    return real


def on_train_batch_end(self, batch, logs=None):
    if fault == "mid_epoch" and current["epoch"] == kill_epoch and batch == 3:
        die()


original_dev_bleu = callbacks.DevBleu.on_epoch_end


def dev_bleu_end(self, epoch, logs=None):
    if fault == "validation" and epoch == kill_epoch:
        callbacks.search_all(self.searcher, self.sources[:8],  # decoding the dev set has begun
                             dataclasses.replace(self.decode, batch_size=8))
        die()
    original_dev_bleu(self, epoch, logs)


original_atomic_path = textio.atomic_path


class KillBeforeRename:
    """atomic_path that dies once the temporary file is complete, before the rename."""

    def __init__(self, path, suffix=""):
        self.inner = original_atomic_path(path, suffix)
        self.path = str(path)

    def __enter__(self):
        return self.inner.__enter__()

    def __exit__(self, *exc):
        name = os.path.basename(self.path)
        if current["epoch"] == kill_epoch and (
                (fault == "writing_weights" and name.startswith("last-")) or
                (fault == "publishing" and name == "last.weights.h5")):
            die()
        return self.inner.__exit__(*exc)


original_state_write = rundir.atomic_write


def state_write(path, mode="w"):
    if fault == "writing_state" and current["epoch"] == kill_epoch and \
            os.path.basename(str(path)) == "state.json":
        die()
    return original_state_write(path, mode)


os.statvfs = statvfs
if fault == "hdf5_disk_full":
    weights._check_space = lambda model, path: None
callbacks.EpochSummary.on_epoch_begin = on_epoch_begin
callbacks.EpochSummary.on_train_batch_end = on_train_batch_end
callbacks.DevBleu.on_epoch_end = dev_bleu_end
weights.atomic_path = rundir.atomic_path = KillBeforeRename  # weights files; best/last links
rundir.atomic_write = state_write
sys.exit(cli.main(["train", recipe, "--run-dir", run_dir]))
