"""What grading one submission produced, and the reports written from it.

A `GradeReport` holds one `TestResult` per hidden test (plus one per written
answer), each carrying exactly one part id of ASSIGNMENT.md. The writers turn it
into:

- `write_gradescope`: the Gradescope autograder `results.json` of DESIGN.md's
  results contract (`to_gradescope` builds the dict);
- `write_classroom`: GitHub Classroom's autograding result, one test per part,
  derived from `to_gradescope` (`to_classroom` builds the dict);
- `write_junit`: JUnit XML for CI (one testsuite, one testcase per test).

The student's feedback (`feedback.md`, `feedback.html`) is written from the same
report by `grader/feedback.py`, with the formatting helpers below.

Decisions:

- Written answers (`ex1_written` ... `ex5_written`) are `TestResult`s with
  outcome "manual", score 0 and max_score 0; their points live in
  `details["points"]` (see `written_answer`). So the autograder's `max_score`
  counts auto-graded points only: Gradescope adds the manually graded
  questions' points on its side, and a submission that passes every hidden
  test shows score == max_score. The summary states the pending points.
- A part's score is the sum of its tests' scores; a part id is either
  all-manual or all-auto-graded (`GradeReport.validate` checks it).
- Badness of outcomes, worst first: crashed > timeout > error > over_budget >
  failed > not_attempted > partial > manual > passed (`SEVERITY`, `worst`). The
  process dying is worse than running out of time, which is worse than raising;
  code that runs but is too slow is closer to working than a wrong value; a part
  not attempted is not a mistake in code; right values in a near-miss shape are
  nearly right; manual is pending, not failed. A part's outcome leaves out the
  tests of its functions that are still stubs when others were written
  (`part_outcome`): their points are lost, but the part is "partial", not "not
  attempted".
- Every file is written atomically (a temporary file in the target's directory,
  then `os.replace`): a reader never sees half a report.
- Nothing that is not JSON leaves `to_gradescope`: NaN and infinities become
  the strings "nan", "inf", "-inf"; numpy-style scalars become numbers; any
  other object (a tensor, say) becomes its `str()`, cut to 500 characters.
"""

import json
import math
import numbers
import os
import re
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

OUTCOMES = ("passed", "partial", "failed", "error", "timeout", "crashed", "over_budget",
            "not_attempted", "manual")
"""What became of one test: its code gave the right answer (passed), the right values in a
near-miss shape (partial: part of the points), or a wrong one (failed),
raised (error), ran out of wall-clock time (timeout), killed its process (crashed), was
right but beyond its time or memory budget (over_budget), was still a stub or missing
(not_attempted); manual: a written answer that awaits a human grader."""

SEVERITY = ("passed", "manual", "partial", "not_attempted", "failed", "over_budget", "error",
            "timeout", "crashed")
"""OUTCOMES from best to worst (see the module docstring for why this order)."""

VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")
"""Gradescope's visibility values for a test."""

_RANK = {outcome: rank for rank, outcome in enumerate(SEVERITY)}
_AUTO_PASS = ("passed", "manual")  # Gradescope status "passed"; anything else is "failed"
_SCORE_SLACK = 1e-9                # rounding of weights * points may overshoot max_score


def worst(outcomes):
    """The worst of some outcomes by SEVERITY; "passed" when there are none."""
    return max(outcomes, key=_RANK.__getitem__, default="passed")


def part_outcome(outcomes):
    """A part's outcome from its tests' (see GradeReport.outcome_by_part)."""
    attempted = [o for o in outcomes if o != "not_attempted"]
    if not attempted:
        return worst(outcomes)
    found = worst(attempted)
    return "partial" if found == "passed" and len(attempted) < len(outcomes) else found


@dataclass
class TestResult:
    """The outcome of one hidden test (or one written answer) in a report."""

    __test__ = False  # not a pytest test class despite its name

    name: str
    """Unique within a report, e.g. 'softmax: float16 [64, 10] matches the reference'."""
    part: str
    """The part id of ASSIGNMENT.md whose points this test carries (exactly one)."""
    score: float
    """Points earned, between 0 and max_score."""
    max_score: float
    """Points at stake; 0 for a written answer (its points are in details['points'])."""
    outcome: str
    """One of OUTCOMES."""
    message: str = ""
    """For the student: what was tried, the error against the tolerance, the named mistake."""
    details: dict = field(default_factory=dict)
    """Measured numbers: max_abs_error, tolerance, ratio, budget, mistake, shapes, points..."""
    visibility: str = "visible"
    """Gradescope visibility: visible, hidden, after_due_date or after_published."""

    def __post_init__(self):
        if self.outcome not in OUTCOMES:
            raise ValueError(f"test {self.name!r}: outcome {self.outcome!r} is not one of "
                             f"{OUTCOMES}")
        if not isinstance(self.part, str) or not self.part:
            raise ValueError(f"test {self.name!r}: part must be a non-empty part id")
        if self.visibility not in VISIBILITIES:
            raise ValueError(f"test {self.name!r}: visibility {self.visibility!r} is not one of "
                             f"{VISIBILITIES}")
        self.score, self.max_score = float(self.score), float(self.max_score)
        if not (math.isfinite(self.score) and math.isfinite(self.max_score)
                and 0 <= self.score <= self.max_score + _SCORE_SLACK):
            raise ValueError(f"test {self.name!r}: need 0 <= score ({self.score}) <= max_score "
                             f"({self.max_score})")
        if self.outcome == "manual" and self.max_score != 0:
            raise ValueError(f"test {self.name!r}: a manual test carries no auto-graded points; "
                             "put them in details['points']")


def written_answer(part, points, name=None, visibility="visible"):
    """The TestResult of a written-answer part (`ex1_written` ...): manual, 0 of 0 points."""
    return TestResult(name=name or f"{part}: written answer", part=part, score=0.0,
                      max_score=0.0, outcome="manual",
                      message=f"awaiting manual grading ({points_text(points)} points)",
                      details={"points": points}, visibility=visibility)


@dataclass
class GradeReport:
    """Everything grading one submission produced."""

    submission: str
    """Path of the graded notebook."""
    tests: list[TestResult] = field(default_factory=list)
    """One result per hidden test and per written answer, in the order they ran."""
    execution_time: float = 0.0
    """Wall-clock seconds grading took."""
    warnings: list[str] = field(default_factory=list)
    """Things the student or instructor should know: not isolated, notebook restructured..."""
    error: str | None = None
    """Set when the submission could not be graded at all (e.g. unreadable file); one line."""
    reference_history: list | None = None
    """The reference solution's [(train_loss, train_acc, test_acc), ...] from the same
    Fashion-MNIST scenario as the student's training check, recorded during this grading
    for the feedback's curves; None when not asked for (it is no part of results.json)."""
    isolation: str = ""
    """How the submission's code was fenced in ("bubblewrap namespaces", ...), "not
    isolated" under --unsafe-no-sandbox; empty when none of its code ran."""

    @property
    def score(self):
        """Points earned over all tests."""
        return math.fsum(t.score for t in self.tests)

    @property
    def max_score(self):
        """Auto-graded points at stake (written answers count 0 here)."""
        return math.fsum(t.max_score for t in self.tests)

    @property
    def manual_points(self):
        """Points of the written answers that await manual grading."""
        return math.fsum(float(t.details.get("points", 0)) for t in self.tests
                         if t.outcome == "manual")

    def part_scores(self):
        """{part: (score, max_score)} summed over its tests, parts in first-appearance order."""
        sums = {}
        for t in self.tests:
            sums.setdefault(t.part, []).append(t)
        return {part: (math.fsum(t.score for t in ts), math.fsum(t.max_score for t in ts))
                for part, ts in sums.items()}

    def outcome_by_part(self):
        """{part: its outcome}, parts in first-appearance order: the worst outcome by SEVERITY
        of the tests of its functions that were attempted; 'partial' when those all passed
        but another function is still a stub; 'not_attempted' when nothing was."""
        outcomes = {}
        for t in self.tests:
            outcomes.setdefault(t.part, []).append(t.outcome)
        return {part: part_outcome(found) for part, found in outcomes.items()}

    def validate(self):
        """ValueError unless test names are unique and no part mixes manual and auto tests."""
        seen, kinds = set(), {}
        for t in self.tests:
            if t.name in seen:
                raise ValueError(f"two tests are named {t.name!r}")
            seen.add(t.name)
            kinds.setdefault(t.part, set()).add(t.outcome == "manual")
        mixed = [part for part, kind in kinds.items() if len(kind) > 1]
        if mixed:
            raise ValueError(f"parts {mixed} mix written answers with auto-graded tests")


# ---------------------------------------------------------------- formatting


def points_text(x):
    """Points for people: at most two decimals, no trailing zeros (7, 2.5, 0.33)."""
    text = f"{float(x):.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def number_text(value):
    """A measured value for people: 3 significant digits for floats, NaN and inf spelled out."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return printable(str(value), 200)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    value = float(value)
    return f"{value:.3g}" if math.isfinite(value) else _nonfinite(value)


def _nonfinite(value):
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


# Characters XML 1.0 cannot carry at all (most C0 controls, surrogates, U+FFFE/FFFF);
# messages from student code may hold them (ANSI colours, NUL bytes).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def one_line(text, limit=160):
    """`text` on one line of at most `limit` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit - 1] + "…"


def printable(text, limit=None):
    """Text with XML-illegal characters shown as \\xNN, optionally cut to `limit` characters."""
    text = _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))
    if limit is not None and len(text) > limit:
        text = text[:limit - 1] + "…"
    return text


def _json_safe(value, depth=0):
    """`value` as plain JSON data (see the module docstring); never NaN, never a tensor."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return value if math.isfinite(value) else _nonfinite(value)
    if depth < 20:
        if isinstance(value, dict):
            return {str(key): _json_safe(item, depth + 1) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [_json_safe(item, depth + 1) for item in value]
        if isinstance(value, (set, frozenset)):
            return sorted((_json_safe(item, depth + 1) for item in value), key=repr)
    return printable(str(value), 500)


def summary(report):
    """A few lines for people: the score, pending written points, outcomes, warnings."""
    lines = []
    if report.error:
        lines.append(f"The submission could not be graded: {report.error}")
    lines.append(f"Score: {points_text(report.score)} / {points_text(report.max_score)} "
                 "auto-graded points.")
    if report.manual_points:
        lines.append(f"Written answers: {points_text(report.manual_points)} more points await "
                     "manual grading.")
    auto = [o for o in report.outcome_by_part().values() if o != "manual"]
    if auto:
        counts = [f"{auto.count(o)} {o.replace('_', ' ')}" for o in SEVERITY if o in auto]
        lines.append(f"Parts: {', '.join(counts)}.")
    if report.warnings:
        lines.append("Warnings:")
        lines.extend(f"- {w}" for w in report.warnings)
    return "\n".join(lines)


# ---------------------------------------------------------------- writers


def atomic_write(path, data):
    """Write bytes to `path` through a temporary file in its directory and os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def to_gradescope(report):
    """The Gradescope autograder results of DESIGN.md's results contract, as plain JSON data."""
    report.validate()
    tests = []
    for t in report.tests:
        extra = {"outcome": t.outcome}
        extra.update((k, v) for k, v in t.details.items() if k != "outcome")
        tests.append({
            "name": t.name,
            "score": t.score,
            "max_score": t.max_score,
            "status": "passed" if t.outcome in _AUTO_PASS else "failed",
            "output": t.message,
            "visibility": t.visibility,
            "tags": [t.part],
            "extra_data": _json_safe(extra),
        })
    results = {
        "score": report.score,
        "max_score": report.max_score,
        "execution_time": round(float(report.execution_time), 3),
        "output": summary(report),
        "tests": tests,
    }
    if report.isolation:
        results["extra_data"] = {"isolation": report.isolation}
    return results


def write_gradescope(report, path):
    """Write `results.json` (Gradescope format) atomically; returns its Path."""
    text = json.dumps(to_gradescope(report), indent=2, allow_nan=False) + "\n"
    return atomic_write(path, text.encode("utf-8"))


def to_classroom(report, max_score=None):
    """GitHub Classroom's autograding result for the same report, as plain JSON data.

    The format of GitHub Classroom's graders (classroom-resources/autograding-command-grader,
    -io-grader, -python-grader), which a workflow step outputs base64-encoded and
    autograding-grading-reporter reads: `version` 1, `status` ("pass", "fail", or "error"
    when the notebook could not be graded), `max_score`, `message`, and `tests`, each
    with `name`, `status`, `score`, `max_score` and `message`. The reporter sends
    Classroom the sum of the tests' `score` out of `max_score`.

    One test per part, summed from `to_gradescope`'s tests, so both platforms show the
    same points. `max_score` stands in for the report's when the report has no tests
    (an ungradable notebook), so that the course sees 0 of the assignment's points
    rather than no grade at all.
    """
    gradescope = to_gradescope(report)
    by_part = {}
    for test in gradescope["tests"]:
        by_part.setdefault(test["tags"][0], []).append(test)
    tests = [_classroom_part(part, found) for part, found in by_part.items()]
    points = gradescope["max_score"] if report.tests else float(max_score or 0)
    if report.error:
        tests.append({"name": "submission", "status": "error", "score": 0.0,
                      "max_score": points, "message": report.error})
        status = "error"
    else:
        status = "pass" if all(t["status"] == "pass" for t in tests) else "fail"
    return {"version": 1, "status": status, "max_score": points,
            "message": gradescope["output"], "tests": tests}


def unseen_text(count):
    """What a student is told of failed tests whose visibility hides them."""
    return (f"{count} more failed test{'s' if count > 1 else ''} of this part "
            f"{'are' if count > 1 else 'is'} not shown before the results are released.")


def _classroom_part(part, tests):
    """One Classroom test from a part's Gradescope tests: points summed, "pass" only
    when every one passed, the message naming each failed test the student may see."""
    failed = [t for t in tests if t["status"] != "passed"]
    if failed:
        shown = [f"{t['name']}: {t['output']}" for t in failed if t["visibility"] == "visible"]
        unseen = len(failed) - len(shown)
        message = "\n".join(shown + ([unseen_text(unseen)] if unseen else []))
    elif tests[0]["extra_data"]["outcome"] == "manual":
        # A part is all written answer or all auto-graded (GradeReport.validate).
        message = tests[0]["output"]
    else:
        message = f"every test passed ({len(tests)})"
    return {"name": part, "status": "fail" if failed else "pass",
            "score": math.fsum(t["score"] for t in tests),
            "max_score": math.fsum(t["max_score"] for t in tests), "message": message}


def write_classroom(report, path, max_score=None):
    """Write GitHub Classroom's result JSON (`to_classroom`) atomically; returns its Path."""
    text = json.dumps(to_classroom(report, max_score), indent=2, allow_nan=False) + "\n"
    return atomic_write(path, text.encode("utf-8"))


_JUNIT_RESULT = {"failed": "failure", "partial": "failure", "over_budget": "failure",
                 "not_attempted": "failure",
                 "error": "error", "timeout": "error", "crashed": "error", "manual": "skipped"}


def write_junit(report, path):
    """Write JUnit XML: one testsuite 'softgrade', one testcase per test; returns its Path.

    failed / over_budget / not_attempted -> <failure>, error / timeout / crashed -> <error>,
    manual -> <skipped>; the element's `type` is the outcome. When the submission could not
    be graded at all, one extra testcase 'softgrade.submission' carries an <error>, so that
    CI never reads an ungraded submission as green.
    """
    report.validate()
    cases = []
    for t in report.tests:
        case = ET.Element("testcase", classname=f"softgrade.{t.part}", name=printable(t.name),
                          time="0")
        kind = _JUNIT_RESULT.get(t.outcome)
        if kind == "skipped":
            ET.SubElement(case, "skipped", message="awaiting manual grading")
        elif kind:
            message = "not attempted" if t.outcome == "not_attempted" else printable(t.message)
            result = ET.SubElement(case, kind, message=message, type=t.outcome)
            result.text = printable(t.message) or None
        cases.append(case)
    if report.error:
        case = ET.Element("testcase", classname="softgrade", name="submission", time="0")
        ET.SubElement(case, "error", message=printable(report.error), type="ungradable")
        cases.append(case)

    def count(kind):
        return sum(1 for case in cases if case.find(kind) is not None)

    suite = ET.Element("testsuite", name="softgrade", tests=str(len(cases)),
                       failures=str(count("failure")), errors=str(count("error")),
                       skipped=str(count("skipped")), time=f"{float(report.execution_time):.3f}")
    properties = ET.SubElement(suite, "properties")
    for name, value in (("submission", printable(report.submission)),
                        ("score", repr(report.score)), ("max_score", repr(report.max_score)),
                        ("manual_points", repr(report.manual_points))):
        ET.SubElement(properties, "property", name=name, value=value)
    suite.extend(cases)
    ET.SubElement(suite, "system-out").text = printable(summary(report))
    ET.indent(suite)
    data = ET.tostring(suite, encoding="utf-8", xml_declaration=True) + b"\n"
    return atomic_write(path, data)
