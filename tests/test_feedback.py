"""The student's feedback (grader/feedback.py): every lost part explained with its numbers,
a hint and the book; training curves next to the reference's; nothing hidden, no code.
End to end: a real grading's feedback.html rendered by headless Chromium."""

import base64
import io
import json
import re
import subprocess
import sys
import tokenize
from html.parser import HTMLParser
from pathlib import Path

import numpy
import pytest
from PIL import Image, ImageStat
from test_results import SCRIPT, make_report

from grader.feedback import STUDENT_COLOUR, feedback_html, feedback_markdown, lost_parts, write_feedback
from grader.guide import GUIDES, guide
from grader.notebook import read_notebook
from grader.results import GradeReport, TestResult, number_text, points_text, written_answer

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "assignments" / "softmax_regression" / "softmax_regression.ipynb"
BUGGY = ROOT / "examples" / "submissions" / "buggy.ipynb"
sys.path.insert(0, str(ROOT / "scripts"))
from headless_chromium import dump_dom, find_chromium, screenshot  # noqa: E402

# Every part id of ASSIGNMENT.md that carries auto-graded points.
AUTO_PARTS = ["softmax", "net", "cross_entropy", "accuracy", "evaluate_accuracy", "accumulator",
              "sgd", "train_epoch", "train", "predict", "ex1_overflow", "ex2_log_domain",
              "ex3_stable_loss", "ex4_decision", "ex5_large_vocab"]
# details that hold measured numbers the student must see when a test fails
MEASURED = ("max_abs_error", "tolerance", "ratio", "budget", "peak_mib", "test_accuracy",
            "threshold")
HISTORY = [[0.7852, 0.7488, 0.786], [0.5705, 0.8135, 0.812], [0.5257, 0.8252, 0.8213]]
SLOW_HISTORY = [[2.1, 0.52, 0.61], [1.7, 0.6, 0.66], [1.5, 0.64, 0.69]]
MEAN_MISTAKE = "the mean over the batch (one number) instead of one loss per example"
needs_chromium = pytest.mark.skipif(find_chromium() is None,
                                    reason="no chromium (scripts/install.sh installs it as root)")


class PageParser(HTMLParser):
    """Checks nesting of the page; collects its table rows (cell texts), its text, the text of
    each <section id=...>, every tag and every (tag, attribute, value)."""

    VOID = {"meta", "br", "hr", "img", "link", "input"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.tags, self.rows, self.text, self.attrs = [], [], [], [], []
        self.sections, self.section = {}, None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [(tag, name, value) for name, value in attrs]
        if tag == "tr":
            self.rows.append([])
        if tag in ("td", "th"):
            self.rows[-1].append("")
        if tag == "section":
            self.section = dict(attrs)["id"]
            self.sections[self.section] = ""
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()
        if tag == "section":
            self.section = None

    def handle_data(self, data):
        self.text.append(data)
        if "td" in self.stack or "th" in self.stack:
            self.rows[-1][-1] += data
        if self.section:
            self.sections[self.section] += data


def parse(page):
    parser = PageParser()
    parser.feed(page)
    parser.close()
    assert parser.stack == []  # every element closed
    return parser


def markdown_text(markdown):
    """Markdown as read: escapes removed."""
    return re.sub(r"\\(.)", r"\1", markdown)


def markdown_sections(markdown):
    """{part: the text of its '### part: ...' section}."""
    chunks = re.split(r"^### ", markdown_text(markdown), flags=re.M)[1:]
    return {chunk.split(":", 1)[0]: chunk for chunk in chunks}


def class_of_mistakes():
    """A report with a failure of every kind the feedback explains, a hidden failure, a part
    not attempted, the training check with its history and the reference's history."""
    tests = [
        TestResult("softmax: float16 [64, 10] matches the reference", "softmax", 0, 2, "failed",
                   "softmax on float16 [64, 10]: max |error| 3.1e-02 > tolerance 1.5e-03; this "
                   "looks like the softmax over dim 0 instead of dim 1",
                   {"expected_shape": [64, 10], "dtype": "float16", "max_abs_error": 0.031,
                    "tolerance": 0.0015, "mistake": "the softmax over dim 0 instead of dim 1"}),
        TestResult("softmax: softmax of [16384, 10]", "softmax", 0, 1, "failed",
                   "not timed: the value tests of this part fail, fix them first"),
        TestResult("softmax: rows sum to 1", "softmax", 1, 1, "passed", "sums within 1e-6"),
        TestResult("cross_entropy: [8, 10] per-example losses", "cross_entropy", 0, 2, "failed",
                   f"cross_entropy on float32 [8, 10]: returned shape [], expected [8]; this "
                   f"looks like {MEAN_MISTAKE}",
                   {"expected_shape": [8], "dtype": "float32", "mistake": MEAN_MISTAKE}),
        TestResult("accuracy: an empty batch", "accuracy", 0, 1, "error",
                   "your code raised IndexError: too many indices", {"ename": "IndexError"}),
        TestResult("accuracy: SECRET-NAME", "accuracy", 0, 1, "failed", "SECRET-MESSAGE",
                   {"returned": 3.0, "expected": "SECRET-EXPECTED"}, visibility="hidden"),
        TestResult("train: Fashion-MNIST: test accuracy >= 0.78 after 3 epochs", "train", 0, 3,
                   "failed", "train_ch3 on Fashion-MNIST: test accuracy 0.6900 < 0.78",
                   {"test_accuracy": 0.69, "reported_test_accuracy": 0.69, "threshold": 0.78,
                    "history": SLOW_HISTORY}),
        TestResult("predict: labels in class order", "predict", 0, 4, "not_attempted",
                   "not attempted: the stub still raises NotImplementedError"),
        TestResult("ex5_large_vocab: peak memory at V = 65,536", "ex5_large_vocab", 0, 2,
                   "over_budget", "over budget: 64 MiB at its peak, 7.9x the reference's",
                   {"ratio": 7.928, "budget": 3, "peak_mib": 63.9, "over_budget": True}),
        written_answer("ex1_written", 4),
    ]
    return GradeReport("/subs/carol/softmax_regression.ipynb", tests,
                       reference_history=HISTORY)


def blue_pixels(png):
    """How many pixels of a PNG are close to the student's curve colour."""
    pixels = numpy.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=float)
    target = [int(STUDENT_COLOUR[i:i + 2], 16) for i in (1, 3, 5)]
    return int((((pixels - target) ** 2).sum(axis=2) < 40 ** 2).sum())


def curves_image(page):
    """The PNG bytes of the page's embedded curves, or None."""
    found = re.search(r'src="data:image/png;base64,([^"]+)"', page)
    return base64.b64decode(found.group(1)) if found else None


# ---------------------------------------------------------------- unit tests


def test_every_part_has_a_guide_with_a_hint_and_a_classic_section():
    assert sorted(GUIDES) == sorted(AUTO_PARTS)
    for part in AUTO_PARTS + [f"ex{k}_written" for k in range(1, 6)]:
        read = guide(part).read
        assert guide(part).hint and read, part
        assert read[0].site == "classic.d2l.ai" and read[0].number.startswith("3.")
        assert all(s.url.startswith(f"https://{s.site}/") and "#" in s.url for s in read)


def test_every_lost_part_is_explained_with_numbers_and_a_hint():
    report = class_of_mistakes()
    page = parse(feedback_html(report))
    md_sections = markdown_sections(feedback_markdown(report))
    lost = {p for p, o in report.outcome_by_part().items() if o not in ("passed", "manual")}
    assert lost == {"softmax", "cross_entropy", "accuracy", "train", "predict",
                    "ex5_large_vocab"}
    for part in lost:
        for text in (page.sections[part], md_sections[part]):
            assert guide(part).hint in text and guide(part).read[0].title in text, part
            score, max_score = report.part_scores()[part]
            assert f"{points_text(score)} / {points_text(max_score)} points" in text
            for test in report.tests:
                if test.part != part or test.outcome == "passed" or test.visibility != "visible":
                    continue
                if test.outcome != "not_attempted":
                    assert test.name.removeprefix(f"{part}: ") in text
                for key in MEASURED:
                    if key in test.details:
                        assert number_text(test.details[key]) in text, (part, key)
                if "mistake" in test.details:
                    assert f"likely mistake: {test.details['mistake']}" in text
    assert "largest error: 0.031, tolerance 0.0015 (20.7× the tolerance)" \
        in page.sections["softmax"]
    assert "expected result: float16, shape [64, 10]" in page.sections["softmax"]
    assert "peak memory against the reference: 7.93× the reference's (allowed: at most 3×)" \
        in page.sections["ex5_large_vocab"]
    assert "Not attempted" in page.sections["predict"]


def test_a_test_that_is_not_visible_shows_only_as_a_count():
    report = class_of_mistakes()
    page, markdown = feedback_html(report), feedback_markdown(report)
    for text in (page, markdown):
        assert "SECRET" not in text
    assert "1 more failed test of this part is not shown" in parse(page).sections["accuracy"]
    assert "1 more failed test of this part is not shown" in markdown_sections(markdown)["accuracy"]


def test_curves_show_the_students_run_next_to_the_references():
    report = class_of_mistakes()
    markdown = markdown_text(feedback_markdown(report))
    for epoch, (yours, reference) in enumerate(zip(SLOW_HISTORY, HISTORY), start=1):
        cells = [f"{number_text(a)} / {number_text(b)}" for a, b in zip(yours, reference)]
        assert f"| {epoch} | " + " | ".join(cells) + " |" in markdown
    both = curves_image(feedback_html(report))
    image = Image.open(io.BytesIO(both))
    assert image.format == "PNG" and image.width > 500 and image.height > 200
    assert max(ImageStat.Stat(image.convert("L")).stddev) > 20  # not a blank picture
    assert blue_pixels(both) > 200  # the student's curve is drawn

    report.reference_history = None
    alone = feedback_html(report)
    caption = "".join(parse(alone).text)
    assert "curve could not be recorded" in caption and "grey band" not in caption
    assert blue_pixels(curves_image(alone)) > 200


def test_without_the_students_history_the_reference_is_drawn_alone():
    report = class_of_mistakes()
    check = next(t for t in report.tests if "history" in t.details)
    check.visibility = "hidden"  # a check the student may not see draws nothing of theirs
    page = feedback_html(report)
    assert "gave no history to draw" in page
    assert blue_pixels(curves_image(page)) == 0
    report.reference_history = None
    assert curves_image(feedback_html(report)) is None
    assert "Training on Fashion-MNIST" not in feedback_markdown(report)


def test_feedback_html_is_self_contained_and_escaped(tmp_path):
    report = make_report()
    md_path, html_path = write_feedback(report, tmp_path / "feedback")
    assert (md_path.name, html_path.name) == ("feedback.md", "feedback.html")
    page_text = html_path.read_text(encoding="utf-8")
    page = parse(page_text)
    assert "script" not in page.tags                         # the message stayed text
    assert not {"link", "iframe", "object"} & set(page.tags)
    for _tag, name, value in page.attrs:                      # nothing loaded from elsewhere
        assert name not in ("src", "href") or value.startswith(
            ("https://classic.d2l.ai/", "https://d2l.ai/", "#", "data:image/png;base64,")), value
    text = "".join(page.text)
    assert SCRIPT in text and SCRIPT not in page_text          # escaped, yet readable

    rows = {row[0]: row[1:] for row in page.rows}
    assert rows["part"] == ["points", "status", "read"]
    assert rows["softmax"] == ["2 / 4", "failed", "3.6.2 Defining the Softmax Operation"]
    assert rows["cross_entropy"][:2] == ["0.5 / 3", "error (raised)"]
    assert rows["train"][:2] == ["0 / 5", "timed out"]
    assert rows["evaluate_accuracy"][:2] == ["0 / 2", "crashed"]
    assert rows["ex5_large_vocab"][:2] == ["0 / 3", "over budget"]
    assert rows["predict"][:2] == ["0 / 2", "not attempted"]
    assert rows["ex1_written"][:2] == ["– / 3 (graded by hand)", "awaiting manual grading"]
    assert len(page.rows) == 1 + len(report.part_scores())

    assert "largest error: nan, tolerance 0.001" in text
    assert "time against the reference: 12.5× the reference's (allowed: at most 5×)" in text
    assert "IndexError: too many indices" in text
    assert "Score: 2.5 / 20 auto-graded points." in text
    assert "not isolated: graded with --unsafe-no-sandbox" in text
    assert "BOOM" not in page_text                           # never code
    assert "p.grad was not zeroed" not in page_text          # not a visible test
    assert "1 more failed test of this part is not shown" in text
    assert "max abs error 1.2e-07" not in text               # passed tests are not listed


def test_feedback_markdown_has_the_table_and_escapes(tmp_path):
    md_path, _ = write_feedback(make_report(), tmp_path)
    text = md_path.read_text(encoding="utf-8")
    assert re.search(r"^\| softmax \| 2 / 4 \| failed \| \[3\.6\.2 ", text, re.M)
    assert "| ex1\\_written | – / 3 (graded by hand) | awaiting manual grading |" in text
    assert "<script>" not in text and "\\<script\\>" in text
    assert "BOOM" not in text and "p.grad was not zeroed" not in text
    assert "- largest error: nan, tolerance 0.001" in text


def test_a_part_id_without_a_guide_is_still_reported():
    report = GradeReport("s.ipynb", tests=[TestResult("extra: a", "extra", 0, 1, "failed", "no")])
    assert lost_parts(report)[0].guide.read == ()
    assert "| extra | 0 / 1 | failed | – |" in feedback_markdown(report)
    assert "<td>extra</td>" not in feedback_html(report)  # linked to its explanation instead


# ---------------------------------------------------------------- a real grading


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """`softgrade grade buggy.ipynb --feedback DIR --results r.json`: (folder, results)."""
    folder = tmp_path_factory.mktemp("feedback")
    proc = subprocess.run([sys.executable, "-m", "grader.cli", "grade", str(BUGGY), "--feedback",
                           str(folder / "feedback"), "--results", str(folder / "r.json")],
                          capture_output=True, text=True, cwd=folder, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return folder / "feedback", json.loads((folder / "r.json").read_text())


def part_totals(results):
    """{part: (score, max_score, outcomes)} from results.json."""
    totals = {}
    for test in results["tests"]:
        score, max_score, outcomes = totals.get(test["tags"][0], (0.0, 0.0, []))
        totals[test["tags"][0]] = (score + test["score"], max_score + test["max_score"],
                                   outcomes + [test["extra_data"]["outcome"]])
    return totals


def code_lines(source, lines=None):
    """Stripped lines of Python `source` (of 20 characters or more) that hold code: a name
    outside strings and comments. `lines`: only these line numbers."""
    numbers = {token.start[0] for token in tokenize.generate_tokens(io.StringIO(source).readline)
               if token.type == tokenize.NAME}
    text = source.splitlines()
    return {text[n - 1].strip() for n in numbers
            if (lines is None or n in lines) and len(text[n - 1].strip()) >= 20}


def secret_code():
    """Code lines of the hidden tests, the budgets, the scenarios, the reference package and
    the source notebook's solutions."""
    files = [*(ROOT / "grader" / "hidden").glob("*.py"), ROOT / "grader" / "budgets.py",
             ROOT / "grader" / "scenarios.py", *(ROOT / "solutions").glob("*.py")]
    found = set().union(*(code_lines(path.read_text()) for path in files))
    for cell in read_notebook(SOURCE).cells:
        if cell.cell_type == "code" and "### BEGIN SOLUTION" in cell.source:
            source = cell.source.splitlines()
            begin = next(i for i, line in enumerate(source) if "BEGIN SOLUTION" in line)
            end = next(i for i, line in enumerate(source) if "END SOLUTION" in line)
            found |= code_lines(cell.source, range(begin + 2, end + 1))
    return found


def test_a_real_gradings_lost_parts_are_all_explained(graded):
    folder, results = graded
    page = parse((folder / "feedback.html").read_text(encoding="utf-8"))
    md_sections = markdown_sections((folder / "feedback.md").read_text(encoding="utf-8"))
    lost = [part for part, (_, _, outcomes) in part_totals(results).items()
            if set(outcomes) - {"passed", "manual"}]
    assert lost  # buggy.ipynb loses points in four parts
    for part in lost:
        for text in (page.sections[part], md_sections[part]):
            assert guide(part).hint in text
            for test in results["tests"]:
                extra = test["extra_data"]
                if test["tags"][0] == part and extra["outcome"] != "passed":
                    assert test["name"].removeprefix(f"{part}: ") in text
                    for key in MEASURED:
                        if key in extra:
                            assert number_text(extra[key]) in text, (part, key)
                    assert extra.get("mistake", "") in text


def test_no_code_of_the_grader_or_the_reference_reaches_the_student(graded):
    folder, _ = graded
    secret = secret_code()
    assert len(secret) > 300  # the check reads what it should
    page = "".join(parse((folder / "feedback.html").read_text(encoding="utf-8")).text)
    markdown = markdown_text((folder / "feedback.md").read_text(encoding="utf-8"))
    for text in (page, markdown):
        assert not [line for line in secret if line in text]
        for marker in ("def ", "import ", "lambda ", "Traceback", "BEGIN SOLUTION"):
            assert marker not in text


def test_the_reference_curve_is_a_run_of_the_same_check(graded):
    """buggy.ipynb's training functions are the reference's: on the same seeded batches its
    run retraces the reference's, which the grader recorded in the same grading."""
    folder, results = graded
    markdown = markdown_text((folder / "feedback.md").read_text(encoding="utf-8"))
    rows = re.findall(r"^\| (\d) \| (.+) \|$", markdown, re.M)
    assert [epoch for epoch, _ in rows] == ["1", "2", "3"]
    for _, cells in rows:
        for cell in cells.split(" | "):
            yours, reference = cell.split(" / ")
            assert yours == reference != "–"
    check = next(t for t in results["tests"] if "history" in t["extra_data"])
    last_test_accuracy = rows[-1][1].split(" | ")[2].split(" / ")[0]
    assert last_test_accuracy == number_text(check["extra_data"]["test_accuracy"])


@needs_chromium
def test_the_feedback_page_renders_in_chromium(graded, tmp_path):
    folder, results = graded
    page = folder / "feedback.html"
    png = screenshot(page, tmp_path / "feedback.png", width=1100, height=1800)
    image = Image.open(png).convert("RGB")
    assert image.size == (1100, 1800)
    assert max(ImageStat.Stat(image.convert("L")).stddev) > 20      # not blank
    assert blue_pixels(png.read_bytes()) > 200                       # the curves were drawn

    dom = parse(dump_dom(page))
    rows = {row[0]: row[1:] for row in dom.rows if len(row) == 4}
    totals = part_totals(results)
    for part, (score, max_score, outcomes) in totals.items():
        if "manual" not in outcomes:
            assert rows[part][0] == f"{points_text(score)} / {points_text(max_score)}", part
    assert set(rows) == {"part", *totals}
    assert any(tag == "img" and name == "src" and value.startswith("data:image/png;base64,")
               for tag, name, value in dom.attrs)

