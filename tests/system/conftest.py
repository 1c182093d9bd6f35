"""The system tier's share of the fast/slow switch: a system test that runs a trained model
through the command line is slow (each `nmt` process starts TensorFlow and loads the model: 4 to
30 s a test on 2 cores), whether or not it marks itself. The system tests that fail before any
model is needed (help, recipe and corpus errors) stay in the fast tier."""
import pytest

TRAINED_MODELS = {"reverse_run", "reverse_run_bfloat16", "mirrored_run"}


def pytest_collection_modifyitems(items):
    for item in items:
        if TRAINED_MODELS & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
