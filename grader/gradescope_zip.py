"""`softgrade gradescope-zip`: the Gradescope autograder of the assignment, as one zip.

Gradescope unpacks the zip into /autograder/source, runs its setup.sh once (as root)
to build the image, and for each submission runs its run_autograder, which must leave
/autograder/results/results.json. Both scripts live in scripts/gradescope/; the zip
also carries the softgrade source they install and run: pyproject.toml,
constraints.txt, README.md (pyproject's readme), grader/, solutions/, the source
notebook at the place where `softgrade grade` looks for it by default, and the course
secret (grader/secret.py) when one is given, for run_autograder's `--secret-file`.

The zip's bytes depend only on its content (fixed timestamps, sorted names), so
rebuilding an unchanged autograder gives the same file.
"""

import stat
import sys
import zipfile
from pathlib import Path

from .grade import DEFAULT_SOURCE, ROOT
from .notebook import NotebookError, find_parts, read_notebook
from .secret import ZIP_NAME, add_secret_argument, course_secret, warn_if_default

USER_ERRORS = (NotebookError, OSError)

DESCRIPTION = """\
Build the autograder zip of a Gradescope programming assignment: setup.sh installs
softgrade (pinned by constraints.txt), bubblewrap and Fashion-MNIST when Gradescope
builds the image; run_autograder grades the one notebook a student submits with
`softgrade grade` and always writes results.json (score 0 and the reason when the
notebook cannot be graded). The course secret (--secret-file or $SOFTGRADE_SECRET)
travels in the zip, readable only by root there. Upload the zip as the assignment's
autograder."""

SCRIPTS = ROOT / "scripts" / "gradescope"
EXECUTABLES = ("setup.sh", "run_autograder")
PACKAGE_FILES = ("pyproject.toml", "constraints.txt", "README.md")
PACKAGE_DIRS = ("grader", "solutions")
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can say: the bytes stay put


def add_arguments(parser):
    parser.add_argument("--out", default="autograder.zip", metavar="PATH",
                        help="where the zip goes (default: %(default)s)")
    parser.add_argument("--source", default=str(DEFAULT_SOURCE), metavar="NOTEBOOK",
                        help="the instructor's source notebook the autograder grades against "
                             "(default: the bundled assignment)")
    add_secret_argument(parser)


def package_files():
    """{name in the zip: file here} of the softgrade source, without caches."""
    files = {name: ROOT / name for name in PACKAGE_FILES}
    for directory in PACKAGE_DIRS:
        for path in sorted((ROOT / directory).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                files[path.relative_to(ROOT).as_posix()] = path
    return files


def zip_entry(name, executable=False):
    """A ZipInfo with a fixed time and Unix permissions (Gradescope runs the scripts; the
    secret is the owner's only, as setup.sh leaves the whole source)."""
    info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
    mode = 0o755 if executable else 0o600 if name == ZIP_NAME else 0o644
    info.external_attr = (stat.S_IFREG | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def build_zip(out, source_path=DEFAULT_SOURCE, secret=None):
    """Write the autograder zip to `out`; returns the names it holds.

    The source notebook is checked first (it must be a notebook with graded parts), and
    stored where the zip's `softgrade grade` finds it without --source. A course `secret`
    (bytes) is stored as ZIP_NAME; without one the autograder uses the public default.
    """
    if not find_parts(read_notebook(source_path)):
        raise NotebookError(f"{source_path}: no graded parts (nbgrader grade cells) in it")
    entries = {name: (SCRIPTS / name).read_bytes() for name in EXECUTABLES}
    entries.update((name, path.read_bytes()) for name, path in package_files().items())
    entries[DEFAULT_SOURCE.relative_to(ROOT).as_posix()] = Path(source_path).read_bytes()
    if secret is not None:
        entries[ZIP_NAME] = secret
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w") as archive:
        for name in sorted(entries):
            archive.writestr(zip_entry(name, name in EXECUTABLES), entries[name])
    return sorted(entries)


def run(args):
    secret, own = course_secret(args)
    warn_if_default("gradescope-zip", own)
    names = build_zip(args.out, args.source, secret if own else None)
    size_kib = Path(args.out).stat().st_size / 1024
    print(f"wrote {args.out} ({len(names)} files, {size_kib:.0f} KiB): upload it as the "
          "autograder of a Gradescope programming assignment", file=sys.stderr)
    return 0
