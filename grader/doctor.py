"""`softgrade doctor`: can this machine grade? The command to run first on a new machine,
a Gradescope image or a cluster node.

Each isolation mode is tried exactly as `grade` tries it (isolation.trial: the same
probe child, the same checks), then what grading needs besides: the pids cgroup, the
CPU-time accounting cgroup where there is one, Fashion-MNIST, and torch under the
memory limit. Every line says ok, FAIL (grading cannot go on), warn (it goes on,
less fenced in) or -- (not needed here), and a failure is followed by its fix.
"""

import resource
import subprocess
import sys
from pathlib import Path

from .isolation import DESCRIPTIONS, MODE_TITLES, Check, mode_candidates, trial

USER_ERRORS = (OSError,)

DESCRIPTION = """\
Check that submissions can be graded here, and print each check with ok or FAIL and
the command that fixes a failure: bubblewrap namespaces, the unprivileged fallback
(each proven by a probe process: the grader's files unreadable, nothing writable
outside its scratch, no network, no signal to the grader, no privilege), the pids
cgroup, the CPU-time accounting cgroup, Fashion-MNIST, and torch under the memory
limit. Exit code 0 when grading is possible, 2 otherwise."""


def add_arguments(parser):
    from .grade import DEFAULT_SOURCE
    from .secret import add_secret_argument

    parser.add_argument("--source", default=str(DEFAULT_SOURCE), metavar="NOTEBOOK",
                        help="the instructor's source notebook, which submissions must not "
                             "read (default: the bundled assignment)")
    add_secret_argument(parser)


def data_check():
    """(Check, the raw data folder or None)."""
    from solutions.data_files import ENV_VAR, INSTALL_HINT, find_fashion_mnist, raw_dir

    try:
        folder = raw_dir(find_fashion_mnist(download=False))
    except FileNotFoundError as err:
        return Check("Fashion-MNIST", False, str(err),
                     f"{INSTALL_HINT}, or set {ENV_VAR} to a folder holding it"), None
    return Check("Fashion-MNIST", True, str(folder)), folder


def torch_check():
    """torch, IPython and matplotlib import under the memory limit of a grading."""
    from .sandbox import Limits

    limit = Limits().memory_mb  # what gradings use
    title = f"torch imports under the {limit} MiB memory limit"

    def limit_memory():
        resource.setrlimit(resource.RLIMIT_AS, (limit << 20,) * 2)

    probe = subprocess.run([sys.executable, "-I", "-c", "import torch, IPython, matplotlib"],
                           capture_output=True, text=True, preexec_fn=limit_memory, timeout=300)
    if probe.returncode != 0:
        said = probe.stderr.strip().splitlines()[-1:] or [f"exit code {probe.returncode}"]
        return Check(title, False, said[0][:200], "install the CPU-only torch wheel, or raise "
                     "Limits.memory_mb in grader/sandbox.py")
    return Check(title, True, "")


def cgroup_checks():
    from .sandbox import CGROUP_ROOTS, pids_cgroup_root

    pids = pids_cgroup_root()
    yield Check("pids cgroup", pids is not None,
                str(pids) if pids else "none this grader may create: a fork bomb is bounded "
                "only by the machine", "run the grader as root on a machine with a cgroup v1 "
                "or v2 pids controller")
    accounting = [root / "cpuacct.usage" for root in (Path("/sys/fs/cgroup/cpuacct"),)] + \
        [root / "cpu.stat" for root in CGROUP_ROOTS[1:]]
    found = next((str(path.parent) for path in accounting if path.is_file()), None)
    yield Check("CPU-time accounting cgroup", found is not None, found or "absent (optional)")


def status(check, blocking, needed=True):
    if check.passed:
        return "ok"
    if not needed:
        return "--"
    return "FAIL" if blocking else "warn"


def show(check, label, indent=""):
    detail = f": {check.detail}" if check.detail else ""
    print(f"{label:<5} {indent}{check.title}{detail}")
    if not check.passed and check.fix:
        print(f"{'':<5} {indent}  fix: {check.fix}")


def run(args):
    data, data_dir = data_check()
    from .grade import protected_paths

    trials = {mode: trial(mode, data_dir, protected_paths(args.source, args.secret_file))
              for mode in mode_candidates(use_namespaces=True)}
    usable = [mode for mode, checks in trials.items() if all(c.passed for c in checks)]
    for mode, checks in trials.items():
        needed = not usable or mode == usable[0]
        for index, check in enumerate(checks):
            show(check, status(check, True, needed), "" if index == 0 else "  ")
        if not needed and not all(c.passed for c in checks):
            print(f"{'':<5}   (not needed here: grading uses the {MODE_TITLES[usable[0]]})")
    for check in cgroup_checks():
        show(check, status(check, False, check.title.startswith("pids")))
    torch = torch_check()
    for check in (data, torch):
        show(check, status(check, True))
    if usable and data.passed and torch.passed:
        print(f"grading is possible here, isolated by {DESCRIPTIONS[usable[0]]}")
        return 0
    print("grading is not possible here: fix the FAIL lines above (or grade with "
          "--unsafe-no-sandbox, which isolates nothing)")
    return 2
