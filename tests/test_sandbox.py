"""The sandbox: plain data in and out, and a submission that cannot reach past it."""

import math
import os
import time
from pathlib import Path

import pytest
import torch

from grader.hidden import StudentError
from grader.isolation import NotIsolated, choose_isolation
from grader.protocol import Foreign
from grader.sandbox import ChildCrashed, ChildTimeout, Limits, LimitTooLow, SubmissionProcess, bubblewrap_works

ROOT = Path(__file__).resolve().parents[1]

HOSTILE = '''
import os, socket, sys, time
import torch

def echo(x):
    return x

def as_numpy(x):
    return x.numpy()

class Liar(torch.Tensor):
    def __eq__(self, other):
        return torch.ones_like(torch.Tensor(other), dtype=torch.bool)
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        result = super().__torch_function__(func, types, args, kwargs or {})
        return torch.zeros(3) if func.__name__ in ("allclose", "equal") else result

def lying_tensor():
    return torch.arange(3.0).as_subclass(Liar)

def raises():
    raise ValueError("wrong axis")

def exits():
    sys.exit(0)

def hard_exit():
    os._exit(0)

def spins():
    while True:
        pass

def eats_memory():
    blocks = []
    while True:
        blocks.append(bytearray(1 << 28))

def read_file(path):
    with open(path) as f:
        return f.read()[:50]

def import_module(name):
    __import__(name)
    return name

def environment():
    return dict(os.environ)

def connect(port):
    socket.create_connection(("127.0.0.1", port), timeout=2)
    return "connected"

def corrupt_protocol():
    # the channel's descriptors keep the grader's numbers, which can be any
    for fd in sorted(int(name) for name in os.listdir("/proc/self/fd") if int(name) > 2):
        try:
            os.write(fd, b"\\xff" * 64)
        except OSError:
            pass
    time.sleep(5)
'''


@pytest.fixture(scope="module")
def child():
    with SubmissionProcess(["print('{\"score\": 100}')", HOSTILE, "1 / 0", "after = 1"]) as sp:
        yield sp


def test_cells_run_in_order_and_errors_are_reported(child):
    assert [{k: e[k] for k in ("index", "ename", "message")} for e in child.cell_errors] == [
        {"index": 2, "ename": "ZeroDivisionError", "message": "division by zero"}]
    assert child.has("after") and not child.has("missing")
    assert '{"score": 100}' in child.output()  # printed, but never taken for a message


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64,
                                   torch.int64, torch.bool])
@pytest.mark.parametrize("shape", [(), (0, 10), (1, 1), (3, 5)])
def test_tensors_round_trip_exactly(child, dtype, shape):
    value = (torch.randn(shape) * 100).to(dtype)
    back = child.call("echo", value)
    assert type(back) is torch.Tensor and back.dtype == dtype and back.shape == value.shape
    assert torch.equal(back, value)


def test_plain_values_round_trip(child):
    value = {"a": [1, 2.5, None, True, "s"], "b": (torch.zeros(2), (float("inf"),))}
    back = child.call("echo", value)
    assert back["a"] == [1, 2.5, None, True, "s"] and isinstance(back["b"], tuple)
    assert torch.equal(back["b"][0], torch.zeros(2)) and math.isinf(back["b"][1][0])


def test_foreign_values_are_named_not_unpickled(child):
    back = child.call("as_numpy", torch.ones(2))
    assert back == Foreign("numpy.ndarray", back.summary)


def test_a_lying_tensor_subclass_arrives_as_plain_data(child):
    back = child.call("lying_tensor")
    assert type(back) is torch.Tensor
    assert not torch.equal(back, torch.zeros(3)) and torch.equal(back, torch.arange(3.0))


def test_student_exceptions_come_back_as_student_errors(child):
    with pytest.raises(StudentError) as info:
        child.call("raises")
    assert (info.value.ename, info.value.message) == ("ValueError", "wrong axis")
    with pytest.raises(StudentError) as info:
        child.call("exits")
    assert info.value.ename == "SystemExit"
    assert child.call("echo", 1) == 1  # the child lives on


def fresh(cells=(HOSTILE,), **kwargs):
    child = SubmissionProcess(list(cells), **kwargs)
    child.start()
    return child


def assert_gone(child, pid):
    assert child.process is None
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)


def test_an_endless_call_times_out_and_the_child_is_killed():
    child = fresh()
    pid = child.process.pid
    start = time.monotonic()
    with pytest.raises(ChildTimeout):
        child.call("spins", timeout=1.5)
    assert time.monotonic() - start < 5
    assert_gone(child, pid)


def test_hard_exit_is_a_crash_not_a_result():
    child = fresh()
    with pytest.raises(ChildCrashed, match="exited with code 0"):
        child.call("hard_exit")
    child.close()


def test_memory_is_limited():
    child = fresh(limits=Limits(memory_mb=5120))
    with pytest.raises((ChildCrashed, StudentError)) as info:
        child.call("eats_memory", timeout=60)
    if isinstance(info.value, StudentError):
        assert info.value.ename == "MemoryError"
    child.close()


def test_a_limit_too_low_for_torch_is_named_as_such():
    with pytest.raises(LimitTooLow, match="too low to import torch"):
        fresh(limits=Limits(memory_mb=1024))


def test_corrupting_the_channel_is_a_crash():
    child = fresh()
    with pytest.raises(ChildCrashed, match="protocol|exited|killed"):
        child.call("corrupt_protocol", timeout=10)
    child.close()


def test_the_temporary_directory_is_removed():
    child = fresh()
    workdir = child.workdir
    assert workdir.is_dir()
    child.close()
    assert not workdir.exists()


needs_namespaces = pytest.mark.skipif(not bubblewrap_works(),
                                      reason="bubblewrap namespaces are not available here")


@needs_namespaces
@pytest.mark.parametrize("module", ["grader", "solutions"])
def test_grader_and_reference_cannot_be_imported(child, module):
    with pytest.raises(StudentError) as info:
        child.call("import_module", module)
    assert info.value.ename == "ModuleNotFoundError"


@needs_namespaces
@pytest.mark.parametrize("path", [ROOT / "solutions" / "softmax_regression.py",
                                  ROOT / "grader" / "hidden" / "__init__.py",
                                  Path("/etc/shadow")])
def test_grader_files_cannot_be_read(child, path):
    with pytest.raises(StudentError) as info:
        child.call("read_file", str(path))
    assert info.value.ename in ("FileNotFoundError", "PermissionError")


@needs_namespaces
def test_no_network(child):
    import socket
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    try:
        with pytest.raises(StudentError) as info:
            child.call("connect", server.getsockname()[1])
        assert info.value.ename in ("ConnectionRefusedError", "OSError")
    finally:
        server.close()


def test_environment_is_minimal(monkeypatch):
    monkeypatch.setenv("SOFTGRADE_SECRET", "the grader's")
    child = fresh()
    try:
        env = child.call("environment")
    finally:
        child.close()
    assert "SOFTGRADE_SECRET" not in env
    assert env["OMP_NUM_THREADS"] == "1"


def test_without_namespaces_the_fallback_must_prove_itself():
    """--no-namespaces leaves bubblewrap out; the child then runs only under a verified
    fallback, never under less."""
    try:
        isolation = choose_isolation(use_namespaces=False)
    except NotIsolated as refusal:
        assert "--no-namespaces leaves bubblewrap out" in str(refusal)
        return
    child = fresh(["def f(x):\n    return 2 * x\n"], isolation=isolation)
    try:
        assert isolation.mode == "unprivileged"
        assert torch.equal(child.call("f", torch.ones(2)), torch.full((2,), 2.0))
    finally:
        child.close()


def test_unsafe_children_run_and_say_so():
    isolation = choose_isolation(unsafe=True)
    assert not isolation.isolated and isolation.description == "not isolated"
    assert any(warning.startswith("not isolated") for warning in isolation.warnings)
    child = fresh(["def f(x):\n    return 2 * x\n"], isolation=isolation)
    try:
        assert torch.equal(child.call("f", torch.ones(2)), torch.full((2,), 2.0))
    finally:
        child.close()


@needs_namespaces
def test_every_child_proves_its_isolation_before_its_cells(monkeypatch):
    """A child whose probe finds a way out is closed before the cells run."""
    import grader.isolation as isolation_module
    from grader import sandbox

    def leaky_plan(isolation, workdir, data_dir):
        plan = real_plan(isolation, workdir, data_dir)
        plan["read"] = ["/usr/lib/os-release"]  # readable in the sandbox: a "leak"
        return plan

    real_plan = isolation_module.probe_plan
    monkeypatch.setattr(sandbox, "probe_plan", leaky_plan)
    child = SubmissionProcess(["open('/tmp/cells-ran', 'w')"])
    child.launch()
    workdir = child.workdir
    with pytest.raises(NotIsolated, match="it can read /usr/lib/os-release"):
        child.load()
    assert child.process is None and not workdir.exists()


def test_peak_memory_is_read_by_the_grader():
    child = fresh(["import torch\n"
                   "def big(n):\n    return float(torch.ones(n, 1 << 20).sum())\n"
                   "def small(n):\n    return float(n)\n"])
    try:
        big, result = child.peak_memory("call", "big", [200])
        small, _ = child.peak_memory("call", "small", [200])
        assert result == float(200 << 20)
        assert big > 600 << 20  # 200 x 1 Mi floats = 800 MiB
        assert small < 20 << 20
    finally:
        child.close()


def test_binds_under_tmp_survive_the_private_tmp():
    """A checkout or a virtual environment under /tmp must stay visible in the sandbox:
    the empty /tmp is mounted before every bind."""
    from grader.sandbox import bubblewrap_command
    argv = bubblewrap_command(Path("/tmp/work"), ["python"], [(Path("/tmp/data"), "/data")])
    tmpfs = argv.index("--tmpfs")
    binds = [i for i, word in enumerate(argv) if word in ("--ro-bind", "--ro-bind-try", "--bind")]
    assert binds and tmpfs < min(binds)
