"""softgrade's grading engine and command line.

Laid out by what the user does: `cli.py` parses the command line and hands
each subcommand to its module (`train.py` for `softgrade train`, ...).
"""
