"""`softgrade report`: a class graded by grade-batch (the examples, variants made by small
edits of the source notebook, one file that is not a notebook) summarised on one page
whose counts are the CSV's; rendered by headless Chromium; one-line errors."""

import csv
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import numpy
import pytest
from PIL import Image, ImageStat
from test_feedback import PageParser, needs_chromium

from grader.hidden.cross_entropy import MEAN
from grader.hidden.ex4_decision import LESS_EQUAL
from grader.notebook import find_parts, read_notebook
from grader.report import OUTCOME_COLOURS
from grader.results import points_text

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "assignments" / "softmax_regression" / "softmax_regression.ipynb"
sys.path.insert(0, str(ROOT / "examples"))
sys.path.insert(0, str(ROOT / "scripts"))
from headless_chromium import dump_dom, screenshot  # noqa: E402
from make_class import write_class  # noqa: E402

SOFTMAX_BUDGET = "softmax: softmax of [16384, 10]"


def softgrade(*args, cwd):
    return subprocess.run([sys.executable, "-m", "grader.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=900)


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    """(grades.csv, its rows, the report's folder) of the small class of make_class.py."""
    root = tmp_path_factory.mktemp("class")
    write_class(root / "class")
    batch = softgrade("grade-batch", "class", "--workers", "2", "--out", "grades.csv", cwd=root)
    assert batch.returncode == 0, batch.stderr
    report = softgrade("report", "grades.csv", cwd=root)  # default --out: grades-report/
    assert report.returncode == 0, report.stderr
    with open(root / "grades.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    return root / "grades.csv", rows, root / "grades-report"


def page_of(folder):
    parser = PageParser()
    parser.feed((folder / "report.html").read_text(encoding="utf-8"))
    parser.close()
    return parser


def table(parser, *header_start):
    """{first cell: [the row as {header: cell}]} of the table whose header row starts with
    the cells `header_start`."""
    start = next(i for i, row in enumerate(parser.rows)
                 if tuple(row[:len(header_start)]) == header_start)
    header = parser.rows[start]
    rows = {}
    for row in parser.rows[start + 1:]:
        if len(row) != len(header):
            break
        rows.setdefault(row[0], []).append(dict(zip(header, row)))
    return rows


def test_the_pictures_are_valid_pngs(graded_class):
    _, _, folder = graded_class
    page = page_of(folder)
    sources = [value for tag, name, value in page.attrs if tag == "img" and name == "src"]
    assert sorted(sources) == ["budgets.png", "parts.png", "scores.png"]
    for name in sources:
        with Image.open(folder / name) as image:
            image.verify()
        with Image.open(folder / name) as image:
            assert image.format == "PNG" and image.width > 400
            assert max(ImageStat.Stat(image.convert("L")).stddev) > 20


def test_the_counts_are_the_csvs(graded_class):
    _, rows, folder = graded_class
    page = page_of(folder)
    overview = {row[0]: row[1] for row in page.rows if len(row) == 2}
    graded = [row for row in rows if not row["error"]]
    scores = [float(row["score"]) for row in graded]
    assert overview["submissions"] == str(len(rows)) == "7"
    assert overview["graded"] == str(len(graded))
    assert overview["could not be graded"] == str(len(rows) - len(graded)) == "1"
    assert overview["mean score"] == f"{statistics.fmean(scores):.2f}"
    assert overview["median score"] == f"{statistics.median(scores):.2f}"

    parts = {part: found[0] for part, found in table(page, "part", "points").items()}
    for part in find_parts(read_notebook(SOURCE)):
        if part.written:
            continue
        full = sum(1 for row in graded if float(row[part.id]) == pytest.approx(part.points))
        assert parts[part.id]["passed"] == str(full), part.id
        assert parts[part.id]["points"] == points_text(part.points)
        assert parts[part.id]["pass rate"] == f"{full / len(graded):.0%}"


def test_named_mistakes_are_counted_in_submissions(graded_class):
    _, _, folder = graded_class
    mistakes = {(row["part"], row["mistake"]): row
                for rows in table(page_of(folder), "part", "mistake").values() for row in rows}
    # mean_loss and mean_loss_reject return the mean loss; buggy and mean_loss_reject
    # refer at the threshold: each is one submission however many tests saw it
    assert mistakes[("cross_entropy", MEAN)]["submissions"] == "2"
    assert mistakes[("ex4_decision", LESS_EQUAL)]["submissions"] == "2"
    assert "mean_loss.ipynb" in mistakes[("cross_entropy", MEAN)]["for example"]
    counts = [int(row["submissions"]) for row in mistakes.values()]
    assert counts == sorted(counts, reverse=True)  # the most common first


def test_budget_ratios_show_the_python_loop(graded_class):
    _, rows, folder = graded_class
    budgets = table(page_of(folder), "budget")
    softmax = budgets[SOFTMAX_BUDGET][0]
    graded = [row for row in rows if not row["error"]]
    full = [row for row in graded if float(row["softmax"]) == pytest.approx(5)]
    assert softmax["over budget"] == "1"  # loop_softmax.ipynb
    assert float(softmax["largest ratio"]) > 5 * 3  # far past its budget, decided at once
    assert int(softmax["timed"]) == len(full) + 1  # the loop was timed too, then failed it
    assert int(softmax["timed"]) + int(softmax["not timed"]) == len(graded)


def test_errored_submissions_are_listed_with_their_reason(graded_class):
    _, rows, folder = graded_class
    errors = table(page_of(folder), "submission")
    expected = {row["submission"]: row["error"] for row in rows if row["error"]}
    assert {name: found[0]["reason"] for name, found in errors.items()} == expected
    assert "invalid JSON" in next(iter(expected.values()))


@needs_chromium
def test_the_report_renders_in_chromium(graded_class, tmp_path):
    _, rows, folder = graded_class
    png = screenshot(folder / "report.html", tmp_path / "report.png", width=1250, height=1400)
    image = Image.open(png).convert("RGB")
    assert max(ImageStat.Stat(image.convert("L")).stddev) > 20  # not blank
    pixels = numpy.asarray(image, dtype=float)
    green = [int(OUTCOME_COLOURS["passed"][i:i + 2], 16) for i in (1, 3, 5)]
    assert (((pixels - green) ** 2).sum(axis=2) < 30 ** 2).sum() > 2000  # parts.png was drawn
    dom = PageParser()
    dom.feed(dump_dom(folder / "report.html"))
    assert {row[0] for row in dom.rows if len(row) == 2} >= {"submissions", "graded"}
    header = list(rows[0])
    assert list(table(dom, "part", "points")) == header[header.index("max_score") + 1:
                                                         header.index("error")]


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ("", "the file is empty"),
    ("name,points\nalice,3\n", "no column submission, score, max_score, error, sha256"),
    ("submission,score,max_score,softmax,error,sha256\n", "no submissions in it"),
    ("submission,score,max_score,softmax,error,sha256\na.ipynb,x,80,5,,0123456789abcdef\n",
     "line 2: score 'x' is not a number"),
    ("submission,score,max_score,softmax,error,sha256\na.ipynb,5,80,5,,0123456789abcdef\n",
     "1 graded row(s) have no report in grades.csv.cache/"),
])
def test_a_csv_it_cannot_read_is_one_line(tmp_path, content, message):
    if content is not None:
        (tmp_path / "grades.csv").write_text(content)
    proc = softgrade("report", "grades.csv", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
    assert proc.stderr.startswith("softgrade report: error: grades.csv")
    assert not (tmp_path / "grades-report").exists()


@pytest.mark.parametrize("cached", ["{truncated", '{"error": "graded by another version"}'])
def test_a_cache_entry_that_is_not_a_report_is_one_line(graded_class, tmp_path, cached):
    csv_path, rows, _ = graded_class
    shutil.copy(csv_path, tmp_path / "grades.csv")
    shutil.copytree(f"{csv_path}.cache", tmp_path / "grades.csv.cache")
    key = next(row["sha256"] for row in rows if not row["error"])
    next((tmp_path / "grades.csv.cache").glob(f"{key}*.json")).write_text(cached)
    proc = softgrade("report", "grades.csv", "--out", "elsewhere", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "not a report of grade-batch" in proc.stderr
    assert not (tmp_path / "elsewhere").exists()


def test_out_chooses_the_folder(graded_class, tmp_path):
    csv_path, _, folder = graded_class
    proc = softgrade("report", str(csv_path), "--out", str(tmp_path / "mine"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == \
        sorted(p.name for p in folder.iterdir())
    assert (tmp_path / "mine" / "report.html").read_text() == \
        (folder / "report.html").read_text()


def test_a_class_where_nothing_could_be_graded_still_gets_a_page(tmp_path):
    (tmp_path / "grades.csv").write_text(
        "submission,score,max_score,softmax,error,sha256\n"
        "a.ipynb,,,,a.ipynb: not a notebook,0123456789abcdef\n")
    proc = softgrade("report", "grades.csv", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    page = page_of(tmp_path / "grades-report")
    overview = {row[0]: row[1] for row in page.rows if len(row) == 2}
    assert (overview["graded"], overview["could not be graded"]) == ("0", "1")
    errors = table(page, "submission", "reason")
    assert errors["a.ipynb"][0]["reason"] == "a.ipynb: not a notebook"
    assert not [tag for tag in page.tags if tag == "img"]
