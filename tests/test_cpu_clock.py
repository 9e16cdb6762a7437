"""The CPU clock the budgets time rounds with: read from outside the child, it counts the
child's known work (in its threads and processes too, after they exit) and ~0 for idling."""

import subprocess
import sys
from pathlib import Path

import pytest

from grader.cpu_clock import Round, clock_for_child, proc_clock
from grader.sandbox import SubmissionProcess

WORK = '''
import os, threading, time

def spin(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass

def idle(seconds):
    time.sleep(seconds)

def in_a_thread(seconds):
    thread = threading.Thread(target=spin, args=(seconds,))
    thread.start()
    thread.join()  # the thread has exited before the grader reads the clock

def in_an_orphan(seconds):
    """Work in a grandchild that its parent leaves behind, done and gone before the reply."""
    done_read, done_write = os.pipe()
    if os.fork() == 0:
        if os.fork() == 0:
            spin(seconds)
            os.write(done_write, b"x")
        os._exit(0)
    os.read(done_read, 1)
    time.sleep(0.05)  # the grandchild exits
'''

SECONDS = 0.3


@pytest.fixture(scope="module")
def child():
    process = SubmissionProcess([WORK])
    process.start()
    yield process
    process.close()


def cpu_of(child, name, seconds=SECONDS):
    return child.timed_round("call", name, [[seconds]]).cpu


def test_known_work_is_measured(child):
    assert SECONDS * 0.9 <= cpu_of(child, "spin") <= SECONDS * 2 + 0.05


def test_idling_costs_almost_nothing(child):
    round_ = child.timed_round("call", "idle", [[SECONDS]])
    assert round_.wall >= SECONDS
    assert round_.cpu < 0.05


def test_work_in_a_thread_that_exits_is_counted(child):
    assert cpu_of(child, "in_a_thread") >= SECONDS * 0.9


def test_work_in_an_orphaned_process_is_counted_where_the_clock_is_complete(child):
    cpu = cpu_of(child, "in_an_orphan")
    if child.cpu_clock.complete:
        assert cpu >= SECONDS * 0.9
    else:  # the wall clock covers what the CPU clock may miss
        assert child.timed_round("call", "in_an_orphan", [[SECONDS]]).seconds >= SECONDS * 0.9


def test_a_cgroup_made_for_the_child_is_removed_with_it():
    process = SubmissionProcess(["x = 1\n"])
    process.start()
    clock = process.cpu_clock
    process.close()
    if clock.owned or clock.cgroup is not None and "softgrade" in clock.cgroup.name:
        assert not clock.cgroup.exists()


def test_the_proc_clock_sums_the_process_tree():
    """A parent and the child it reaped, 0.3 s of work each: 0.6 s, read while the parent
    still lives (its own time, and the child's in its children's)."""
    clock = proc_clock(pid_namespace=False)
    code = ("import os, sys, time\n"
            "def spin(s):\n    end = time.process_time() + s\n"
            "    while time.process_time() < end: pass\n"
            "pid = os.fork()\nspin(0.3)\n"
            "if pid == 0: os._exit(0)\n"
            "os.waitpid(pid, 0)\nprint('done', flush=True)\ntime.sleep(60)\n")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "done"
        assert 0.55 <= clock.seconds(process.pid) <= 1.0
    finally:
        process.kill()
        process.wait()
    assert clock.resolution >= 1e-3 and not clock.complete


def test_an_incomplete_clock_also_takes_the_wall_time():
    assert Round(0.1, 0.5, 1e-9, True, []).seconds == 0.1
    assert Round(0.1, 0.5, 0.01, False, []).seconds == 0.5
    assert Round(0.7, 0.5, 0.01, False, []).seconds == 0.7


def test_this_machine_gets_a_complete_clock_when_it_can_make_cgroups():
    clock = clock_for_child()
    try:
        if clock.owned:
            assert clock.complete and clock.resolution <= 1e-6
    finally:
        clock.close()


def test_a_budget_is_measured_on_the_proc_clock_where_no_cgroup_can_be_made(monkeypatch):
    """Rounds then last at least 20 clock ticks, and cost the longer of CPU and wall time
    outside a pid namespace: the same code still passes, a row loop still fails."""
    from grader import cpu_clock
    from grader.budgets import BUDGETS, measure

    monkeypatch.setattr(cpu_clock, "CPUACCT_ROOT", Path("/nonexistent"))
    monkeypatch.setattr(cpu_clock, "_cgroup2_roots", lambda: [])
    vectorised = ("import torch\ndef softmax(X):\n"
                  "    e = torch.exp(X)\n    return e / e.sum(1, keepdim=True)\n")
    looped = ("import torch\ndef softmax(X):\n"
              "    return torch.stack([torch.exp(r) / torch.exp(r).sum() for r in X])\n")
    budget = next(b for b in BUDGETS if b.part == "softmax")
    processes = [SubmissionProcess([code]) for code in (vectorised, vectorised, looped)]
    try:
        for process in processes:
            process.start()
            assert process.cpu_clock.source == "/proc"
        reference, same, loop = processes
        assert measure(budget, same, reference).passed
        verdict = measure(budget, loop, reference)
        assert not verdict.passed and verdict.details.get("over_budget")
    finally:
        for process in processes:
            process.close()
