"""The ``aimc`` command line: one module per sub-command, dispatched by :mod:`mapping.cli.main`."""
