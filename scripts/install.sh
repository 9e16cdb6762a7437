#!/usr/bin/env bash
# Installs everything softgrade needs into ./.venv, reproducibly (pinned by
# constraints.txt), plus the Debian packages it uses when this runs as root.
# Safe to re-run: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: the data set (offline), bubblewrap (the grader's sandbox) and chromium
# (the tests render the feedback page and the class report headless; scripts/screenshots.py).
DEBIAN_PACKAGES="dataset-fashion-mnist bubblewrap chromium"
missing=""
for package in $DEBIAN_PACKAGES; do
    dpkg -s "$package" >/dev/null 2>&1 || missing="$missing $package"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "install: Debian packages:$missing" >&2
        apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null
    else
        echo "install: warning: not root, so these Debian packages are not installed:$missing" \
             "(run 'apt-get install$missing' as root; without bubblewrap the grader's sandbox" \
             "is weaker, without the data set SOFTGRADE_DATA must point to Fashion-MNIST," \
             "without chromium the tests that render pages are skipped)" >&2
    fi
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "install: creating .venv with $($PYTHON --version)" >&2
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.softgrade-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
    echo "install: Python packages (torch with its CUDA libraries: a few minutes the first time)" >&2
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -c constraints.txt -e '.[test]'
    touch "$stamp"
fi
