"""The course secret, from which each submission's hidden inputs are drawn.

The grader mixes every hidden test's seed with a salt of the grading,
sha256(secret, notebook bytes) (grader/hidden/checks.py, `salted`): the same notebook
always gets the same inputs and grade, and values harvested from one grading say
nothing about the next. Without the secret, anyone holding softgrade's source could
compute a notebook's inputs, and their answers, before submitting it.

Where it comes from, first found first: `--secret-file PATH` (the file's bytes, without
surrounding whitespace), the environment variable SOFTGRADE_SECRET, else a public
default that is fine for local use only. It never enters a report, and the child process
running the submission never sees it (a minimal environment, no grader files).
"""

import hashlib
import os
import sys
from pathlib import Path

ENVIRONMENT_VARIABLE = "SOFTGRADE_SECRET"
DEFAULT_SECRET = b"softgrade's public default secret: for local use only"
ZIP_NAME = "softgrade-secret"
"""The secret's file in the Gradescope zip (unpacked into /autograder/source, root only)."""


class SecretError(OSError):
    """A secret file that cannot serve; an OSError so that every command reports it in one line."""


def add_secret_argument(parser):
    parser.add_argument("--secret-file", metavar="PATH",
                        help="the course's secret, from which each submission's hidden inputs are "
                             f"drawn (default: ${ENVIRONMENT_VARIABLE}, else a public default "
                             "for local use)")


def read_secret_file(path):
    try:
        secret = Path(path).read_bytes().strip()
    except OSError as err:
        raise SecretError(f"--secret-file {path}: {err.strerror or err}: give a readable file "
                          "holding the course's secret") from None
    if not secret:
        raise SecretError(f"--secret-file {path}: the file is empty: write the course's secret "
                          "into it (e.g. `openssl rand -hex 32 > FILE`)")
    return secret


def course_secret(args):
    """(secret bytes, whether it is the course's own rather than the public default)."""
    if getattr(args, "secret_file", None):
        return read_secret_file(args.secret_file), True
    from_environment = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
    if from_environment:
        return from_environment.encode(), True
    return DEFAULT_SECRET, False


def warn_if_default(command, own):
    """A course-facing command graded with the public default says so (on stderr, never in a
    report): students who read softgrade's source can reproduce such inputs."""
    if not own:
        print(f"softgrade {command}: warning: no course secret (--secret-file or "
              f"${ENVIRONMENT_VARIABLE}): hidden inputs follow the public default, which "
              "students can reproduce", file=sys.stderr)


def submission_salt(secret, notebook_bytes):
    """The salt of one grading: sha256 of the secret and the notebook's bytes, each length-prefixed
    so that no other (secret, notebook) pair gives the same input."""
    digest = hashlib.sha256()
    for part in (secret, notebook_bytes):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.digest()
