#!/usr/bin/env bash
# Installs everything softgrade needs into ./.venv, reproducibly (pinned by
# constraints.txt), plus the Debian packages it uses when this runs as root.
# Safe to re-run: it only does what is missing.
#
# As root it also arranges what the grader's unprivileged fallback needs (the sandbox
# used where bubblewrap cannot make namespaces: each submission runs as a uid of its
# own, confined by Landlock and seccomp; see grader/isolation.py):
#   - a Python that other uids can run: a new .venv is made from one whose folders
#     other users may enter (a Python under /root cannot be run by them);
#   - the packages readable by them: .venv becomes world-readable (read and enter only);
#   - the grader's files unreadable by them: every file of this checkout but .venv
#     loses its permissions for other users (o-rwx), and the checkout itself keeps
#     only o+x so that .venv can be reached. Landlock denies these reads already; this
#     is the second layer, and the only one where a kernel lacks Landlock;
#   - with SOFTGRADE_DATA set, Fashion-MNIST there, readable by other users (root's
#     cache under /root is not).
# Finally `softgrade doctor` says whether grading is possible here, and how to fix it.
set -euo pipefail
cd "$(dirname "$0")/.."
CHECKOUT="$PWD"

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
             "(run 'apt-get install$missing' as root; without bubblewrap the grader needs" \
             "its unprivileged fallback or refuses to grade, without the data set" \
             "SOFTGRADE_DATA must point to Fashion-MNIST, without chromium the tests that" \
             "render pages are skipped)" >&2
    fi
fi

# Whether every folder above $1 may be entered by other users.
others_can_reach() {
    local folder
    folder=$(dirname "$(readlink -f "$1")")
    while [ "$folder" != / ]; do
        [ "$(( $(stat -c '%#a' "$folder") & 1 ))" = 1 ] || return 1
        folder=$(dirname "$folder")
    done
}

if [ -z "${PYTHON:-}" ]; then
    PYTHON=python3
    if [ "$(id -u)" = 0 ] && [ ! -x .venv/bin/python ]; then
        # The fallback's uids must be able to run the venv's interpreter.
        for candidate in python3.13 python3.12 python3.11 python3; do
            path=$(command -v "$candidate" || true)
            if [ -n "$path" ] && others_can_reach "$path" \
                && "$path" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
                PYTHON="$path"
                break
            fi
        done
    fi
fi
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

if [ "$(id -u)" = 0 ]; then
    interpreter=$(.venv/bin/python -c 'import sys; print(sys.executable)')
    if ! others_can_reach "$(readlink -f "$interpreter")"; then
        echo "install: warning: other uids cannot run $(readlink -f "$interpreter"), so the" \
             "unprivileged fallback is unavailable (bubblewrap must work): remove .venv and" \
             "run PYTHON=/usr/bin/python3 scripts/install.sh with a Python 3.11+ outside /root" >&2
    fi
    chmod -R a+rX .venv
    find "$CHECKOUT" -mindepth 1 -maxdepth 1 ! -name .venv -exec chmod -R o-rwx {} +
    chmod o=x "$CHECKOUT"
    if [ -n "${SOFTGRADE_DATA:-}" ]; then
        mkdir -p "$SOFTGRADE_DATA"
        .venv/bin/python -c 'from solutions.data_files import find_fashion_mnist as f; f()'
        chmod -R a+rX "$SOFTGRADE_DATA"
    fi
fi

.venv/bin/python -m grader.cli doctor || echo "install: softgrade doctor says grading is" \
    "not possible here yet: see the fix lines above" >&2
