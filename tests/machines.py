"""Other machines, simulated on this one, for the isolation tests:

- `without_bubblewrap(env)`: a PATH on which `bwrap` is not found;
- `WITHOUT_LANDLOCK`: a command prefix that runs a program as on a kernel (or in a
  container) without Landlock: a seccomp filter answers its system calls with ENOSYS,
  so the unprivileged fallback is unavailable whatever this machine offers;
- `fallback_machine(...)`: a command prefix that runs a program as root in a private
  mount namespace where /root may be entered by other users (so that another uid can
  run an interpreter installed under /root, as on a machine whose Python lives in
  /usr): the unprivileged fallback can then be tried for real.
"""

import ctypes
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
WITHOUT_LANDLOCK = [sys.executable, str(HERE / "machines.py"), "--without-landlock"]
LANDLOCK_CALLS = (444, 445, 446)  # the same numbers on x86_64 and aarch64


def without_bubblewrap(env=None):
    """`env` with a PATH that holds no bwrap (every other command softgrade runs is
    found by an absolute path or is not needed)."""
    empty = HERE / "no-commands"
    empty.mkdir(exist_ok=True)
    return {**(env or os.environ), "PATH": str(empty)}


def _deny_landlock():
    """Install a seccomp filter that fails Landlock's calls with ENOSYS, for this process
    and everything it starts."""
    ld_nr, jge, jgt, ret = 0x20, 0x35, 0x25, 0x06
    errno_enosys, allow = 0x00050000 | 38, 0x7FFF0000
    program = [(ld_nr, 0, 0, 0), (jge, 0, 2, LANDLOCK_CALLS[0]), (jgt, 1, 0, LANDLOCK_CALLS[-1]),
               (ret, 0, 0, errno_enosys), (ret, 0, 0, allow)]

    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                    ("k", ctypes.c_uint32)]

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(Filter))]

    instructions = (Filter * len(program))(*[Filter(*i) for i in program])
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(38, 1, 0, 0, 0) == 0  # no_new_privs, which a filter needs
    assert libc.prctl(22, 2, ctypes.byref(Program(len(program), instructions)), 0, 0) == 0


def fallback_machine_available():
    """Why the fallback cannot be simulated here, or None."""
    from grader.confinement import landlock_abi

    if os.geteuid() != 0:
        return "needs root"
    if shutil.which("unshare") is None:
        return "needs unshare(1)"
    if not landlock_abi():
        return "needs a kernel with Landlock"
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                           capture_output=True)
    return None if probe.returncode == 0 else "cannot make a mount namespace here"


def fallback_machine(command, data_dir):
    """`command` (argv) run as on a machine where only the unprivileged fallback works:
    bubblewrap off PATH, the interpreter (here perhaps under /root) runnable by other
    uids, and Fashion-MNIST at `data_dir` (readable by other users, SOFTGRADE_DATA)."""
    interpreter = Path(sys.base_prefix).resolve()
    kept = [interpreter.relative_to("/root")] if interpreter.is_relative_to("/root") else []
    binds = "".join(f'mkdir -p "/root/{path}"\nmount --bind "$real/{path}" "/root/{path}"\n'
                    for path in kept)
    real = Path(data_dir) / "real-root"  # where the real /root stays visible
    script = (f"set -e\nreal={real}\nmkdir -p $real\nmount --bind /root \"$real\"\n"
              "mount -t tmpfs -o mode=0711 tmpfs /root\n" + binds
              + f'exec env PATH={without_bubblewrap()["PATH"]} SOFTGRADE_DATA={data_dir} "$@"\n')
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *command]


def readable_data_copy():
    """A folder (for SOFTGRADE_DATA) holding a copy of Fashion-MNIST's raw files that
    other users may read (the grader's own may be 0600 in root's cache); the caller
    removes it."""
    from solutions.data_files import find_fashion_mnist, raw_dir

    folder = Path(tempfile.mkdtemp(prefix="softgrade-test-data-"))
    target = raw_dir(folder)
    target.mkdir(parents=True)
    for path in raw_dir(find_fashion_mnist(download=False)).iterdir():
        shutil.copyfile(path, target / path.name)
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return folder


if __name__ == "__main__" and sys.argv[1] == "--without-landlock":
    _deny_landlock()
    os.execv(sys.argv[2], sys.argv[2:])
