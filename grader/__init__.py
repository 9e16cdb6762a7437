"""softgrade's grading engine and command line.

Laid out by what the user does: `cli.py` parses the command line and hands each
subcommand to its own module: `release.py` (source notebook -> student notebook),
`check.py` (a student's self-check with the public tests), `train.py` (the
reference training run). `notebook.py` reads notebooks and finds their parts.
"""

import sys

# jsonschema, imported by nbformat, compiles an IRI grammar with lark when the
# optional package rfc3987-syntax is installed (jupyter-events pulls it in): 3 s at
# every start of softgrade on a 2-core machine, for a format that no notebook schema
# uses. Marking the module absent makes jsonschema skip that one format checker.
sys.modules.setdefault("rfc3987_syntax", None)
