"""What a sandboxed child checks on itself before any submission code runs in it.

Copied into the sandbox with the harness and run there: as a script by the grader's
trial of an isolation mode (`python -I isolation_probe.py PLAN_JSON` prints the result
as JSON), and by sandbox_child.py's `probe` request in every child, before `load`. Its
word is trusted only because it runs before the submission's cells; the grader
confirms from outside what it can (isolation.py). Standard library only.

A result maps each check to [passed, what was seen].
"""

import importlib.util
import json
import os
import socket
import sys


def probe(plan):
    """Run every check of `plan` (see isolation.ProbePlan)."""
    return {"unreadable": unreadable(plan["read"], plan["modules"]),
            "unwritable": unwritable(plan["write_files"], plan["write"], plan["marker"]),
            "no_network": no_network(plan["tcp_port"], plan["udp_port"], plan["marker"]),
            "no_signal": no_signal(plan["grader_pids"], plan["grader_pid_namespace"]),
            "unprivileged": unprivileged(),
            "usable": usable(plan["data_dir"])}


def unreadable(paths, modules):
    for path in paths:
        try:
            with open(path, "rb") as file:
                file.read(1)
        except OSError:
            continue
        return [False, f"it can read {path}"]
    for name in modules:
        try:
            spec = importlib.util.find_spec(name)
        except Exception:  # the package is there but its files cannot be opened
            continue
        if spec is None or spec.origin is None:
            continue
        try:
            with open(spec.origin, "rb") as file:
                file.read(1)
        except OSError:
            continue
        return [False, f"it can import {name} from {spec.origin}"]
    return [True, f"{len(paths)} of the grader's files and {', '.join(modules)} out of reach"]


def unwritable(files, directories, marker):
    """Open the grader's files for writing (never writing), and try to leave `marker` in
    each directory: a file it made inside a mount namespace of its own lands in its
    private /tmp, so whether one got out is for the grader to see from outside."""
    for path in files:
        try:
            fd = os.open(path, os.O_WRONLY)
        except OSError:
            continue
        os.close(fd)
        return [False, f"it may write {path}"]
    created = []
    for directory in directories:
        try:
            fd = os.open(os.path.join(directory, marker), os.O_CREAT | os.O_EXCL | os.O_WRONLY,
                         0o600)
        except OSError:
            continue
        os.close(fd)
        created.append(directory)
    return [True, f"created its marker in: {', '.join(created) or 'nowhere'}"]


def no_network(tcp_port, udp_port, marker):
    try:
        with socket.create_connection(("127.0.0.1", tcp_port), timeout=2):
            return [False, f"it connected to the grader's port {tcp_port} on 127.0.0.1"]
    except OSError as err:
        tcp = type(err).__name__
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(marker.encode(), ("127.0.0.1", udp_port))
    except OSError as err:
        return [True, f"TCP: {tcp}; UDP: {type(err).__name__}"]
    # Sent: the grader tells whether it arrived (it does not in a network namespace).
    return [True, f"TCP: {tcp}; UDP: sent"]


def no_signal(pids, grader_namespace):
    """Neither kill() nor ptrace access (what opening /proc/PID/mem needs) reaches the
    grader. In a pid namespace of its own the grader's pids name nothing it can reach."""
    try:
        own_namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        own_namespace = None
    if own_namespace is not None and own_namespace != grader_namespace:
        return [True, "in a pid namespace of its own"]
    for pid in pids:
        try:
            os.kill(pid, 0)
            return [False, f"it may signal the grader's process {pid}"]
        except ProcessLookupError:
            return [False, f"the grader's process {pid} is not where it should be"]
        except PermissionError:
            pass
        try:
            with open(f"/proc/{pid}/mem", "rb"):
                return [False, f"it may trace the grader's process {pid}"]
        except OSError:
            pass
    return [True, "signals and tracing of the grader refused"]


def _status():
    with open("/proc/self/status") as file:
        return dict(line.split(":", 1) for line in file if ":" in line)


def unprivileged():
    ids = os.getresuid() + os.getresgid()
    if 0 in ids or 0 in os.getgroups():
        return [False, f"it runs as uid/gid 0 (ids {ids}, groups {os.getgroups()})"]
    status = _status()
    for name in ("CapEff", "CapPrm", "CapAmb"):
        if int(status.get(name, "0"), 16):
            return [False, f"it holds capabilities ({name} {status[name].strip()})"]
    if status.get("NoNewPrivs", "0").strip() != "1" and int(status.get("CapBnd", "0"), 16):
        return [False, "a setuid program could give it capabilities (no_new_privs is off)"]
    return [True, f"uid {os.getuid()}, no capabilities"]


def usable(data_dir):
    """The sandbox must still let a submission work: its scratch and the data set."""
    home = os.environ.get("HOME", "/tmp")
    try:
        path = os.path.join(home, ".softgrade-probe")
        with open(path, "w") as file:
            file.write("x")
        os.unlink(path)
    except OSError as err:
        return [False, f"it cannot write its scratch {home} ({err.strerror})"]
    if data_dir:
        try:
            for name in sorted(os.listdir(data_dir)):
                with open(os.path.join(data_dir, name), "rb") as file:
                    file.read(1)
        except OSError as err:
            return [False, f"it cannot read the data set in {data_dir} ({err.strerror})"]
    return [True, "its scratch is writable" + (", the data readable" if data_dir else "")]


if __name__ == "__main__":
    print(json.dumps(probe(json.loads(sys.argv[1]))), flush=True)
    sys.stdin.read()  # alive until the grader has looked at this process from outside
