"""softgrade's grading engine and command line.

Laid out by what the user does: `cli.py` parses the command line and hands each
subcommand to its own module: `release.py` (source notebook -> student notebook),
`check.py` (a student's self-check with the public tests), `train.py` (the
reference training run). `notebook.py` reads notebooks and finds their parts.
"""
