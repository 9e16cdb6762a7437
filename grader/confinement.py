"""The unprivileged fallback's kernel layers, for machines where bubblewrap cannot make
namespaces (Docker's default seccomp profile, as on Gradescope; Ubuntu 24.04's AppArmor
restriction on unprivileged user namespaces). None of them needs a namespace:

- a uid of its own per child when the grader is root (FIRST_UID + the child's pid: no
  two living children share one, so they cannot signal, trace or read one another);
- Landlock (Linux >= 5.13): the child may read only the interpreter, its packages, the
  system's files, the data set and the harness, and write only its private scratch;
  from ABI 4 it can neither connect nor bind a TCP port, from ABI 6 it can neither
  signal nor reach an abstract UNIX socket outside its own domain;
- a seccomp filter: no socket but a UNIX one (so no UDP, raw or netlink either), no
  io_uring (whose requests would bypass the filter), no foreign-architecture calls;
- no_new_privs: no setuid program gives anything back.

Everything is prepared in the grader before fork (paths opened, structures built), so
that `Confinement.apply`, which runs between fork and exec, makes only system calls.
Whether all this holds is not assumed: isolation.py probes every child.
"""

import ctypes
import ctypes.util
import errno
import functools
import os
import platform
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

FIRST_UID = 0x70000000  # above systemd-nspawn's container range, below 2**31
"""A root grader's child gets uid FIRST_UID + its pid: unused by any account, unique
among living processes (pids are at most 2**22)."""

_LANDLOCK_CREATE_RULESET, _LANDLOCK_ADD_RULE, _LANDLOCK_RESTRICT_SELF = 444, 445, 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1
_PR_SET_PDEATHSIG, _PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 1, 38, 22, 2

# Landlock's file-system rights, by the ABI that introduced them.
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_ABI1_FS = (1 << 13) - 1  # execute ... make_sym
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1
_FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV  # all a file may get

READ_ONLY_SYSTEM = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", "/opt",
                    "/proc", "/sys")
"""What any Python with torch reads besides its own prefix (/opt: CUDA, conda)."""
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


@functools.cache
def _libc():
    return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def _syscall(number, *args):
    result = _libc().syscall(ctypes.c_long(number), *args)
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return result


@functools.cache
def landlock_abi():
    """The Landlock ABI version this kernel offers, 0 where it has none (or a seccomp
    profile forbids it)."""
    try:
        return _syscall(_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
                        ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION))
    except OSError:
        return 0


def _handled(abi):
    """(file-system rights, network rights, scopes) that a ruleset of this ABI handles."""
    fs = _ABI1_FS | (REFER if abi >= 2 else 0) | (TRUNCATE if abi >= 3 else 0) \
        | (IOCTL_DEV if abi >= 5 else 0)
    net = (_NET_BIND_TCP | _NET_CONNECT_TCP) if abi >= 4 else 0
    scoped = (_SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL) if abi >= 6 else 0
    return fs, net, scoped


@dataclass
class FileAccess:
    """Where a confined child may read and write (paths outside, as the grader sees them)."""

    read: list = field(default_factory=list)
    """Trees it may read and execute."""
    write: list = field(default_factory=list)
    """Trees it may also create, write, rename and remove in: its private scratch."""
    devices: list = field(default_factory=list)
    """Device files it may read, write and ioctl (/dev/null, the GPU's)."""


class Landlock:
    """A Landlock ruleset, built in the grader; `restrict` applies it in the child."""

    def __init__(self, access, abi):
        fs, net, scoped = _handled(abi)
        attr = (ctypes.c_uint64 * 3)(fs, net, scoped)
        size = 8 if abi < 4 else 16 if abi < 6 else 24
        self.fd = _syscall(_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size),
                           ctypes.c_uint32(0))
        try:
            for paths, rights in ((access.read, EXECUTE | READ_FILE | READ_DIR),
                                  (access.write, fs), (access.devices, _FILE_RIGHTS)):
                for path in paths:
                    self._allow(path, rights & fs)
        except BaseException:
            os.close(self.fd)
            raise

    def _allow(self, path, rights):
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            return  # not on this machine (/lib32, a GPU's device): nothing to allow
        try:
            if not os.path.isdir(path):
                rights &= _FILE_RIGHTS
            rule = _PathBeneath(rights, fd)
            _syscall(_LANDLOCK_ADD_RULE, ctypes.c_int(self.fd),
                     ctypes.c_int(_LANDLOCK_RULE_PATH_BENEATH), ctypes.byref(rule),
                     ctypes.c_uint32(0))
        finally:
            os.close(fd)

    def restrict(self):
        _syscall(_LANDLOCK_RESTRICT_SELF, ctypes.c_int(self.fd), ctypes.c_uint32(0))

    def close(self):
        os.close(self.fd)


# seccomp: the architecture's audit id and its system call numbers.
_ARCHES = {"x86_64": (0xC000003E, {"socket": 41, "io_uring_setup": 425}),
           "aarch64": (0xC00000B7, {"socket": 198, "io_uring_setup": 425})}
_X32_BIT = 0x40000000
_RET_ALLOW, _RET_ERRNO = 0x7FFF0000, 0x00050000
_LD_ABS, _JEQ, _JGE, _RET = 0x20, 0x15, 0x35, 0x06
_AF_UNIX = 1


@functools.cache
def seccomp_supported():
    """Whether this machine's architecture has a filter here (x86_64, aarch64)."""
    return platform.machine() in _ARCHES


def _network_filter():
    """BPF: socket() only for AF_UNIX; no io_uring; nothing of another architecture
    (x86_64's i386 and x32 calls would otherwise carry other numbers)."""
    arch, numbers = _ARCHES[platform.machine()]
    deny, allow = _RET_ERRNO | errno.EACCES, _RET_ALLOW
    program = [
        (_LD_ABS, 0, 0, 4),                       # 0: the architecture
        (_JEQ, 0, 7, arch),                       # 1: foreign: to 9 (deny)
        (_LD_ABS, 0, 0, 0),                       # 2: the call's number
        (_JGE, 6, 0, _X32_BIT),                   # 3: x32: to 10 (deny)
        (_JEQ, 0, 2, numbers["socket"]),          # 4: not socket(): to 7
        (_LD_ABS, 0, 0, 16),                      # 5: its first argument (the family)
        (_JEQ, 4, 3, _AF_UNIX),                   # 6: AF_UNIX: to 11 (allow), else 10
        (_JEQ, 2, 0, numbers["io_uring_setup"]),  # 7: to 10 (deny)
        (_RET, 0, 0, allow),                      # 8
        (_RET, 0, 0, deny),                       # 9
        (_RET, 0, 0, deny),                       # 10
        (_RET, 0, 0, allow),                      # 11
    ]
    instructions = (_SockFilter * len(program))(*[_SockFilter(*i) for i in program])
    return instructions, _SockFprog(len(program), instructions)


class Confinement:
    """Everything the unprivileged fallback does to one child between fork and exec."""

    def __init__(self, access, scratch, drop_to_uid):
        self.scratch = scratch
        self.drop_to_uid = drop_to_uid
        abi = landlock_abi()
        self.landlock = Landlock(access, abi) if abi else None
        self._filter = _network_filter() if seccomp_supported() else None

    def apply(self):
        """Runs in the child: its own uid, then no_new_privs, Landlock and seccomp. An
        error here fails the launch; a layer the kernel lacks is left for the probe to find."""
        if self.drop_to_uid:
            uid = FIRST_UID + os.getpid()
            os.chown(self.scratch, uid, uid)
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        # Dies with the grader, as bubblewrap's --die-with-parent does (after the uid
        # change, which clears this setting).
        _libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if _libc().prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
        if self.landlock is not None:
            self.landlock.restrict()
        if self._filter is not None:
            program = self._filter[1]
            if _libc().prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(program),
                             0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")

    def close(self):
        """Release the grader's copy of the ruleset (after the child has started)."""
        if self.landlock is not None:
            self.landlock.close()
            self.landlock = None


def interpreter_trees():
    """The interpreter's own trees (a virtual environment's and its base's), real paths."""
    trees = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             str(Path(sys.executable).parent)}
    return sorted({str(Path(tree).resolve()) for tree in trees} | trees)


def child_uid(pid):
    """The uid a root grader's child of this pid runs as."""
    return FIRST_UID + pid
