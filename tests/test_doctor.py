"""`softgrade doctor`: every check with ok or FAIL and its fix; exit 0 exactly when
grading is possible here."""

import subprocess
import sys
from pathlib import Path

from machines import WITHOUT_LANDLOCK, without_bubblewrap

ROOT = Path(__file__).resolve().parents[1]
CHECKS = ("hidden tests, reference, source notebook and .git unreadable",
          "nothing writable outside its scratch", "no network",
          "cannot signal or trace the grader", "unprivileged (uid not 0, no capabilities)",
          "pids cgroup", "Fashion-MNIST", "torch imports under the 6144 MiB memory limit")


def doctor(env=None, prefix=()):
    return subprocess.run([*prefix, sys.executable, "-m", "grader.cli", "doctor"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)


def test_on_this_machine_every_check_passes():
    proc = doctor()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    for check in CHECKS:
        assert any(line.startswith("ok") and check in line for line in lines), check
    assert not any(line.startswith(("FAIL", "warn")) for line in lines), proc.stdout
    assert lines[-1].startswith("grading is possible here, isolated by")


def test_without_bubblewrap_the_namespace_check_fails_with_its_fix():
    proc = doctor(without_bubblewrap(), WITHOUT_LANDLOCK)
    assert proc.returncode == 2
    lines = proc.stdout.splitlines()
    failed = lines.index("FAIL  bubblewrap namespaces: bubblewrap (bwrap) is not on PATH")
    assert lines[failed + 1].strip() == "fix: apt-get install bubblewrap"
    fallback = next(line for line in lines if "unprivileged fallback" in line)
    assert fallback.startswith("FAIL") and "no Landlock" in fallback
    assert lines[-1].startswith("grading is not possible here")
