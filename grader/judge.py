"""Where verdicts become outcomes and points: each part's hidden tests (hidden/) and
budgets (budgets.py) run against a submission's process, and every result is
decided here, in the grader's process.

Outcomes: passed, failed, error (the student's code raised), timeout, crashed,
over_budget, not_attempted (the release's stub). A passed property that a function
doing nothing useful also has (HiddenTest.counts_alone False) scores only when a
test of its part that counts alone passes: `return X` earns nothing. A part's budgets are timed only
once its value tests pass; after a timeout or a crash the part's remaining tests
are not run (the process is restarted for the next part).
"""

import importlib
import pkgutil

from . import hidden
from .budgets import BUDGETS, measure
from .hidden import HiddenTest, StudentError
from .results import TestResult
from .sandbox import ChildCrashed, ChildTimeout


def hidden_tests_by_part():
    """{part id: [HiddenTest, ...]} from every module of grader/hidden."""
    tests = {}
    for module_info in pkgutil.iter_modules(hidden.__path__):
        module = importlib.import_module(f"{hidden.__name__}.{module_info.name}")
        for test in getattr(module, "TESTS", []):
            tests.setdefault(test.part, []).append(test)
    return tests


def run_one(test, student, reference, stubbed):
    """(outcome, message, details) of one hidden test or budget."""
    try:
        if isinstance(test, HiddenTest):
            verdict = test.run(student)
        else:
            verdict = measure(test, student, reference)
    except StudentError as err:
        if err.ename == "NotImplementedError":
            if stubbed:
                return "not_attempted", NOT_ATTEMPTED, {}
            return "error", "it uses a function that is still a stub (NotImplementedError)", {}
        return "error", f"your code raised {err.ename}: {err.message}"[:500], {"ename": err.ename}
    except ChildTimeout as err:
        return "timeout", f"timeout: {err}", {}
    except ChildCrashed as err:
        return "crashed", f"crashed: {err}", {}
    except Exception as err:  # a result the test could not digest (or a grader bug): never a pass
        return "failed", f"the result could not be checked ({type(err).__name__}: {err})"[:500], \
            {"grader_exception": type(err).__name__}
    if verdict.passed:
        return "passed", verdict.message, verdict.details
    if verdict.details.get("over_budget"):
        return "over_budget", verdict.message, verdict.details
    return "failed", verdict.message, verdict.details


def grade_values(part, tests, budgets, student, stubbed):
    """[TestResult] of a part's hidden tests; its budgets are judged by grade_budgets,
    once every part's values are known."""
    share = _share(part, tests, budgets)
    results, stopped = [], None
    for test in tests:
        if stubbed:  # nothing to run: the release's stub is still there
            outcome, message, details = "not_attempted", NOT_ATTEMPTED, {}
        elif stopped:
            outcome, message, details = stopped, "not run: an earlier test of this part " \
                f"ended with {stopped}", {}
        else:
            outcome, message, details = run_one(test, student, None, stubbed)
        if outcome in ("timeout", "crashed"):
            stopped = outcome
        results.append(_result(part, test, share, outcome, message, details))
    if not any(r.outcome == "passed" for r, t in zip(results, tests) if t.counts_alone):
        for result, test in zip(results, tests):
            if result.outcome == "passed" and not test.counts_alone:
                result.score = 0.0
                result.message += " (no points: this scores only with a right value)"
    return results


def grade_budgets(part, tests, budgets, values, student, reference, stubbed):
    """[TestResult] of a part's budgets, timed only when its value tests (`values`, the
    results of grade_values) all passed."""
    share = _share(part, tests, budgets)
    stopped = next((r.outcome for r in values if r.outcome in ("timeout", "crashed")), None)
    results = []
    for budget in budgets:
        if stubbed:
            outcome, message, details = "not_attempted", NOT_ATTEMPTED, {}
        elif stopped:
            outcome, message, details = stopped, "not run: an earlier test of this part " \
                f"ended with {stopped}", {}
        elif any(r.outcome != "passed" for r in values):
            outcome, message, details = "failed", "not timed: the value tests of this part " \
                "fail, fix them first", {}
        else:
            outcome, message, details = run_one(budget, student, reference, stubbed)
        if outcome in ("timeout", "crashed"):
            stopped = outcome
        results.append(_result(part, budget, share, outcome, message, details))
    return results


NOT_ATTEMPTED = "not attempted: the stub still raises NotImplementedError"


def _share(part, tests, budgets):
    """The points of one unit of test weight in this part."""
    weights = [t.weight for t in tests + budgets]
    return part.points / sum(weights) if weights else 0.0


def _result(part, test, share, outcome, message, details):
    max_score = share * test.weight
    return TestResult(name=f"{part.id}: {test.name}", part=part.id,
                      score=max_score if outcome == "passed" else 0.0, max_score=max_score,
                      outcome=outcome, message=message, details=details)


def budgets_of(part_id):
    """The performance budgets carrying points of one part."""
    return [budget for budget in BUDGETS if budget.part == part_id]
