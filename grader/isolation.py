"""Whether a submission can be isolated on this machine, and the proof for each child.

Grading fails closed: a submission's code runs only where isolation is proven here.
Two modes, the first that passes every check wins (`choose_isolation`):

1. namespaces: bubblewrap (no network, private pids and files, no capabilities);
2. unprivileged: where namespaces are blocked (Docker's default seccomp profile, as on
   Gradescope; Ubuntu 24.04's AppArmor), a uid of the child's own, Landlock and a
   seccomp filter (confinement.py), with the grader's files unreadable to it.

Each is tried once per grader process with a short probe child (no torch), and then
every child of a grading runs the same probe (isolation_probe.py) before any of the
submission's cells: it cannot read the hidden tests, the reference solution, the source
notebook or the repository's other copies of the answers (the example reference, .git);
it cannot write outside its scratch nor leave its pids cgroup; it cannot reach the
network; it cannot signal or trace the grader; it holds no privilege. What the grader
can see from outside it confirms itself: no file the child tried to leave appeared, no
connection or datagram reached the grader's loopback ports, and /proc shows the child's
uid, capabilities, no_new_privs, seccomp mode and namespaces as the mode promises.

The probe tries the real files rather than canaries beside them: it proves exactly
what matters, and nothing is written into the grader's tree, which may be read-only.

Nothing passes: `softgrade grade` and `grade-batch` exit 2 with one line naming what is
missing and its fix (NotIsolated); `softgrade doctor` prints every check. Only
--unsafe-no-sandbox grades anyway, and every report then says "not isolated".
"""

import functools
import json
import os
import secrets
import select
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import confinement

ROOT = Path(__file__).resolve().parents[1]
PROBE_SCRIPT = "isolation_probe.py"
NOT_ISOLATED = "not isolated"
UNSAFE_WARNING = (f"{NOT_ISOLATED}: graded with --unsafe-no-sandbox, so the submission's code "
                  "could read the hidden tests and the reference solution and change this "
                  "report; do not trust this score")
PROBE_SECONDS = 60.0


class CannotGrade(BaseException):
    """This machine or the grader's configuration is at fault, never the student: the
    grading stops (exit 2 and one line; in a batch an error row that is not cached, so
    the next run grades it again). A BaseException, like KeyboardInterrupt, so that the
    `except Exception` of the paths that judge cannot take it for a verdict."""


class NotIsolated(CannotGrade):
    """This machine cannot isolate a submission (the message is one line with the fix)."""


@dataclass
class Check:
    """One thing `softgrade doctor` reports and a grading requires."""

    title: str
    """What is checked, for people."""
    passed: bool
    """Whether it holds here."""
    detail: str = ""
    """What was seen."""
    fix: str = ""
    """The command (or step) that makes it pass; empty when it passed."""


@dataclass
class Isolation:
    """How this grader process fences in the children it starts."""

    mode: str
    """"namespaces", "unprivileged" or "none" (only with --unsafe-no-sandbox)."""
    process_limit: bool = False
    """A pids cgroup bounds each child's processes and lets the grader kill all of them."""
    warnings: list[str] = field(default_factory=list)
    """What the reports should say about the isolation."""
    protected: tuple = ()
    """Extra files a child must not read: the source notebook, the course secret's file."""

    @property
    def namespaces(self):
        return self.mode == "namespaces"

    @property
    def isolated(self):
        return self.mode != "none"

    @property
    def description(self):
        """For the reports."""
        return DESCRIPTIONS[self.mode]


DESCRIPTIONS = {"namespaces": "bubblewrap namespaces",
                "unprivileged": "unprivileged uid with Landlock and seccomp",
                "none": NOT_ISOLATED}
MODE_TITLES = {"namespaces": "bubblewrap namespaces", "unprivileged": "unprivileged fallback"}
CHECK_TITLES = {
    "unreadable": "hidden tests, reference, source notebook and .git unreadable",
    "unwritable": "nothing writable outside its scratch, not even its cgroup",
    "no_network": "no network",
    "no_signal": "cannot signal or trace the grader",
    "unprivileged": "unprivileged (uid not 0, no capabilities)",
    "usable": "scratch writable, data set readable",
}
_READ_SAMPLE = 200  # files of the protected folders the probe tries (a few ms)


# ---------------------------------------------------------------- what is protected


def protected_files(extra=()):
    """Files whose content a submission must never see: the grader (hidden tests), the
    reference solution, the source notebooks, the example reference, the tests, the course
    secret of a Gradescope zip and git's copy of all of them, plus `extra` (a source
    notebook elsewhere, a secret file)."""
    folders = [ROOT / "grader", ROOT / "grader" / "hidden", ROOT / "solutions", ROOT / "tests",
               ROOT / "examples" / "submissions", *sorted((ROOT / "assignments").glob("*"))]
    from .secret import ZIP_NAME

    files = [str(path) for path in map(Path, extra)] + [str(ROOT / ZIP_NAME)]
    for folder in folders:
        if folder.is_dir():
            files += sorted(str(p) for p in folder.iterdir() if p.is_file())
    return (files + _git_files(ROOT / ".git"))[:_READ_SAMPLE]


def _git_files(git):
    """git's HEAD, index, config and packs, for a clone and for a worktree (whose .git is a
    file naming its folder inside the main clone's .git)."""
    if git.is_file():
        folder = Path(git.read_text().removeprefix("gitdir:").strip())
        common = folder / (folder / "commondir").read_text().strip() \
            if (folder / "commondir").is_file() else folder
        return [str(git)] + _git_files(folder) + _git_files(common.resolve())
    names = ("HEAD", "index", "config", "packed-refs")
    files = [git / name for name in names if (git / name).is_file()]
    files += sorted((git / "objects" / "pack").glob("*"))[:4]
    return [str(path) for path in files]


def write_targets(workdir):
    """Folders the child must not create a file in, as the grader sees them."""
    places = [ROOT, ROOT / "grader", ROOT / "grader" / "hidden", ROOT / "solutions",
              Path.cwd(), Path(workdir), Path(workdir).parent, Path(tempfile.gettempdir()),
              Path("/tmp"), Path("/var/tmp"), Path("/dev/shm"), Path.home()]
    return sorted({str(place) for place in places if place.is_dir()})


def files_not_to_write(extra=()):
    """Existing files the child must not open for writing: the cgroup file a process
    writes its pid into to leave its pids cgroup, and the source notebooks."""
    from .sandbox import CGROUP_ROOTS

    files = [str(root / "cgroup.procs") for root in CGROUP_ROOTS]
    files += [str(path) for path in extra]
    return [path for path in files if os.path.exists(path)]


# ---------------------------------------------------------------- the grader's listeners


class _Listeners:
    """A TCP and a UDP port on the grader's loopback that no child may reach."""

    def __init__(self):
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(8)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        for sock in (self.tcp, self.udp):
            sock.setblocking(False)
            os.set_inheritable(sock.fileno(), False)

    def ports(self):
        return self.tcp.getsockname()[1], self.udp.getsockname()[1]

    def arrivals(self):
        """What reached the ports since the last call (nothing, when isolated)."""
        seen = []
        while True:
            try:
                connection, peer = self.tcp.accept()
            except BlockingIOError:
                break
            connection.close()
            seen.append(f"a TCP connection from {peer[0]}")
        while True:
            try:
                self.udp.recv(64)
            except BlockingIOError:
                break
            seen.append("a UDP datagram")
        return seen


@functools.cache
def _listeners():
    return _Listeners()


# ---------------------------------------------------------------- the probe


def probe_plan(isolation, workdir, data_dir):
    """What a child checks on itself (isolation_probe.probe), as the child sees paths."""
    tcp_port, udp_port = _listeners().ports()
    pids = [os.getpid()] + ([os.getppid()] if os.getppid() > 1 else [])
    return {"read": protected_files(isolation.protected),
            "modules": ["grader", "solutions"],
            "write": write_targets(workdir),
            "write_files": files_not_to_write(isolation.protected),
            "marker": f".softgrade-probe-{secrets.token_hex(8)}",
            "tcp_port": tcp_port, "udp_port": udp_port,
            "grader_pids": pids, "grader_pid_namespace": _namespace(os.getpid(), "pid"),
            "data_dir": data_dir}


def confirm(isolation, plan, result, pid):
    """{check: Check} from the child's own probe `result`, each confirmed from outside
    where the grader can see it (pid: the child's Python process)."""
    checks = {}
    for name, title in CHECK_TITLES.items():
        passed, detail = result.get(name, [False, "the probe did not report it"])
        checks[name] = Check(title, bool(passed), str(detail))
    seen = _left_markers(plan)
    if seen and checks["unwritable"].passed:
        checks["unwritable"] = Check(CHECK_TITLES["unwritable"], False,
                                     f"a file it made appeared in {', '.join(seen)}")
    elif checks["unwritable"].passed:
        checks["unwritable"].detail = "no file it tried to leave appeared outside its scratch"
    arrived = _listeners().arrivals()
    if arrived:
        checks["no_network"] = Check(CHECK_TITLES["no_network"], False,
                                     f"{' and '.join(arrived)} reached the grader")
    elif checks["no_network"].passed:
        checks["no_network"].detail += "; nothing reached the grader's ports"
    for name, problem in _outside_problems(isolation, pid).items():
        checks[name] = Check(CHECK_TITLES[name], False, problem)
    for name, check in checks.items():
        if not check.passed:
            check.fix = fix_for(isolation.mode, name, check.detail)
    return checks


def _left_markers(plan):
    """The folders where the child's marker file is visible to the grader (removed)."""
    seen = []
    for folder in plan["write"]:
        marker = Path(folder) / plan["marker"]
        if marker.exists():
            marker.unlink(missing_ok=True)
            seen.append(folder)
    return seen


def _namespace(pid, kind):
    try:
        return os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    except OSError:
        return None


def _proc_status(pid):
    with open(f"/proc/{pid}/status") as file:
        return {key: value.strip() for key, value in
                (line.split(":", 1) for line in file if ":" in line)}


def _outside_problems(isolation, pid):
    """{check: what /proc shows against it}, for the child's Python process `pid`."""
    try:
        status = _proc_status(pid)
    except OSError:
        return {"unprivileged": "the child's process vanished before it could be inspected"}
    problems = {}
    if int(status.get("CapEff", "0"), 16) or int(status.get("CapPrm", "0"), 16):
        problems["unprivileged"] = f"/proc shows capabilities (CapEff {status['CapEff']})"
    if isolation.namespaces:
        for kind, check in (("pid", "no_signal"), ("net", "no_network"), ("mnt", "unreadable")):
            if _namespace(pid, kind) == _namespace(os.getpid(), kind):
                problems[check] = f"/proc shows it in the grader's {kind} namespace"
        return problems
    uids = [int(uid) for uid in status.get("Uid", "0").split()]
    expected = confinement.child_uid(pid) if os.geteuid() == 0 else os.geteuid()
    if 0 in uids or set(uids) != {expected}:
        problems["unprivileged"] = f"/proc shows uids {uids}, not {expected}"
    if status.get("NoNewPrivs") != "1":
        problems["unprivileged"] = "/proc shows no_new_privs off"
    if confinement.seccomp_supported() and status.get("Seccomp") != "2":
        problems["no_network"] = "/proc shows no seccomp filter"
    return problems


# ---------------------------------------------------------------- fixes


def fix_for(mode, check, detail=""):
    """The step that makes a failed check pass, for people."""
    if check == "usable" and "data set" in detail:
        return ("put Fashion-MNIST where other users can read it: export "
                "SOFTGRADE_DATA=/var/lib/softgrade-data, run scripts/install.sh as root and "
                "keep SOFTGRADE_DATA set when grading")
    if check == "unreadable":
        if "import" in detail:
            return "install softgrade editable (pip install -e .), never into site-packages"
        return ("run scripts/install.sh as root (it makes the grader's files unreadable to "
                "other users), and keep the checkout out of /usr and the interpreter's folders")
    if mode == "unprivileged" and check in ("unwritable", "no_network", "no_signal"):
        return ("use a kernel with Landlock (Linux 6.12 or newer confines signals too) and "
                "run the grader as root, or make bubblewrap work")
    return "report this to softgrade's maintainers: `softgrade doctor` shows what was seen"


def _bubblewrap_fix(stderr):
    apparmor = Path("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
    if apparmor.is_file() and apparmor.read_text().strip() == "1":
        return "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"
    limit = Path("/proc/sys/user/max_user_namespaces")
    if limit.is_file() and limit.read_text().strip() == "0":
        return "sudo sysctl -w user.max_user_namespaces=15000"
    if Path("/.dockerenv").exists():
        return ("start the container with --security-opt seccomp=unconfined "
                "--security-opt apparmor=unconfined, or use the unprivileged fallback")
    return f"make `bwrap --unshare-all true` work here ({stderr})"


# ---------------------------------------------------------------- prerequisites


def namespaces_prerequisite():
    """Check of bubblewrap itself: installed, and able to make its namespaces here."""
    from .sandbox import bubblewrap_attempt

    title = MODE_TITLES["namespaces"]
    if shutil.which("bwrap") is None:
        return Check(title, False, "bubblewrap (bwrap) is not on PATH",
                     "apt-get install bubblewrap")
    works, stderr = bubblewrap_attempt()
    if not works:
        return Check(title, False, f"bwrap cannot create namespaces here: {stderr}",
                     _bubblewrap_fix(stderr))
    return Check(title, True, shutil.which("bwrap"))


def unprivileged_prerequisite():
    """Check of the fallback's parts: Landlock, and an interpreter the child's uid can run."""
    title = MODE_TITLES["unprivileged"]
    abi = confinement.landlock_abi()
    if not abi:
        return Check(title, False, "this kernel offers no Landlock (or a seccomp profile "
                     "forbids it)", "use Linux 5.13 or newer with landlock in its lsm= list, "
                     "or make bubblewrap work")
    blocked = _unsearchable_ancestor(Path(sys.executable).resolve())
    if os.geteuid() == 0 and blocked:
        return Check(title, False, f"another uid cannot run {Path(sys.executable).resolve()}: "
                     f"{blocked} is not searchable by other users",
                     f"install with a Python other users can run (PYTHON=/usr/bin/python3 "
                     f"scripts/install.sh in a fresh checkout), or chmod o+x {blocked}")
    uid = "a uid of its own per child" if os.geteuid() == 0 else f"uid {os.geteuid()}"
    return Check(title, True, f"Landlock ABI {abi}, {uid}")


def _unsearchable_ancestor(path):
    """The first folder above `path` that other users may not enter, if any."""
    for folder in reversed(path.parents):
        try:
            if not folder.stat().st_mode & 0o001:
                return folder
        except OSError:
            return folder
    return None


PREREQUISITES = {"namespaces": namespaces_prerequisite,
                 "unprivileged": unprivileged_prerequisite}


# ---------------------------------------------------------------- trying a mode


def trial(mode, data_dir=None, protected=()):
    """[Check] of one mode here: its prerequisite, then a short probe child under it."""
    prerequisite = PREREQUISITES[mode]()
    if not prerequisite.passed:
        return [prerequisite]
    isolation = Isolation(mode, protected=tuple(protected))
    try:
        checks = _probe_child(isolation, data_dir)
    except (OSError, subprocess.SubprocessError, ValueError) as err:
        return [prerequisite, Check("probe child", False, f"it could not run: {err}",
                                    fix_for(mode, "start"))]
    return [prerequisite, *checks.values()]


def _probe_child(isolation, data_dir):
    """confirm()'s checks of a probe child started under `isolation`. It prints its
    result, then waits for its stdin to close, so that its /proc can be read."""
    from .sandbox import DATA_INSIDE, Limits, prepare_workdir, python_pid, start_child

    workdir = Path(tempfile.mkdtemp(prefix="softgrade-probe-"))
    process = None
    try:
        prepare_workdir(workdir, [PROBE_SCRIPT])
        inside_data = (DATA_INSIDE if isolation.namespaces else str(data_dir)) \
            if data_dir else None
        plan = probe_plan(isolation, workdir, inside_data)
        # The plan travels as an argument: the probe child has no request pipe.
        process = start_child(isolation, workdir, [PROBE_SCRIPT, json.dumps(plan)],
                              data_dir=data_dir, limits=Limits(), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        ready, _, _ = select.select([process.stdout], [], [], PROBE_SECONDS)
        line = process.stdout.readline() if ready else b""
        if not line:
            process.kill()
            _, errors = process.communicate()
            tail = errors.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise ValueError(f"exit code {process.returncode}: {tail[0][:200]}")
        return confirm(isolation, plan, json.loads(line), python_pid(process, PROBE_SCRIPT))
    finally:
        if process is not None:
            process.kill()
            process.wait()
            for pipe in (process.stdin, process.stdout, process.stderr):
                pipe.close()
        shutil.rmtree(workdir, ignore_errors=True)


# ---------------------------------------------------------------- the decision


def mode_candidates(use_namespaces):
    return (["namespaces"] if use_namespaces else []) + ["unprivileged"]


@functools.cache
def choose_isolation(use_namespaces=True, unsafe=False, data_dir=None, protected=()):
    """The Isolation of this grader process's children; NotIsolated when no mode passes.

    `use_namespaces` False (--no-namespaces, for debugging) only leaves bubblewrap out:
    the fallback must still pass every check. `unsafe` (--unsafe-no-sandbox) grades with
    no isolation, and says so in every report.
    """
    from .sandbox import pids_cgroup_root

    process_limit = pids_cgroup_root() is not None
    warnings = [] if process_limit else [
        "no pids cgroup here: the number of processes a submission starts is not bounded"]
    if unsafe:
        return Isolation("none", process_limit, [UNSAFE_WARNING, *warnings], protected)
    failures = []
    for mode in mode_candidates(use_namespaces):
        checks = trial(mode, data_dir, protected)
        failed = next((check for check in checks if not check.passed), None)
        if failed is None:
            return Isolation(mode, process_limit, warnings, protected)
        failures.append(f"{MODE_TITLES[mode]}: {failed.detail} (fix: {failed.fix})")
    if not use_namespaces:
        failures.insert(0, "--no-namespaces leaves bubblewrap out")
    raise NotIsolated(
        "cannot isolate submissions on this machine; " + "; ".join(failures)
        + "; `softgrade doctor` shows every check, --unsafe-no-sandbox grades without isolation")


def verify_child(isolation, plan, result, pid):
    """NotIsolated unless every check of one child's probe passed."""
    failed = [(name, check) for name, check in confirm(isolation, plan, result, pid).items()
              if not check.passed]
    if failed:
        name, check = failed[0]
        raise NotIsolated(f"a sandboxed process failed its isolation check "
                          f"({check.title}): {check.detail} (fix: {check.fix})")
