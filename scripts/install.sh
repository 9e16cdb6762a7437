#!/usr/bin/env bash
# Installs everything softgrade needs into ./.venv, reproducibly (pinned by
# constraints.txt), plus the Debian packages it uses when this runs as root.
# Safe to re-run: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    if ! dpkg -s dataset-fashion-mnist >/dev/null 2>&1; then
        echo "install: Debian packages (Fashion-MNIST data)" >&2
        apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist >/dev/null
    fi
elif [ ! -d /usr/share/datasets/fashion-mnist ]; then
    echo "install: warning: not root, so Fashion-MNIST is not installed from Debian;" \
         "run 'apt-get install dataset-fashion-mnist' as root or set SOFTGRADE_DATA" >&2
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
