"""nmt's tests in three tiers: unit/ (one part at a time, no training, no subprocess),
integration/ (parts together on small models, which may train a few steps), system/ (the command
line as a user runs it: subprocesses, signals, faults, learning). Shared helpers: helpers.py;
shared fixtures: conftest.py."""
