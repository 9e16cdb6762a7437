"""Hidden tests of `Accumulator(n)` with add(*args), reset() and [i]: n running sums.

The scenario (run_accumulator) drives the student's class through a sequence of
operations and reports what each read returned; the oracle replays the same
sequence on plain Python lists. Reads are compared with float32's tolerance:
sums kept in a tensor are as good as Python floats here.
"""

import torch

from . import HiddenTest, Verdict
from .checks import failed, passed, randn, short, value_problem

PART = "accumulator"

RESET_IGNORED = "reset() did not set the sums back to 0"
ADD_REPLACES = "add() replaced the sums instead of adding to them"


def expected_reads(operations, mistake=None):
    """What the 'get' operations read, with plain Python sums (or with `mistake`)."""
    sums, reads = {}, []
    for op, key, *rest in operations:
        if op == "new":
            sums[key] = [0.0] * rest[0]
        elif op == "add":
            kept = [0.0] * len(sums[key]) if mistake == ADD_REPLACES else sums[key]
            sums[key] = [s + float(v) for s, v in zip(kept, rest[0])]
        elif op == "reset":
            if mistake != RESET_IGNORED:
                sums[key] = [0.0] * len(sums[key])
        else:
            reads.append(sums[key][rest[0]])
    return reads


def gets(key, n):
    return [["get", key, i] for i in range(n)]


def check(student, operations, what):
    reads = student.scenario("run_accumulator", operations)
    expected = expected_reads(operations)
    if not (isinstance(reads, list) and all(type(r) is float for r in reads)):
        return Verdict(False, f"{what}: metric[i] must give numbers, got {short(reads)}")
    mistakes = {m: lambda m=m: torch.tensor(expected_reads(operations, m), dtype=torch.float64)
                for m in (RESET_IGNORED, ADD_REPLACES)}
    reads = torch.tensor(reads, dtype=torch.float64)
    problem, numbers = value_problem(reads, torch.tensor(expected, dtype=torch.float64), torch.float32)
    if problem:
        return failed(f"{what}: the sums read", problem, numbers, reads, mistakes, torch.float32)
    return passed(f"{what}: the sums read", numbers)


def numbers(seed, k):
    """k salted numbers of N(0, 10^2), rounded to multiples of 1/8 (exact in float32 sums)."""
    return (randn(k, seed, 80.0).round() / 8).tolist()


def mixed_values(student, seed=7301):
    a, b, c = (numbers(seed + i, 3) for i in range(3))
    operations = [["new", "m", 3], *gets("m", 3),
                  ["add", "m", [a[0], int(a[1]), torch.tensor(a[2])]],
                  ["add", "m", [b[0], int(b[1]), torch.tensor(b[2], dtype=torch.float64)]],
                  ["add", "m", [c[0], int(c[1]), torch.tensor(int(c[2]))]], *gets("m", 3)]
    return check(student, operations, "Accumulator(3), adding floats, ints and 0-d tensors")


def reset(student, seed=7302):
    a, b, c = (numbers(seed + i, 2) for i in range(3))
    operations = [["new", "m", 2], ["add", "m", a], ["add", "m", b], ["reset", "m"],
                  *gets("m", 2), ["add", "m", c], *gets("m", 2)]
    return check(student, operations, "Accumulator(2), reset() after two adds, then one add")


def separate(student, seed=7303):
    a, b, c = (numbers(seed + i, 2) for i in range(3))
    operations = [["new", "a", 2], ["new", "b", 2], ["add", "a", a], ["add", "b", b],
                  ["reset", "b"], ["add", "b", c], *gets("a", 2), *gets("b", 2)]
    return check(student, operations, "two Accumulator(2)s side by side")


def sizes_and_many_adds(student, seed=7304):
    operations = [["new", "one", 1], ["new", "five", 5]]
    operations += [["add", "one", [x / 1000]] for x in numbers(seed, 1000)]
    operations += [["add", "five", [*numbers(seed + 1 + i, 3), 1e6, 1e-6]] for i in range(10)]
    operations += [*gets("one", 1), *gets("five", 5)]
    return check(student, operations, "Accumulator(1) after 1000 adds, Accumulator(5) after 10")


TESTS = [
    HiddenTest("sums of floats, ints and 0-d tensors", PART, 1.0, mixed_values),
    HiddenTest("reset() sets every sum back to 0", PART, 1.0, reset),
    HiddenTest("two accumulators keep separate sums", PART, 1.0, separate),
    HiddenTest("n = 1 and n = 5; 1000 adds", PART, 1.0, sizes_and_many_adds),
]
