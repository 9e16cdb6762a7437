"""The CPU time a submission's processes spend, read by the grader from the kernel: the
budgets time rounds of calls with it (budgets.py), and the child is never asked.

Where it is read, best first:
  1. a cgroup v1 cpuacct group made for the child (cpuacct.usage, in ns);
  2. cgroup v2: usage_usec of cpu.stat, of the child's pids cgroup when that is a v2
     one (a process lives in one v2 cgroup only), else of a group made for it;
  3. /proc: user + system time, and that of reaped children, summed over the child's
     process tree, in clock ticks (10 ms on most kernels).
A cgroup is joined between fork and exec, so every thread and process the child ever
starts is in it, and the time of those that exited stays counted. The /proc sum sees
an exited process only through the parent that reaped it: inside bubblewrap's pid
namespace every orphan is reaped by the sandbox's own init, so nothing escapes; without
it a process that double-forks and exits before the next reading is lost, and the
clock says it is incomplete (budgets.py then also takes the wall clock).
"""

import itertools
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

CPUACCT_ROOT = Path("/sys/fs/cgroup/cpuacct")
_IDS = itertools.count()


@dataclass
class Round:
    """What the grader measured around one request of timed calls."""

    cpu: float
    """CPU seconds the child's processes used meanwhile, read from the kernel."""
    wall: float
    """Seconds on the grader's clock from sending the request to reading the reply."""
    resolution: float
    """The CPU clock's unit in seconds (a round must last many of them)."""
    counts_everything: bool
    """Whether `cpu` covers all the work: a complete clock, and no GPU doing part of it."""
    results: list
    """Each call's result, as the protocol delivered it."""

    @property
    def seconds(self):
        """The round's cost: its CPU time, or where that may miss work, the longer of the
        CPU and the wall time (other processes only ever add to the wall time)."""
        return self.cpu if self.counts_everything else max(self.cpu, self.wall)


@dataclass
class CpuClock:
    """Where one child's CPU time is read."""

    source: str
    """'cgroup v1 cpuacct', 'cgroup v2' or '/proc'."""
    cgroup: Path | None
    """The cgroup directory read; None for /proc."""
    resolution: float
    """Seconds per unit of the source."""
    complete: bool
    """Whether it counts every process the child starts, even one that exits unreaped."""
    owned: bool = False
    """Made for this child: the child joins it before exec, close() removes it."""

    def join(self):
        """Put the calling process in the clock's cgroup (runs in the child before exec).
        A failure is left to verified(), which then falls back to /proc."""
        if self.owned:
            try:
                (self.cgroup / "cgroup.procs").write_text("0")
            except OSError:
                pass

    def verified(self, pid):
        """This clock if process `pid` is in its cgroup, else (the join failed) a /proc one."""
        if not self.owned or str(pid) in (self.cgroup / "cgroup.procs").read_text().split():
            return self
        self.close()
        return proc_clock(self.complete)

    def seconds(self, pid):
        """CPU seconds used so far by the process `pid` started as and all it started."""
        if self.source == "cgroup v1 cpuacct":
            return int((self.cgroup / "cpuacct.usage").read_text()) * 1e-9
        if self.source == "cgroup v2":
            for line in (self.cgroup / "cpu.stat").read_text().splitlines():
                key, value = line.split()
                if key == "usage_usec":
                    return int(value) * 1e-6
            raise OSError(f"no usage_usec in {self.cgroup / 'cpu.stat'}")
        return _process_tree_seconds(pid)

    def close(self):
        """Remove a cgroup made for the child, killing whatever is still in it."""
        if self.owned:
            _empty_and_remove(self.cgroup)
            self.owned = False


def clock_for_child(pids_cgroup=None, pid_namespace=False):
    """The best clock for a child about to be started: `pids_cgroup` is the directory of
    the pids cgroup it will join (or None), `pid_namespace` whether bubblewrap gives it
    a pid namespace of its own."""
    cgroup = _new_cgroup(CPUACCT_ROOT, "cpuacct.usage")
    if cgroup is not None:
        return CpuClock("cgroup v1 cpuacct", cgroup, 1e-9, True, owned=True)
    if pids_cgroup is not None and (Path(pids_cgroup) / "cpu.stat").is_file():
        return CpuClock("cgroup v2", Path(pids_cgroup), 1e-6, True)
    # A v2 pids cgroup without cpu.stat (an old kernel) rules out a v2 group of our own:
    # joining one would take the child out of its pids cgroup.
    if pids_cgroup is None or not _is_cgroup2(pids_cgroup):
        for root in _cgroup2_roots():
            cgroup = _new_cgroup(root, "cpu.stat")
            if cgroup is not None:
                return CpuClock("cgroup v2", cgroup, 1e-6, True, owned=True)
    return proc_clock(pid_namespace)


def proc_clock(pid_namespace):
    return CpuClock("/proc", None, 1 / os.sysconf("SC_CLK_TCK"), complete=pid_namespace)


def _new_cgroup(root, usage_file):
    """A new cgroup under `root` that has `usage_file`, or None where none can be made.
    Groups left by graders that no longer run are removed first."""
    if not (root / "cgroup.procs").is_file():
        return None
    _remove_orphans(root)
    path = root / f"softgrade-{os.getpid()}-cpu{next(_IDS)}"
    try:
        path.mkdir()
    except OSError:
        return None
    if (path / usage_file).is_file():
        return path
    path.rmdir()
    return None


def _cgroup2_roots():
    """Mount points of cgroup v2, and the grader's own v2 cgroup under each (a delegated
    user may create groups there)."""
    own = ""
    try:
        own = next((line[3:] for line in Path("/proc/self/cgroup").read_text().splitlines()
                    if line.startswith("0::")), "").strip("/")
    except OSError:
        pass
    roots = []
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[2] == "cgroup2":
            mount = Path(fields[1])
            roots += [mount] + ([mount / own] if own else [])
    return roots


def _is_cgroup2(path):
    return any(Path(path).is_relative_to(root) for root in _cgroup2_roots())


_CLEANED = set()


def _remove_orphans(root):
    """Remove the cpu cgroups of graders that were killed (once per root and grader)."""
    if root in _CLEANED:
        return
    _CLEANED.add(root)
    for path in root.glob("softgrade-*-cpu*"):
        owner = path.name.split("-")[1]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            try:
                _empty_and_remove(path)
            except OSError:
                pass  # another grader is removing it too


def _empty_and_remove(path):
    for _ in range(100):  # a process may fork while we kill: look again until empty
        pids = [int(pid) for pid in (path / "cgroup.procs").read_text().split()]
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.01)
    for _ in range(50):  # a zombie still being reaped keeps the group busy a moment
        try:
            path.rmdir()
            return
        except OSError:
            time.sleep(0.01)
    path.rmdir()


def _process_tree_seconds(pid):
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue  # exited meanwhile: its parent's children_* count it once reaped
        total += times.user + times.system + times.children_user + times.children_system
    return total
