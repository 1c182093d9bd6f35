"""System tests: the command line as a user runs it (subprocesses, signals, faults, full
training runs that must learn)."""
