"""grader/judge.py's rules of credit, without a submission process: the phases never judge
a part beside a correct version of it, points split per function, properties score only
beside a right value, a stub is not attempted only when it is the function under test."""

import math

import pytest
from corpus import SOURCE

from grader.hidden import HiddenTest, StudentError, Verdict
from grader.hidden.manifest import PARTS, function_of, function_points
from grader.judge import Context, PartGrader, budgets_of, explain_error, hidden_tests_by_part, phases
from grader.notebook import find_parts, read_notebook
from grader.substitutes import closure

PARTS_OF_SOURCE = [p for p in find_parts(read_notebook(SOURCE)) if not p.written]
TESTS = hidden_tests_by_part()


def test_no_part_is_judged_where_a_correct_version_of_it_lives():
    plan = phases(PARTS_OF_SOURCE)
    judged = set()
    for phase in plan:
        installed = set(closure(phase.substitutes))
        for part in phase.parts:
            assert not installed & set(PARTS[part.id].functions), part.id
            assert set(PARTS[part.id].uses) <= installed, part.id
        owners = {p for p, spec in PARTS.items() if set(spec.functions) & installed}
        assert owners <= judged, f"substitutes of parts not judged yet: {owners - judged}"
        judged |= {part.id for part in phase.parts}
    assert judged == {p.id for p in PARTS_OF_SOURCE}
    assert plan[0].substitutes == ()  # the end-to-end test runs with the student's own code


def test_every_test_belongs_to_a_function_of_its_part():
    for part_id, tests in TESTS.items():
        for test in tests + budgets_of(part_id):
            assert function_of(test) in PARTS[part_id].functions


@pytest.mark.parametrize("part", PARTS_OF_SOURCE, ids=lambda p: p.id)
def test_a_parts_points_split_over_its_functions(part):
    grader = PartGrader(part, TESTS[part.id], budgets_of(part.id), Context({}, set()))
    per_function = {}
    for test in grader.tests + grader.budgets:
        per_function[function_of(test)] = per_function.get(function_of(test), 0.0) \
            + grader.max_score[id(test)]
    expected = function_points(part.id, part.points)
    assert per_function.keys() == expected.keys()
    for function, points in expected.items():
        assert math.isclose(per_function[function], points), function
    assert math.isclose(sum(per_function.values()), part.points)


def finished(part_id, outcomes):
    """The TestResults of a part whose tests ended with `outcomes` {test name: (outcome,
    credit)}; the others pass."""
    part = next(p for p in PARTS_OF_SOURCE if p.id == part_id)
    grader = PartGrader(part, TESTS[part_id], budgets_of(part_id), Context({}, set()))
    for test in grader.tests + grader.budgets:
        outcome, credit = outcomes.get(test.name, ("passed", 1.0))
        grader.record(test, outcome, "", {}, credit)
    return {r.name.split(": ", 1)[1]: r for r in grader.finish()}


def test_a_property_scores_only_beside_a_right_value_of_the_same_function():
    names = {t.name: t for t in TESTS["ex4_decision"]}
    empty = "expected_cost: an empty batch [0, 4] gives [0, 3]"
    assert not names[empty].counts_alone
    values = {n: ("failed", 0.0) for n, t in names.items()
              if function_of(t) == "expected_cost" and t.counts_alone}
    results = finished("ex4_decision", values)
    assert results[empty].score == 0 and "no points" in results[empty].message
    # the other functions of the part keep theirs
    assert all(r.score == r.max_score for n, r in results.items()
               if function_of(names[n]) != "expected_cost")


def test_a_stub_costs_only_its_own_function():
    stub = {t.name: ("not_attempted", 0.0) for t in TESTS["ex1_overflow"]
            if function_of(t) == "naive_softmax_breaks"}
    results = finished("ex1_overflow", stub)
    score = math.fsum(r.score for r in results.values())
    assert math.isclose(score, function_points("ex1_overflow", 6)["overflow_threshold"])


def test_not_attempted_only_when_the_function_under_test_is_the_stub():
    context = Context({}, {"lr"})
    own = StudentError("NotImplementedError", "", [("softmax", "raise NotImplementedError()")])
    assert explain_error(own, "softmax", context)[0] == "not_attempted"
    sibling = StudentError("NotImplementedError", "", [("net", "return softmax(X)"),
                                                        ("softmax", "raise NotImplementedError()")])
    outcome, message = explain_error(sibling, "net", context)
    assert outcome == "error" and "softmax" in message
    method = StudentError("NotImplementedError", "", [("Accumulator.add", "raise ...")])
    assert explain_error(method, "Accumulator", context)[0] == "not_attempted"


def test_messages_explain_demo_only_names_and_the_books_asserts():
    context = Context({}, {"lr"})
    _, message = explain_error(StudentError("NameError", "name 'lr' is not defined"),
                               "train_epoch_ch3", context)
    assert "demonstration cell" in message
    asserted = StudentError("AssertionError", "0.61", [("train_ch3", "assert train_loss < 0.5, train_loss")])
    _, message = explain_error(asserted, "train_ch3", context)
    assert "assert train_loss < 0.5" in message and "ten epochs" in message


def test_a_near_miss_shape_earns_its_credit():
    test = HiddenTest("x", "softmax", 1.0, lambda s: Verdict(False, "shape", credit=0.5))
    part = next(p for p in PARTS_OF_SOURCE if p.id == "softmax")
    grader = PartGrader(part, [test], [], Context({}, set()))
    grader.run(test, student=None)
    (result,) = grader.finish()
    assert result.outcome == "partial" and math.isclose(result.score, part.points / 2)
