"""The ``rmtension`` command line: a thin layer over the library.

Each ``cmd_*.py`` module in this package adds its sub-commands through ``register(subparsers)``;
``main`` discovers them, so a new command is a new file and never an edit here.
"""
