"""The report writers: Gradescope JSON (DESIGN.md's results contract), JUnit XML, feedback."""

import json
import math
import os
import stat

import jsonschema
import pytest
import torch
from junitparser import Error, Failure, JUnitXml, Skipped

from grader import results
from grader.feedback import feedback_html, write_feedback
from grader.results import OUTCOMES, GradeReport, TestResult, written_answer

# The part ids of ASSIGNMENT.md (fixed by the contract; test_source_notebook holds the
# notebook to the same list, but importing it would load torchvision for nothing here).
ALL_PARTS = ["softmax", "net", "cross_entropy", "accuracy", "evaluate_accuracy", "accumulator",
             "sgd", "train_epoch", "train", "predict", "ex1_overflow", "ex2_log_domain",
             "ex3_stable_loss", "ex4_decision", "ex5_large_vocab",
             *(f"ex{k}_written" for k in range(1, 6))]
SCRIPT = '<script>alert("owned")</script>'

# DESIGN.md, "Results contract", as a JSON Schema: top level score, max_score (optional),
# execution_time, output, tests; each test name, score, max_score, status (passed/failed),
# output, visibility, tags (exactly one part id of ASSIGNMENT.md); extra_data optional,
# here with the outcome always present.
GRADESCOPE_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["score", "execution_time", "output", "tests"],
    "properties": {
        "score": {"type": "number", "minimum": 0},
        "max_score": {"type": "number", "minimum": 0},
        "execution_time": {"type": "number", "minimum": 0},
        "output": {"type": "string"},
        "tests": {"type": "array", "items": {"$ref": "#/$defs/test"}},
    },
    "$defs": {
        "test": {
            "type": "object",
            "required": ["name", "score", "max_score", "status", "output", "visibility", "tags"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "score": {"type": "number", "minimum": 0},
                "max_score": {"type": "number", "minimum": 0},
                "status": {"enum": ["passed", "failed"]},
                "output": {"type": "string"},
                "visibility": {"enum": ["visible", "hidden", "after_due_date", "after_published"]},
                "tags": {"type": "array", "minItems": 1, "maxItems": 1,
                         "items": {"type": "string", "enum": ALL_PARTS}},
                "extra_data": {"type": "object", "required": ["outcome"],
                               "properties": {"outcome": {"enum": list(OUTCOMES)}}},
            },
        },
    },
}


def make_report():
    """One test of every outcome, a part with two tests, NaN / inf / a tensor in details."""
    tests = [
        TestResult("softmax: float32 [64, 10] matches the reference", "softmax", 2, 2, "passed",
                   "max abs error 1.2e-07 within 1e-06",
                   {"max_abs_error": 1.2e-7, "tolerance": 1e-6, "shape": [64, 10]}),
        TestResult("softmax: float16 [8, 10] with logits of 1e4", "softmax", 0, 2, "failed",
                   f"returned NaN; did you subtract the row maximum? {SCRIPT}",
                   {"max_abs_error": math.nan, "tolerance": 1e-3, "shape": [8, 10],
                    "mistake": "no max subtraction"}),
        TestResult("cross_entropy: per-example losses", "cross_entropy", 0, 2, "error",
                   "IndexError: too many indices for tensor of dimension 1",
                   {"exception": "IndexError"}),
        TestResult("train: reaches 0.8 test accuracy in 5 epochs", "train", 0, 5, "timeout",
                   "stopped after 60 s", {"limit_s": 60.0}),
        TestResult("evaluate_accuracy: nn.Module in eval mode", "evaluate_accuracy", 0, 2,
                   "crashed", "the process died (SIGKILL): out of memory?",
                   {"signal": "SIGKILL", "source": "def evaluate_accuracy(net, it): BOOM"}),
        TestResult("ex5_large_vocab: two-level beats full at V = 50000", "ex5_large_vocab",
                   0, 3, "over_budget", "correct, but 12.5x slower than the reference",
                   {"ratio": 12.5, "budget": 5.0, "max_abs_error": 3e-9, "tolerance": 1e-6}),
        TestResult("predict: labels of the first batch", "predict", 0, 2, "not_attempted",
                   "predict_ch3 still raises NotImplementedError", {}),
        TestResult("sgd: zeroes the gradients", "sgd", 0, 1, "failed",
                   "p.grad was not zeroed", {"grad_norm": math.inf, "low": -math.inf,
                                             "grad": torch.tensor([1.0, 2.0])},
                   visibility="after_due_date"),
        TestResult("cross_entropy: losses of [64, 10]", "cross_entropy", 0.5, 1, "partial",
                   "returned shape [64, 1]: the right values in a near-miss shape", {}),
        written_answer("ex1_written", 3),
    ]
    return GradeReport(submission="/subs/alice/softmax_regression.ipynb", tests=tests,
                       execution_time=12.3456,
                       warnings=["not isolated: graded with --unsafe-no-sandbox", SCRIPT])


@pytest.fixture
def report():
    return make_report()


def no_constants(name):
    raise AssertionError(f"non-standard JSON constant {name} written")


def test_the_report_covers_every_outcome(report):
    assert {t.outcome for t in report.tests} == set(OUTCOMES)


def test_gradescope_json_follows_the_results_contract(report, tmp_path):
    path = results.write_gradescope(report, tmp_path / "results.json")
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n") and text.splitlines()[1].startswith('  "')  # indent 2
    data = json.loads(text, parse_constant=no_constants)  # no NaN / Infinity literals

    jsonschema.Draft202012Validator.check_schema(GRADESCOPE_SCHEMA)
    jsonschema.validate(data, GRADESCOPE_SCHEMA, cls=jsonschema.Draft202012Validator)

    tests = data["tests"]
    assert [t["name"] for t in tests] == [t.name for t in report.tests]
    assert len({t["name"] for t in tests}) == len(tests)
    by_part = {}
    for t in tests:
        by_part.setdefault(t["tags"][0], []).append(t)
    for part, (score, max_score) in report.part_scores().items():
        assert math.fsum(t["score"] for t in by_part[part]) == pytest.approx(score)
        assert math.fsum(t["max_score"] for t in by_part[part]) == pytest.approx(max_score)
    assert report.part_scores()["softmax"] == (2.0, 4.0)
    assert data["score"] == pytest.approx(math.fsum(t["score"] for t in tests)) == 2.5
    assert data["max_score"] == pytest.approx(20.0)  # auto-graded points only

    status = {t["extra_data"]["outcome"]: t["status"] for t in tests}
    assert status == {"passed": "passed", "manual": "passed", "failed": "failed",
                      "error": "failed", "timeout": "failed", "crashed": "failed",
                      "over_budget": "failed", "not_attempted": "failed", "partial": "failed"}

    written = tests[-1]
    assert written["tags"] == ["ex1_written"]
    assert (written["score"], written["max_score"]) == (0, 0)
    assert "awaiting manual grading (3 points)" in written["output"]
    assert written["extra_data"] == {"outcome": "manual", "points": 3}
    manual_parts = {t["tags"][0] for t in tests if t["extra_data"]["outcome"] == "manual"}
    auto_parts = {t["tags"][0] for t in tests if t["extra_data"]["outcome"] != "manual"}
    assert manual_parts and not manual_parts & auto_parts

    assert tests[1]["extra_data"]["max_abs_error"] == "nan"
    assert tests[1]["extra_data"]["shape"] == [8, 10]
    sgd = tests[7]["extra_data"]
    assert (sgd["grad_norm"], sgd["low"]) == ("inf", "-inf")
    assert isinstance(sgd["grad"], str) and sgd["grad"].startswith("tensor(")
    assert tests[7]["visibility"] == "after_due_date"

    assert "2.5 / 20" in data["output"] and "3 more points await manual grading" in data["output"]
    assert "not isolated: graded with --unsafe-no-sandbox" in data["output"]
    assert data["execution_time"] == pytest.approx(12.346)


def test_the_schema_rejects_what_the_contract_forbids(report):
    data = results.to_gradescope(report)
    for break_it in (lambda d: d["tests"][0].update(tags=["softmax", "net"]),
                     lambda d: d["tests"][0].update(tags=["not_a_part"]),
                     lambda d: d["tests"][0].update(status="error"),
                     lambda d: d["tests"][0].pop("visibility"),
                     lambda d: d.update(score="2")):
        broken = json.loads(json.dumps(data))
        break_it(broken)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, GRADESCOPE_SCHEMA, cls=jsonschema.Draft202012Validator)


def read_suite(path):
    """The one testsuite of a JUnit file (junitparser wraps a bare <testsuite> in <testsuites>)."""
    (suite,) = list(JUnitXml.fromfile(str(path)))
    return suite


def test_junit_reads_back_with_junitparser(report, tmp_path):
    path = results.write_junit(report, tmp_path / "junit.xml")
    suite = read_suite(path)
    assert suite.name == "softgrade"
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (10, 5, 3, 1)
    assert suite.time == pytest.approx(12.346)
    props = {p.name: p.value for p in suite.properties()}
    assert float(props["score"]) == 2.5 and float(props["max_score"]) == 20.0

    cases = {case.name: case for case in suite}
    assert list(cases) == [t.name for t in report.tests]
    expected = {"passed": None, "failed": Failure, "over_budget": Failure, "partial": Failure,
                "not_attempted": Failure, "error": Error, "timeout": Error, "crashed": Error,
                "manual": Skipped}
    for t in report.tests:
        case = cases[t.name]
        assert case.classname == f"softgrade.{t.part}"
        kind = expected[t.outcome]
        if kind is None:
            assert case.is_passed and case.result == []
            continue
        (result,) = case.result
        assert type(result) is kind
        if t.outcome == "manual":
            assert result.message == "awaiting manual grading"
        elif t.outcome == "not_attempted":
            assert result.message == "not attempted"
        else:
            assert result.message == t.message and result.type == t.outcome
    assert SCRIPT in cases["softmax: float16 [8, 10] with logits of 1e4"].result[0].message


def test_junit_reports_an_ungradable_submission_as_an_error(tmp_path):
    report = GradeReport("/subs/bob.ipynb", error="not a notebook (invalid JSON)")
    suite = read_suite(results.write_junit(report, tmp_path / "junit.xml"))
    assert (suite.tests, suite.errors) == (1, 1)
    (case,) = list(suite)
    assert case.result[0].message == "not a notebook (invalid JSON)"
    data = results.to_gradescope(report)
    assert data["score"] == 0 and "could not be graded" in data["output"]


def test_control_characters_in_messages_keep_the_xml_valid(tmp_path):
    report = GradeReport("s.ipynb", tests=[
        TestResult("softmax: colours", "softmax", 0, 1, "error", "\x1b[31mValueError\x00\x1b[0m")])
    suite = read_suite(results.write_junit(report, tmp_path / "j.xml"))
    assert list(suite)[0].result[0].message == "\\x1b[31mValueError\\x00\\x1b[0m"
    assert "ValueError" in feedback_html(report)


def test_writes_are_atomic_and_leave_nothing_behind(report, tmp_path, monkeypatch):
    results.write_gradescope(report, tmp_path / "results.json")
    results.write_junit(report, tmp_path / "junit.xml")
    write_feedback(report, tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["feedback.html", "feedback.md", "junit.xml",
                                            "results.json"]
    assert stat.S_IMODE((tmp_path / "results.json").stat().st_mode) == 0o644

    before = (tmp_path / "results.json").read_bytes()
    (tmp_path / "results.json").chmod(0o600)
    report.tests[0].score = 1.0

    def fail(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(results.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        results.write_gradescope(report, tmp_path / "results.json")
    assert (tmp_path / "results.json").read_bytes() == before  # the old file intact
    assert len(os.listdir(tmp_path)) == 4                       # and no temporary file
    monkeypatch.undo()

    results.write_gradescope(report, tmp_path / "results.json")
    assert json.loads((tmp_path / "results.json").read_text())["score"] == 1.5
    assert stat.S_IMODE((tmp_path / "results.json").stat().st_mode) == 0o600  # mode kept
    assert len(os.listdir(tmp_path)) == 4


def test_parts_aggregate_in_first_appearance_order():
    report = GradeReport("s.ipynb", tests=[
        TestResult("net: a", "net", 1, 1, "passed"),
        TestResult("softmax: a", "softmax", 0.5, 1, "passed"),
        TestResult("net: b", "net", 0, 2, "failed"),
        TestResult("softmax: b", "softmax", 0, 1, "over_budget"),
        TestResult("net: c", "net", 0, 1, "timeout"),
        TestResult("softmax: c", "softmax", 0, 1, "error"),
        written_answer("ex2_written", 2.5),
    ])
    assert report.part_scores() == {"net": (1.0, 4.0), "softmax": (0.5, 3.0),
                                    "ex2_written": (0.0, 0.0)}
    assert report.outcome_by_part() == {"net": "timeout", "softmax": "error",
                                        "ex2_written": "manual"}
    assert (report.score, report.max_score, report.manual_points) == (1.5, 7.0, 2.5)
    ranked = sorted(OUTCOMES, key=results.SEVERITY.index, reverse=True)
    assert ranked == ["crashed", "timeout", "error", "over_budget", "failed", "not_attempted",
                      "partial", "manual", "passed"]


def test_a_part_with_a_stub_beside_written_functions_is_partial():
    """A stub costs only its function's tests: the part is not "not attempted" when another
    of its functions was written, and its worst attempted outcome decides."""
    def part(*outcomes):
        tests = [TestResult(f"ex1: {i}", "ex1", 0, 1, o) for i, o in enumerate(outcomes)]
        return GradeReport("s.ipynb", tests=tests).outcome_by_part()["ex1"]

    assert part("passed", "not_attempted") == "partial"
    assert part("failed", "not_attempted") == "failed"
    assert part("not_attempted", "not_attempted") == "not_attempted"
    assert part("passed", "passed") == "passed"
    assert results.worst([]) == "passed" and results.worst(["manual", "not_attempted"]) == \
        "not_attempted"


def test_invalid_results_are_refused():
    with pytest.raises(ValueError, match="outcome"):
        TestResult("softmax: a", "softmax", 0, 1, "skipped")
    with pytest.raises(ValueError, match="score"):
        TestResult("softmax: a", "softmax", 2, 1, "passed")
    with pytest.raises(ValueError, match="score"):
        TestResult("softmax: a", "softmax", math.nan, 1, "passed")
    with pytest.raises(ValueError, match="manual"):
        TestResult("ex1_written", "ex1_written", 0, 3, "manual")
    with pytest.raises(ValueError, match="visibility"):
        TestResult("softmax: a", "softmax", 0, 1, "failed", visibility="secret")
    twice = GradeReport("s.ipynb", tests=[TestResult("softmax: a", "softmax", 1, 1, "passed"),
                                          TestResult("softmax: a", "softmax", 0, 1, "failed")])
    with pytest.raises(ValueError, match="two tests"):
        results.to_gradescope(twice)
    mixed = GradeReport("s.ipynb", tests=[TestResult("ex1: a", "ex1_written", 1, 1, "passed"),
                                          written_answer("ex1_written", 3)])
    with pytest.raises(ValueError, match="mix"):
        results.write_junit(mixed, "/nonexistent/never-written.xml")
