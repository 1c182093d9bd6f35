"""The system tier's share of the fast/slow switch: a system test that runs a trained model
through the command line is slow (each `nmt` process starts TensorFlow and loads the model: 4 to
30 s a test on 2 cores), whether or not it marks itself. The system tests that fail before any
model is needed (help, recipe and corpus errors) stay in the fast tier."""
from pathlib import Path

import pytest

TRAINED_MODELS = {"reverse_run", "reverse_run_bfloat16", "mirrored_run"}
SYSTEM = Path(__file__).parent


def pytest_collection_modifyitems(items):
    # The hook sees every collected test, not only this folder's: select the system tier's.
    for item in items:
        if item.path.is_relative_to(SYSTEM) and \
                TRAINED_MODELS & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
