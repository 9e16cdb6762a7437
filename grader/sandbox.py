"""Where a submission is executed: a fresh child process per submission (and per
part after a crash), fenced in by layers that isolation.py has proven on this
machine before any of the submission's code runs (it fails closed otherwise).

Layers, outermost first:
  1. isolation, one of (isolation.py chooses, and probes every child):
     a. bubblewrap namespaces: no network, private pids, /tmp and working
        directory, a read-only view of only the interpreter, its packages and the
        system libraries: the grader's and the reference solution's files do not
        exist inside, and no capabilities;
     b. where namespaces are blocked, the unprivileged fallback (confinement.py): a
        uid of its own, Landlock (read only the interpreter, the system and the
        data; write only its scratch; no TCP), a seccomp filter (no socket but a
        UNIX one), no_new_privs;
  2. resource limits in the child (address space, CPU time, file size, no core
     dumps), a fixed thread count, a minimal environment;
  3. a pids cgroup where the grader may create one (root, cgroup v1 or v2): at most
     Limits.processes, so a fork bomb fails inside the sandbox, and every process
     the child started is killed with it, even one that left its process group;
  4. a wall clock per request and a kill of the whole process group.
The verdict never depends on the child's word: it only returns plain data (see
protocol.py), which the grader's hidden tests judge in the grader's process.
"""

import fcntl
import functools
import itertools
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from . import cpu_clock
from .confinement import DEVICES, READ_ONLY_SYSTEM, Confinement, FileAccess, interpreter_trees
from .isolation import PROBE_SCRIPT, CannotGrade, NotIsolated, choose_isolation, probe_plan, verify_child

NOBODY = 65534  # the child's uid inside bubblewrap's user namespace
HERE = Path(__file__).resolve().parent
CHILD_FILES = ("protocol.py", "sandbox_child.py", "scenarios.py", "watch.py", PROBE_SCRIPT)
INSIDE_DIR = "/submission"  # the harness's files, as the child sees them inside bubblewrap
TMP_BYTES = 256 << 20  # the child's private /tmp (its working directory and HOME)
DATA_INSIDE = "/data"  # the data directory, likewise
# What `import torch` says when the address-space limit stops it from mapping its libraries.
IMPORT_OUT_OF_MEMORY = ("failed to map segment", "std::bad_alloc", "cannot allocate memory")


class ChildTimeout(Exception):
    """The child did not answer within the wall clock; it has been killed."""


class ChildCrashed(Exception):
    """The child died or broke the protocol; it has been killed. The message says how."""


class LimitTooLow(CannotGrade):
    """The child could not even import torch under the memory limit: the grader's
    configuration is at fault, not the submission."""


@dataclass
class Limits:
    """Resources one child may use."""

    memory_mb: int = 6144
    """Address space (RLIMIT_AS). `import torch` of the CUDA-enabled wheel maps about
    3.5 GiB of address space before any work (the CPU-only wheel about 650 MiB)."""
    cpu_seconds: int = 600
    """CPU time over the child's whole life (RLIMIT_CPU)."""
    file_mb: int = 64
    """Largest file the child may write (RLIMIT_FSIZE), its captured output included."""
    processes: int = 64
    """Processes and threads the child and its descendants may hold at once (pids cgroup)."""
    load_seconds: float = 120.0
    """Wall clock for starting the child and running the submission's cells."""
    call_seconds: float = 60.0
    """Wall clock for one request, unless the request names its own."""


@functools.cache
def bubblewrap_attempt():
    """(whether bubblewrap can create its namespaces here, the last line it printed).
    Containers may forbid them (Docker's default seccomp profile, AppArmor)."""
    try:
        probe = subprocess.run(["bwrap", "--unshare-all", "--ro-bind", "/", "/", "--cap-drop",
                                "ALL", "--uid", str(NOBODY), "--gid", str(NOBODY), "true"],
                               capture_output=True, timeout=30)
    except OSError as err:
        return False, err.strerror
    said = probe.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
    return probe.returncode == 0, said[0][:200]


def bubblewrap_works():
    return bubblewrap_attempt()[0]


CGROUP_ROOTS = (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup"))  # v1, then v2


@functools.cache
def pids_cgroup_root():
    """A cgroup directory under which the grader may create pids cgroups, or None.
    Cgroups left behind by graders that were killed are removed on the way."""
    for root in CGROUP_ROOTS:
        if not (root / "cgroup.procs").is_file():
            continue
        probe = root / f"softgrade-probe-{os.getpid()}"
        try:
            probe.mkdir()
            try:
                if (probe / "pids.max").is_file():
                    remove_orphaned_cgroups(root)
                    return root
            finally:
                probe.rmdir()
        except OSError:
            continue
    return None


def remove_orphaned_cgroups(root):
    """Kill and remove the cgroups of grader processes that no longer exist."""
    for path in root.glob("softgrade-*-*"):
        owner = path.name.split("-")[1]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            try:
                PidsCgroup.at(path).kill_all()
            except OSError:
                pass  # another grader is removing it too


class PidsCgroup:
    """A pids cgroup for one child: it joins it between fork and exec, and so does every
    process it starts (setsid or double fork included)."""

    def __init__(self, limit):
        self.path = pids_cgroup_root() / f"softgrade-{os.getpid()}-{next(_CGROUP_IDS)}"
        self.path.mkdir()
        (self.path / "pids.max").write_text(str(limit))

    @classmethod
    def at(cls, path):
        """The existing cgroup at `path`."""
        cgroup = cls.__new__(cls)
        cgroup.path = path
        return cgroup

    def join(self):
        """Put the calling process in the cgroup (runs in the child before exec)."""
        with open(self.path / "cgroup.procs", "w") as procs:
            procs.write("0")

    def kill_all(self):
        """SIGKILL every process in the cgroup, then remove it."""
        for _ in range(100):  # a process may fork while we kill: look again until empty
            pids = [int(pid) for pid in (self.path / "cgroup.procs").read_text().split()]
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.01)
        try:
            self.path.rmdir()
        except OSError:  # still a zombie being reaped: the kernel frees it with the last task
            time.sleep(0.1)
            self.path.rmdir()


_CGROUP_IDS = itertools.count()


def child_environment(home):
    # A fixed mmap threshold: glibc otherwise raises it (up to 32 MiB) after the first
    # large free, and later arrays of that size stay resident in the heap, invisible to
    # the peak-memory budgets.
    return {"PATH": "/usr/bin:/bin", "HOME": home, "LANG": "C.UTF-8", "MPLBACKEND": "Agg",
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1", "TMPDIR": home, "MALLOC_MMAP_THRESHOLD_": "131072"}


def bubblewrap_command(workdir, python_args, readonly_binds=()):
    """bwrap argv showing the child only the interpreter, its packages, system libraries
    and `readonly_binds` ((outside, inside) pairs, e.g. the data set)."""
    readonly = {"/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc/ld.so.cache", "/etc/localtime",
                sys.base_prefix, sys.prefix}
    argv = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--uid", str(NOBODY), "--gid", str(NOBODY), "--clearenv",
            # The empty /tmp first: binds made after it may live under /tmp (a clone in
            # /tmp). It is the child's only writable place, in memory and bounded: a
            # disk bomb fills TMP_BYTES, never the grader's disk.
            "--proc", "/proc", "--dev", "/dev", "--size", str(TMP_BYTES), "--tmpfs", "/tmp"]
    for path in sorted(readonly):
        argv += ["--ro-bind-try", path, path]
    for outside, inside in readonly_binds:
        argv += ["--ro-bind", str(outside), str(inside)]
    argv += ["--ro-bind", str(workdir), INSIDE_DIR, "--chdir", "/tmp"]
    for device in sorted(Path("/dev").glob("nvidia*")):  # the GPU, where there is one
        argv += ["--dev-bind", str(device), str(device)]
    for key, value in child_environment("/tmp").items():
        argv += ["--setenv", key, value]
    return argv + ["--", *python_args]


def _limit_child(limits, confinement, cgroup, clock=None):
    """Runs in the child between fork and exec."""
    if cgroup is not None:
        cgroup.join()
    if clock is not None:
        clock.join()
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb << 20,) * 2)
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds,) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_mb << 20,) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if confinement is not None:
        confinement.apply()


SCRATCH = "scratch"  # the child's working directory, HOME and TMPDIR without bubblewrap


def prepare_workdir(workdir, files):
    """Fill a fresh folder with the harness `files` and the child's empty scratch.

    Without namespaces the child (another uid) may list it (Python's imports do) and
    read the harness, but write only in its scratch: so it can neither change the
    harness nor replace the file its output goes to (by a link to a file only the
    grader may read, say)."""
    workdir.chmod(0o755)
    for name in files:
        shutil.copy(HERE / name, workdir / name)
        (workdir / name).chmod(0o644)
    (workdir / SCRATCH).mkdir(mode=0o700)


def fallback_access(workdir, data_dir):
    """What the unprivileged fallback lets a child read and write."""
    devices = [*DEVICES, *map(str, sorted(Path("/dev").glob("nvidia*")))]
    read = [*READ_ONLY_SYSTEM, *interpreter_trees(), str(workdir)]
    return FileAccess(read=read + ([str(data_dir)] if data_dir else []),
                      write=[str(workdir / SCRATCH)], devices=devices)


def start_child(isolation, workdir, script_args, data_dir=None, limits=None, cgroup=None,
                stdin=subprocess.DEVNULL, stdout=None, stderr=subprocess.STDOUT, pass_fds=(),
                clock=None):
    """Popen of `python -I -u SCRIPT ARGS...` (a file of `workdir`) under `isolation`,
    the limits and the cgroup; `data_dir` is shown to it (at DATA_INSIDE in namespaces)."""
    limits = limits or Limits()
    scratch = workdir / SCRATCH
    inside = INSIDE_DIR if isolation.namespaces else str(workdir)
    python_args = [sys.executable, "-I", "-u", f"{inside}/{script_args[0]}", *script_args[1:]]
    confinement, cwd = None, scratch
    if isolation.namespaces:
        binds = [(data_dir, DATA_INSIDE)] if data_dir else []
        argv, cwd = bubblewrap_command(workdir, python_args, binds), workdir
    elif isolation.mode == "unprivileged":
        argv = python_args
        confinement = Confinement(fallback_access(workdir, data_dir), scratch,
                                  drop_to_uid=os.geteuid() == 0)
    else:
        argv = python_args
    try:
        return subprocess.Popen(
            argv, stdin=stdin, stdout=stdout, stderr=stderr, pass_fds=pass_fds, cwd=cwd,
            start_new_session=True, env=child_environment(str(scratch)),
            preexec_fn=functools.partial(_limit_child, limits, confinement, cgroup, clock))
    finally:
        if confinement is not None:
            confinement.close()


def python_pid(process, script):
    """The pid of the Python process running `script` for the Popen `process` (under
    bubblewrap, a grandchild of it)."""
    import psutil

    root = psutil.Process(process.pid)
    for candidate in [root, *root.children(recursive=True)]:
        # bubblewrap's own processes carry the same command line as arguments
        try:
            if candidate.name() != "bwrap" and any(part.endswith(script)
                                                   for part in candidate.cmdline()):
                return candidate.pid
        except psutil.Error:
            continue
    raise ChildCrashed("the submission's Python process is gone")


class SubmissionProcess:
    """One running child holding a submission's definitions, answering requests."""

    def __init__(self, cells, limits=None, isolation=None, device="cpu", data_dir=None,
                 temp_root=None):
        self.cells = list(cells)
        self.temp_root = temp_root
        self.host_data_dir = data_dir
        self.limits = limits or Limits()
        self.device = device
        self.isolation = isolation or choose_isolation(data_dir=data_dir)
        self.process = None
        self.cgroup = None
        self.cpu_clock = None
        self.workdir = None
        self.cell_errors = []
        self.loaded = False
        self.last_reply = {}
        self.modified_inputs = set()
        self.reached = {}  # {function: torch functions its watched calls reached}
        """Functions seen modifying a tensor argument in place during a plain call (the
        child's report: advisory, see docs/attacks.md)."""

    @property
    def data_dir(self):
        """Where the child sees the data directory given to the constructor."""
        if self.host_data_dir is None:
            return None
        return DATA_INSIDE if self.isolation.namespaces else str(self.host_data_dir)

    # -- life cycle -------------------------------------------------------------------

    def start(self):
        """Start the child and run the cells; returns [{index, ename, message}] of failed cells."""
        self.launch()
        return self.load()

    def launch(self):
        """Start the child process without waiting for it.

        Call it from the thread that will outlive the child: bubblewrap's
        --die-with-parent kills the child when the thread that started it ends.
        """
        self.workdir = Path(tempfile.mkdtemp(prefix="softgrade-", dir=self.temp_root))
        prepare_workdir(self.workdir, CHILD_FILES)
        request_read, request_write = os.pipe()
        reply_read, reply_write = os.pipe()
        for fd in (request_write, reply_write):
            _widen_pipe(fd)
        self.output_path = self.workdir / "output.txt"
        self.cgroup = PidsCgroup(self.limits.processes) if self.isolation.process_limit else None
        self.cpu_clock = cpu_clock.clock_for_child(self.cgroup and self.cgroup.path,
                                                   self.isolation.namespaces)
        # The grader's alone: the child writes it through the descriptor it inherits.
        with open(self.output_path, "wb", opener=lambda path, flags: os.open(path, flags, 0o600)) \
                as output:
            self.process = start_child(
                self.isolation, self.workdir,
                ["sandbox_child.py", str(request_read), str(reply_write)],
                data_dir=self.host_data_dir, limits=self.limits, cgroup=self.cgroup,
                stdout=output, pass_fds=(request_read, reply_write), clock=self.cpu_clock)
        self.cpu_clock = self.cpu_clock.verified(self.process.pid)
        os.close(request_read)
        os.close(reply_write)
        self.requests = os.fdopen(request_write, "wb", buffering=0)
        self.replies = reply_read

    def load(self):
        """Prove the launched child isolated (NotIsolated otherwise), then run the
        submission's cells in it (may run in another thread)."""
        try:
            if self.isolation.isolated:
                self._verify_isolation()
            self.cell_errors = self._request("load", self.cells, timeout=self.limits.load_seconds)
        except ChildTimeout:
            raise ChildTimeout(f"the notebook's cells did not finish running within "
                               f"{self.limits.load_seconds:g} s") from None
        except ChildCrashed as crash:
            if any(sign in str(crash) for sign in IMPORT_OUT_OF_MEMORY):
                raise LimitTooLow(f"the memory limit of {self.limits.memory_mb} MiB is too low "
                                  f"to import torch here ({crash})") from None
            raise ChildCrashed(f"while running the notebook's cells, {crash}") from None
        self.loaded = True
        return self.cell_errors

    def _verify_isolation(self):
        """The probe of isolation.py, in this child, before any of the submission's code."""
        plan = probe_plan(self.isolation, self.workdir, self.data_dir)
        result = self._request("probe", [plan], timeout=self.limits.load_seconds)
        try:
            verify_child(self.isolation, plan, result, self._python_pid())
        except NotIsolated:
            self.close()
            raise

    def close(self):
        """Kill the child's whole process group and remove its files."""
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()
            self.requests.close()
            os.close(self.replies)
            self.process = None
        if self.cgroup is not None:
            self.cgroup.kill_all()
            self.cgroup = None
        if self.cpu_clock is not None:
            self.cpu_clock.close()
            self.cpu_clock = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def output(self, limit=10_000):
        """The tail of what the submission printed."""
        try:
            return self.output_path.read_bytes()[-limit:].decode(errors="replace")
        except OSError:
            return ""

    # -- requests (the Student interface of grader.hidden) -------------------------

    def call(self, name, *args, timeout=None, watch=False):
        """name(*args) in the child; with `watch`, the torch functions the call reached are
        added to self.reached[name] (the child's report: advisory)."""
        value = self._request("call", [name, list(args), watch], timeout=timeout)
        if self.last_reply.get("modified"):
            self.modified_inputs.add(name)
        reached = self.last_reply.get("reached")
        if watch and isinstance(reached, list):
            self.reached.setdefault(name, set()).update(str(r) for r in reached)
        return value

    def has(self, name):
        return self._request("has", [name])

    def set_global(self, name, value):
        self._request("set_global", [name, value])

    def scenario(self, name, *args, timeout=None):
        return self._request("scenario", [name, list(args)], timeout=timeout)

    def substitute(self, sources):
        """Replace notebook functions by {name: source of the book's version}; None as a
        source puts the student's own back."""
        self._request("substitute", [sources])

    def timed_round(self, kind, name, calls, timeout=None):
        """Run `name` (a 'call' or a 'scenario') once on each argument list in `calls`, all
        in one request. Returns a cpu_clock.Round: the CPU time the child's processes spent
        on it, read from the kernel (the child's word is never asked), the wall time here,
        and every call's result."""
        if self.process is None:
            raise ChildCrashed("the submission's process is not running")
        pid = self.process.pid
        cpu, start = self.cpu_clock.seconds(pid), time.perf_counter()
        # The child reads a round's inputs into buffers it reuses (fresh pages would cost
        # as much as the calls); peak_memory's must be fresh, and are subtracted.
        results = self._request("round", [kind, name, list(calls)], timeout=timeout,
                                pooled=True)
        wall = time.perf_counter() - start
        return cpu_clock.Round(self.cpu_clock.seconds(pid) - cpu, wall, self.cpu_clock.resolution,
                               self.cpu_clock.complete and self.device == "cpu", results)

    def peak_memory(self, kind, name, args, timeout=None):
        """(bytes, result): by how much one run of `name` on `args`, which travel in the
        same request, raised the child's resident memory, read by the grader from /proc
        (the kernel's high-water mark is reset just before the request and read just
        after), and the call's result. Bytes are None where this machine does not let
        the grader reset the mark."""
        pid = self._python_pid()
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
            before = _status_kib(pid, "VmRSS")
        except OSError:
            before = None
        result = self._request("round", [kind, name, [list(args)]], timeout=timeout)[0]
        return None if before is None else (_status_kib(pid, "VmHWM") - before) * 1024, result

    def _python_pid(self):
        """The pid of the Python process holding the submission."""
        return python_pid(self.process, "sandbox_child.py")

    def _request(self, op, args, timeout=None, pooled=False):
        # Imported here, not at the top: protocol imports torch, and processes are
        # launched before the grader imports it (see grade.py).
        from . import protocol
        from .hidden import StudentError  # the hidden tests' view of a student exception

        if self.process is None:
            raise ChildCrashed("the submission's process is not running")
        blobs = []
        header = {"op": op, "args": protocol.encode_value(args, blobs), "device": self.device,
                  "pooled": pooled}
        try:
            protocol.write_message(self.requests, header, blobs)
            reply, reply_blobs = protocol.read_message(
                _DeadlineReader(self.replies, time.monotonic() + (timeout or self.limits.call_seconds)))
            value = protocol.decode_value(reply.get("value"), reply_blobs)
            self.last_reply = reply
        except TimeoutError:
            self.close()
            raise ChildTimeout(f"no answer within {timeout or self.limits.call_seconds:g} s") from None
        except (EOFError, BrokenPipeError, protocol.ProtocolError, KeyError, TypeError,
                ValueError) as err:
            reason = self._death_reason(err)
            self.close()
            raise ChildCrashed(reason) from None
        if not reply.get("ok"):
            error = reply.get("error") or {}
            frames = error.get("frames")
            frames = [f for f in frames if isinstance(f, list) and len(f) == 2
                      and all(isinstance(x, str) for x in f)] if isinstance(frames, list) else []
            raise StudentError(str(error.get("ename", "Exception")), str(error.get("message", "")),
                               frames)
        return value

    def _death_reason(self, err):
        try:
            code = self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return f"the submission broke the grader's protocol ({err})"
        if code < 0:
            name = signal.Signals(-code).name
            hint = {"SIGKILL": " (memory or CPU limit?)", "SIGXCPU": " (CPU time limit)",
                    "SIGXFSZ": " (file size limit)", "SIGSEGV": ""}.get(name, "")
            return f"the submission's process was killed by {name}{hint}"
        tail = self.output().strip().splitlines()[-1:] or [""]
        return f"the submission's process exited with code {code}: {tail[0][:200]}"


PIPE_BYTES = 1 << 20


def _widen_pipe(fd):
    # Staged inputs reach 16 MiB: through the default 64 KiB pipe they cross in hundreds
    # of wake-ups of both processes, which on a busy machine cost half a second.
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, min(PIPE_BYTES, _pipe_max_size()))
    except OSError:
        pass


@functools.cache
def _pipe_max_size():
    try:
        return int(Path("/proc/sys/fs/pipe-max-size").read_text())
    except (OSError, ValueError):
        return 1 << 16


def _status_kib(pid, field):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise OSError(f"no {field} in /proc/{pid}/status")


class _DeadlineReader:
    """A readable over a pipe fd that raises TimeoutError at a deadline."""

    def __init__(self, fd, deadline):
        self.fd, self.deadline = fd, deadline

    def readinto(self, buffer):
        remaining = self.deadline - time.monotonic()
        if remaining <= 0 or not select.select([self.fd], [], [], remaining)[0]:
            raise TimeoutError
        return os.readv(self.fd, [buffer])
