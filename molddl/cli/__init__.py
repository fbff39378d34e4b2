"""The ``molddl`` command line: one module per command."""
