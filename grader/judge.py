"""Where verdicts become outcomes and points: each part's hidden tests (hidden/) and
budgets (budgets.py) run against a submission's process, and every result is
decided here, in the grader's process.

Rules of credit (ASSIGNMENT.md, docs/grading.md):

- Credit is per function (hidden/manifest.py): a part's points are split over its
  functions, and each function's share over its tests by weight. A test whose call
  raises the stub's NotImplementedError from the function under test itself is
  not_attempted; its written siblings earn their own tests.
- A bug costs only its part: the tests run in phases (`phases`); a part whose
  functions call other parts' core functions is tested with the book's versions of
  those (substitutes.py), installed only once every test of the parts they belong to
  has run, so no part is ever judged where a correct version of it lives. The
  end-to-end tests (HiddenTest.end_to_end: Fashion-MNIST with the student's own
  functions together) run before any substitute exists; when one fails, it is run
  again with substitutes at the very end to name the student's function at fault.
- From scratch: a function that reaches a forbidden library call (from_scratch.py, in
  the grader, on the submission's code) earns nothing for its value tests.
- A property that a function doing nothing useful also has (counts_alone False)
  scores only when a test of the same function that counts alone passes.

Outcomes: passed, partial (right values in a near-miss shape), failed, error (the
student's code raised), timeout, crashed, over_budget, not_attempted. A budget is
timed only once its function's value tests pass; after a timeout or a crash the
part's remaining tests are not run. The next part gets a fresh process after a
timeout, a crash, or any error the student's code raised (a full disk or patched
globals left by one part's bug would cost the next ones too).
"""

import importlib
import pkgutil
import re
from dataclasses import dataclass

from . import hidden
from .budgets import BUDGETS, measure
from .from_scratch import families_reached
from .from_scratch import message as violation_message
from .hidden import HiddenTest, StudentError
from .hidden.manifest import PARTS, function_of, function_points
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


def budgets_of(part_id):
    """The performance budgets carrying points of one part."""
    return [budget for budget in BUDGETS if budget.part == part_id]


@dataclass
class Phase:
    """Parts whose tests run together, beside the book's code for what they call."""

    parts: list
    """notebook.Part objects, in notebook order."""
    substitutes: tuple[str, ...]
    """Core functions replaced by the book's versions while these parts are tested."""


def phases(parts):
    """[Phase, ...] in the order they must run: a part that uses another part's function
    runs in a later phase than every part whose function it uses, so each substitute is
    installed only after its own part was judged without it."""
    owner = {function: part_id for part_id, spec in PARTS.items() for function in spec.functions}
    level = {}

    def level_of(part_id):
        if part_id not in level:
            uses = [owner[f] for f in PARTS[part_id].uses if f in owner]
            level[part_id] = 1 + max(map(level_of, uses)) if uses else 0
        return level[part_id]

    by_level = {}
    for part in parts:
        by_level.setdefault(level_of(part.id), []).append(part)
    found, installed = [], set()
    for k in sorted(by_level):
        installed |= {f for part in by_level[k] for f in PARTS[part.id].uses}
        found.append(Phase(by_level[k], tuple(sorted(installed))))
    return found


@dataclass
class Context:
    """What the judge knows of a submission besides its process."""

    violations: dict
    """{function: [from_scratch.Violation, ...]} found in the submission's code."""
    demo_names: set
    """Names that only the notebook's demonstration cells define (the grader skips them)."""
    reference_run: object = None
    """A callable giving the reference process's Fashion-MNIST run (for end-to-end tests)."""
    cell_failures: object = None
    """A callable giving {name: the error of the notebook cell that should define it}."""


NOT_ATTEMPTED = "not attempted: {} still raises NotImplementedError (the stub)"


def explain_error(err, function, context):
    """(outcome, message) of a test whose student code raised `err` (a StudentError)."""
    raised_in = err.raised_in or ""
    if err.ename == "NotImplementedError":
        stub = raised_in.split(".")[0] if raised_in else function
        if stub == function:
            return "not_attempted", NOT_ATTEMPTED.format(function)
        return "error", (f"{function} calls {stub}, which still raises NotImplementedError "
                         "(the stub)")
    message = f"your code raised {err.ename}: {err.message}"
    name = re.fullmatch(r"name '(\w+)' is not defined", err.message)
    name = name.group(1) if err.ename == "NameError" and name else None
    if name in context.demo_names:
        message += (f" ({name} is defined only in a demonstration cell, which the grader "
                    "does not run: define it inside your function or pass it in)")
    elif name and context.cell_failures and name in context.cell_failures():
        message += f" (the cell that defines it failed: {context.cell_failures()[name]})"
    if err.ename == "AssertionError" and err.frames and err.frames[-1][1].startswith("assert"):
        message += f" (the assert `{err.frames[-1][1]}` in {raised_in} fired"
        if raised_in == "train_ch3":
            message += (": the book's sanity checks at the end of train_ch3 hold only after "
                        "ten epochs on Fashion-MNIST, and the grader trains three; remove "
                        "them, as the task says")
        message += ")"
    return "error", message[:600]


def run_one(test, student, reference, function, context):
    """(outcome, message, details, credit) of one hidden test or budget."""
    try:
        if isinstance(test, HiddenTest):
            verdict = test.run(student, context) if test.end_to_end else test.run(student)
        else:
            verdict = measure(test, student, reference)
    except StudentError as err:
        outcome, message = explain_error(err, function, context)
        return outcome, message, {"ename": err.ename}, 0.0
    except ChildTimeout as err:
        return "timeout", f"timeout: {err}", {}, 0.0
    except ChildCrashed as err:
        return "crashed", f"crashed: {err}", {}, 0.0
    except Exception as err:  # a result the test could not digest (or a grader bug): never a pass
        return "failed", f"the result could not be checked ({type(err).__name__}: {err})"[:500], \
            {"grader_exception": type(err).__name__}, 0.0
    credit = verdict.credit if verdict.credit is not None else float(verdict.passed)
    if verdict.passed:
        return "passed", verdict.message, verdict.details, credit
    if verdict.details.get("over_budget"):
        return "over_budget", verdict.message, verdict.details, 0.0
    return ("partial" if credit > 0 else "failed"), verdict.message, verdict.details, credit


class PartGrader:
    """The tests of one part: their points, their results, the order they run in."""

    def __init__(self, part, tests, budgets, context):
        self.part, self.context = part, context
        self.tests, self.budgets = tests, budgets
        self.results = {}
        points = function_points(part.id, part.points)
        weights = {}
        for test in tests + budgets:
            weights[function_of(test)] = weights.get(function_of(test), 0.0) + test.weight
        self.max_score = {id(t): points[function_of(t)] * t.weight / weights[function_of(t)]
                          for t in tests + budgets}

    def stopped(self):
        """The timeout or crash that ended this part's run, if any."""
        return next((r.outcome for r in self.results.values()
                     if r.outcome in ("timeout", "crashed")), None)

    def record(self, test, outcome, message, details, credit=0.0):
        max_score = self.max_score[id(test)]
        self.results[id(test)] = TestResult(
            name=f"{self.part.id}: {test.name}", part=self.part.id, score=max_score * credit,
            max_score=max_score, outcome=outcome, message=message, details=details)

    def forbidden(self, function):
        """One line naming the forbidden calls `function` makes, or None."""
        found = self.context.violations.get(function)
        return "; ".join(map(violation_message, found)) if found else None

    def run(self, test, student, reference=None):
        function = function_of(test)
        stopped = self.stopped()
        if stopped:
            self.record(test, stopped, f"not run: an earlier test of this part ended with "
                                       f"{stopped}", {})
        elif getattr(test, "end_to_end", False) or not self.forbidden(function):
            self.record(test, *run_one(test, student, reference, function, self.context))
        else:
            self.record(test, "failed", self.forbidden(function), {
                "mistake": f"{function} is not written from scratch", "forbidden": True})

    def run_values(self, student, end_to_end):
        for test in self.tests:
            if test.end_to_end is end_to_end:
                self.run(test, student)

    def run_budgets(self, student, reference):
        for budget in self.budgets:
            function = function_of(budget)
            values = [self.results[id(t)] for t in self.tests if function_of(t) == function
                      and not t.end_to_end]
            if all(r.outcome == "not_attempted" for r in values):
                self.record(budget, "not_attempted", NOT_ATTEMPTED.format(function), {})
            elif not self.stopped() and any(r.outcome != "passed" for r in values):
                self.record(budget, "failed", "not timed: the value tests of "
                            f"{function} fail, fix them first", {})
            else:
                self.run(budget, student, reference)

    def finish(self, modified_inputs=frozenset(), reached=None):
        """[TestResult] in the part's order, once every test ran; a property scores only
        beside a passed test of the same function that counts alone; a function seen
        modifying its input in any call fails its inputs-unchanged test; one whose calls
        reached a forbidden library function (the run-time signal) fails its tests."""
        for function, families in PARTS[self.part.id].forbidden.items():
            seen = {f: names for f, names in families_reached((reached or {}).get(function, ()))
                    .items() if f in families}
            if not seen or self.forbidden(function):
                continue
            names = sorted({n for found in seen.values() for n in found})
            for test in self.tests + self.budgets:
                result = self.results[id(test)]
                if function_of(test) == function and result.outcome not in ("not_attempted",):
                    result.outcome, result.score = "failed", 0.0
                    result.message = (f"{function} reached {', '.join(names)} when it ran: the "
                                      "task asks for it from scratch")
                    result.details.update({"mistake": f"{function} is not written from scratch",
                                           "forbidden": True})
        for test in self.tests:
            result = self.results[id(test)]
            if test.inputs_unchanged and result.outcome == "passed" \
                    and function_of(test) in modified_inputs:
                result.outcome, result.score = "failed", 0.0
                result.message = (f"{function_of(test)} modified a tensor argument in place "
                                  "during another hidden test's call")
                result.details["mistake"] = "modifies its input in place"
        for function in PARTS[self.part.id].functions:
            mine = [t for t in self.tests if function_of(t) == function]
            if any(self.results[id(t)].outcome in ("passed", "partial")
                   for t in mine if t.counts_alone):
                continue
            for test in mine:
                result = self.results[id(test)]
                if result.outcome == "passed" and not test.counts_alone:
                    result.score = 0.0
                    result.message += (f" (no points: this scores only with a right value of "
                                       f"{function})")
        return [self.results[id(t)] for t in self.tests + self.budgets]


def grade_parts(parts, tests, student, reference, context, on_phase=None):
    """[TestResult] of every auto-graded part, phase by phase (see the module docstring).

    `student` is a grade.RestartingSubmission, `reference` the reference's, used only by
    budgets and end-to-end tests; `on_phase(index)` runs before each phase's budgets (the
    grader waits there for the reference's process)."""
    graders = {p.id: PartGrader(p, tests.get(p.id, []), budgets_of(p.id), context)
               for p in parts}
    plan = phases(parts)
    for index, phase in enumerate(plan):
        student.use_substitutes(phase.substitutes)
        for part in phase.parts:
            graders[part.id].run_values(student, end_to_end=False)
            student.forget_if_spoiled()
        if on_phase:
            on_phase(index)
        if index == 0:  # the student's own functions together, before any substitute
            for grader in graders.values():
                grader.run_values(student, end_to_end=True)
                student.forget_if_spoiled()
        for part in phase.parts:
            graders[part.id].run_budgets(student, reference)
            student.forget_if_spoiled()
    results = {part_id: grader.finish(student.modified_inputs, student.reached)
               for part_id, grader in graders.items()}
    for grader in graders.values():
        for test in grader.tests:
            if test.end_to_end and grader.results[id(test)].outcome not in ("passed",
                                                                             "not_attempted"):
                diagnose(grader, test, student, graders)
    return [result for part in parts for result in results[part.id]]


def refuse_parts(parts, tests, signals):
    """[TestResult] of a notebook that reaches into the grader (integrity.py): nothing of it
    ran, and every test scores 0 with the first place named."""
    message = f"not graded: the notebook {signals[0]}" + (
        f" (and {len(signals) - 1} more such places)" if len(signals) > 1 else "")
    results = []
    for part in parts:
        grader = PartGrader(part, tests.get(part.id, []), budgets_of(part.id), Context({}, set()))
        for test in grader.tests + grader.budgets:
            grader.record(test, "failed", message, {"mistake": "reaches into the grader"})
        results += [grader.results[id(t)] for t in grader.tests + grader.budgets]
    return results


def diagnose(grader, test, student, graders):
    """Name the student's function at fault in a failed end-to-end test: run it again with
    the book's version of one suspect at a time (those whose own parts lost points first).
    Runs last: by now every part is judged, so the substitutes can no longer help a score."""
    result = grader.results[id(test)]

    def lost_points(function):
        owner = graders.get(PART_OF_FUNCTION.get(function))
        return owner is not None and any(r.score < r.max_score for r in owner.results.values()
                                         if r is not result)

    failing = [f for f in test.uses if lost_points(f)]
    suspects = failing + [f for f in test.uses if f not in failing]
    for function in suspects[:MAX_DIAGNOSIS_RUNS]:
        student.use_substitutes((function,), closed=False)
        outcome, *_ = run_one(test, student, None, function_of(test), grader.context)
        student.forget_if_spoiled()
        if outcome == "passed":
            result.message += (f". With the book's {function} in place of yours the same run "
                               f"passes: your {function} is at fault")
            result.details["at_fault"] = function
            break
    else:
        if failing:
            result.message += ". Your functions whose own tests lose points: " + ", ".join(failing)
    student.use_substitutes(())


PART_OF_FUNCTION = {f: part_id for part_id, spec in PARTS.items() for f in spec.functions}
MAX_DIAGNOSIS_RUNS = 4  # each rerun trains for a few seconds
