"""The corpus (tests/corpus.py) graded in one `grade-batch` run: every entry gets exactly
its expected outcome and points per part, and messages that name its mistake; no attack
raises a score, part by part, in the batch or graded alone; malformed files get one
clear line; and the run leaves no process, no cgroup and no temporary file behind."""

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import corpus
import psutil
import pytest

from grader.batch import content_key, grading_fingerprint
from grader.notebook import find_parts, read_notebook
from grader.sandbox import CGROUP_ROOTS

PARTS = find_parts(read_notebook(corpus.SOURCE))
AUTO = [part.id for part in PARTS if not part.written]
BY_NAME = {entry.name: entry for entry in corpus.ENTRIES}
GRADED = [e for e in corpus.ENTRIES if e.kind != "malformed"]


def softgrade(*args, env=None, timeout=1800):
    return subprocess.run([sys.executable, "-m", "grader.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=corpus.ROOT)


def leftovers(marker):
    """Processes whose command line mentions `marker`, and softgrade's pids cgroups."""
    processes = [p.pid for p in psutil.process_iter(["cmdline"])
                 if any(marker in part for part in p.info["cmdline"] or [])]
    cgroups = [path for root in CGROUP_ROOTS for path in root.glob("softgrade-*")]
    return processes, cgroups


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """The whole corpus graded by one `softgrade grade-batch --workers 2` run, with a
    TMPDIR of its own to show that nothing is left in it."""
    folder = tmp_path_factory.mktemp("corpus")
    paths = corpus.write(folder / "submissions")
    temp = folder / "tmp"
    temp.mkdir()
    out = folder / "grades.csv"
    proc = softgrade("grade-batch", str(folder / "submissions"), "--workers", "2",
                     "--out", str(out), env={**os.environ, "TMPDIR": str(temp)})
    fingerprint = grading_fingerprint(corpus.SOURCE)
    reports = {name: json.loads((folder / "grades.csv.cache" /
                                 f"{content_key(path, fingerprint)}.json").read_text())
               for name, path in paths.items()}
    with open(out, newline="") as file:
        rows = list(csv.DictReader(file))
    return {"proc": proc, "reports": reports, "rows": rows, "temp": temp, "folder": folder,
            "paths": paths}


def test_the_corpus_has_the_promised_counts():
    kinds = [entry.kind for entry in corpus.ENTRIES]
    assert kinds.count("mistake") >= 20 and kinds.count("hostile") >= 20
    assert kinds.count("student") >= 6 and kinds.count("malformed") >= 10
    assert len({entry.name for entry in corpus.ENTRIES}) == len(corpus.ENTRIES)
    for entry in GRADED:
        assert set(entry.expected) | set(entry.scores) <= set(AUTO), entry.name
        assert entry.base is None or entry.base in BY_NAME, entry.name


def test_the_answer_table_holds_what_todays_hidden_tests_ask():
    """Else the attack would be a release answering nothing, a control of itself."""
    table = corpus.harvest()
    assert len(table) >= 30
    assert {key.split("|")[0] for key in table} >= {"softmax", "accuracy", "log_softmax",
                                                    "expected_cost", "two_level_log_prob"}


def test_one_batch_run_gives_one_row_per_entry_and_leaves_nothing_behind(batch):
    assert batch["proc"].returncode == 0, batch["proc"].stderr[-2000:]
    assert sorted(Path(row["submission"]).stem for row in batch["rows"]) == \
        sorted(entry.name for entry in corpus.ENTRIES)
    errors = {Path(row["submission"]).stem for row in batch["rows"] if row["error"]}
    assert errors == {entry.name for entry in corpus.ENTRIES if entry.kind == "malformed"}
    assert list(batch["temp"].iterdir()) == []
    assert leftovers("sandbox_child.py") == ([], [])
    assert leftovers("313")[0] == []  # the detached `sleep 313` died with its sandbox


def expected_outcomes(entry):
    """{part: outcome} the entry must end with; ANY where it is not asserted."""
    untouched = "passed" if entry.on == "reference" else "not_attempted"
    return {part.id: "manual" if part.written else entry.expected.get(part.id, untouched)
            for part in PARTS}


@pytest.mark.parametrize("entry", GRADED, ids=lambda e: e.name)
def test_each_part_ends_as_expected(batch, entry):
    report = batch["reports"][entry.name]
    assert "error" not in report, report.get("error")
    expected = expected_outcomes(entry)
    asserted = {part: outcome for part, outcome in expected.items() if outcome != corpus.ANY}
    assert {part: report["outcomes"][part] for part in asserted} == asserted


def score_problem(score, points, spec):
    """None when a part's score meets `spec` (corpus.Entry.scores, or the outcome's
    default: passed FULL, not_attempted 0.0, anything else fewer than all), else why not."""
    if spec == corpus.FULL:
        spec = points
    if isinstance(spec, tuple):
        low, high = spec
        ok = low - 1e-6 <= score <= high + 1e-6
    elif spec == "less":
        ok = score < points - 1e-6
    else:
        ok = math.isclose(score, spec, abs_tol=1e-6)
    return None if ok else f"{score:g} of {points:g}, expected {spec}"


@pytest.mark.parametrize("entry", GRADED, ids=lambda e: e.name)
def test_each_part_scores_as_expected(batch, entry):
    report = batch["reports"][entry.name]
    problems = {}
    for part, outcome in expected_outcomes(entry).items():
        if part not in corpus.POINTS:
            continue
        default = {"passed": corpus.FULL, "not_attempted": 0.0, corpus.ANY: None}.get(
            outcome, "less")
        spec = entry.scores.get(part, default)
        if spec is not None:
            problem = score_problem(report["parts"][part], corpus.POINTS[part], spec)
            if problem:
                problems[part] = problem
    assert problems == {}


def messages_of(report, key):
    """The messages, lower-cased and joined, of the tests that lost points, of a part
    ('softmax') or of the tests of a part whose names begin so ('softmax: gradient')."""
    part, _, start = key.partition(": ")
    return "\n".join(t["output"].lower() for t in report["gradescope"]["tests"]
                     if t["tags"] == [part] and t["name"].startswith(f"{part}: {start}")
                     and t["score"] < t["max_score"] - 1e-9)


@pytest.mark.parametrize("entry", [e for e in GRADED if e.words], ids=lambda e: e.name)
def test_the_messages_name_the_mistake(batch, entry):
    report = batch["reports"][entry.name]
    missing = {key: [w for w in words if w.lower() not in messages_of(report, key)]
               for key, words in entry.words.items()}
    assert {key: words for key, words in missing.items() if words} == {}


def raised_parts(attack_parts, control_parts):
    """{part: (attack's points, control's)} where the attack scores more."""
    return {part: (attack_parts[part], control_parts[part]) for part in AUTO
            if attack_parts[part] > control_parts[part] + 1e-6}


@pytest.mark.parametrize("entry", [e for e in GRADED if e.kind == "hostile"], ids=lambda e: e.name)
def test_an_attack_never_raises_the_score(batch, entry):
    attack, control = batch["reports"][entry.name], batch["reports"][entry.base]
    assert attack["gradescope"]["score"] <= control["gradescope"]["score"] + 1e-6
    assert raised_parts(attack["parts"], control["parts"]) == {}


def test_an_attack_graded_alone_scores_no_more_than_its_control(batch, tmp_path):
    """The harness patch, the attack with the widest reach in its process, on its own."""
    results = tmp_path / "results.json"
    proc = softgrade("grade", str(batch["paths"]["patch_read_message"]), "--results",
                     str(results), timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    alone = {}
    for test in json.loads(results.read_text())["tests"]:
        alone[test["tags"][0]] = alone.get(test["tags"][0], 0.0) + test["score"]
    assert raised_parts(alone, batch["reports"]["sloppy"]["parts"]) == {}


def test_a_bug_costs_exactly_the_parts_it_breaks(batch):
    full = batch["reports"]["reference"]["parts"]
    for entry in corpus.MISTAKES + corpus.BROKEN_EPOCH + corpus.FEEDBACK + corpus.FROM_SCRATCH:
        scores = batch["reports"][entry.name]["parts"]
        lost = {part for part in AUTO if scores[part] < full[part]}
        assert lost == set(entry.expected), entry.name


def test_the_sandbox_shows_only_a_minimal_environment(batch):
    messages = [t["output"] for t in batch["reports"]["read_environment"]["gradescope"]["tests"]
                if "ENVIRONMENT" in t.get("output", "")]
    assert messages
    names = set(messages[0].split("ENVIRONMENT ")[1].split())
    assert names <= {"PATH", "HOME", "LANG", "MPLBACKEND", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                     "PYTHONHASHSEED", "PYTHONDONTWRITEBYTECODE", "TMPDIR",
                     "MALLOC_MMAP_THRESHOLD_", "PWD"}, names


def test_nothing_the_submission_writes_reaches_the_graders_files(batch):
    assert not (corpus.ROOT / "results.json").exists()
    assert not (batch["folder"] / "results.json").exists()
    assert not list(batch["folder"].rglob("fill*"))


@pytest.mark.parametrize("entry", corpus.MALFORMED, ids=lambda e: e.name)
def test_a_malformed_file_gets_one_clear_line_and_exit_2(batch, entry):
    proc = softgrade("grade", str(batch["paths"][entry.name]), timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("softgrade grade: error: "), proc.stderr
    assert entry.error in lines[0]
    row = next(r for r in batch["rows"] if Path(r["submission"]).stem == entry.name)
    assert entry.error in row["error"]


def test_a_function_doing_nothing_useful_earns_nothing(batch):
    """`return X` leaves its input unchanged and handles an empty batch, properties that
    score only next to a right value."""
    report = batch["reports"]["wrong_softmax"]
    assert report["parts"]["softmax"] == 0
    passed = [t for t in report["gradescope"]["tests"]
              if t["tags"] == ["softmax"] and t["status"] == "passed"]
    assert passed and all("no points" in t["output"] for t in passed)
