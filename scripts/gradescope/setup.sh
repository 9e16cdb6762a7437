#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image (made by
# `softgrade gradescope-zip`, unpacked into /autograder/source). It installs what
# run_autograder needs: Debian packages, Python 3.11 or newer, a virtual environment
# /autograder/venv with softgrade and the pins of constraints.txt, and Fashion-MNIST in
# /autograder/data, so that submissions are graded offline.
set -euo pipefail
ROOT="${SOFTGRADE_AUTOGRADER_ROOT:-/autograder}"
SOURCE="$ROOT/source"
VENV="$ROOT/venv"
export SOFTGRADE_DATA="$ROOT/data"
export DEBIAN_FRONTEND=noninteractive

# bubblewrap: the grader's sandbox (where the container forbids namespaces, as Docker's
# default seccomp profile does, the grader uses its unprivileged fallback, or refuses). dataset-fashion-mnist: the data without a
# download, where this Ubuntu release has the package.
apt-get update -q
apt-get install -y -q bubblewrap
if apt-cache show dataset-fashion-mnist >/dev/null 2>&1; then
    apt-get install -y -q dataset-fashion-mnist
fi

# softgrade needs Python 3.11 or newer (Ubuntu 22.04's python3 is 3.10).
PYTHON=""
for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null \
        && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        PYTHON="$candidate"
        break
    fi
done
if [ -z "$PYTHON" ]; then
    apt-get install -y -q python3.11
    PYTHON=python3.11
fi
apt-get install -y -q "$PYTHON-venv"

"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
# Editable on purpose: a regular install would copy grader/ and solutions/ into the
# venv, whose files the sandbox shows the submission (it needs the interpreter's
# packages); installed editable, the venv only points to $SOURCE, which it does not show.
"$VENV/bin/python" -m pip install -q -c "$SOURCE/constraints.txt" -e "$SOURCE"

# Found (Debian's copy, unpacked) or downloaded now, while the image has a network.
mkdir -p "$SOFTGRADE_DATA"
"$VENV/bin/python" -c 'from solutions.data_files import find_fashion_mnist; print(find_fashion_mnist())'

# Where the container forbids namespaces, each submission runs as a uid of its own
# (the unprivileged fallback: Landlock and seccomp besides): it must be able to run the
# venv's Python and read the data, and must not read the grader, the hidden tests or
# the reference solution.
chmod 711 "$ROOT"
chmod -R a+rX "$VENV" "$SOFTGRADE_DATA"
chmod -R go-rwx "$SOURCE"

# Whether submissions can be isolated in this image, in the build's log (the grader
# refuses to grade where they cannot: this says why and what fixes it).
"$VENV/bin/python" -m grader.cli doctor || true
