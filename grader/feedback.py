"""The student's feedback on one graded submission: `feedback.md` and a self-contained
`feedback.html`, written by `softgrade grade --feedback DIR`.

What it shows:

- the score, and a table of every part with its points, its status and the book
  section that teaches it (grader/guide.py);
- the training curves of the student's Fashion-MNIST check next to the reference
  solution's run of the same scenario, recorded during the same grading
  (`GradeReport.reference_history`): a PNG embedded as a data: URI in the HTML, a
  table of the numbers in the Markdown;
- for every part that lost points: a hint, where to read, and each failed test with
  what was tried (the test's message: function, dtype, shape), the error against its
  tolerance or the measurement against its budget, and the named mistake when the
  hidden test recognised one.

What it never shows: code of any kind (the submission's, the reference's, the hidden
tests'), stack traces, and of a test whose visibility is not "visible" anything but
a count.
"""

import base64
import html
import io
import math
from dataclasses import dataclass
from pathlib import Path

from .guide import Guide, guide
from .results import atomic_write, number_text, points_text, printable, summary, unseen_text

STATUS_WORDS = {"passed": "passed", "failed": "failed", "error": "error (raised)",
                "timeout": "timed out", "crashed": "crashed", "over_budget": "over budget",
                "not_attempted": "not attempted", "manual": "awaiting manual grading",
                "partial": "partly right"}
_PASSING = ("passed", "manual")
# details never shown: code and stack traces stay out; the rest is shown in its own way
# (history as curves) or is a flag the status already says.
_NEVER_SHOWN = {"code", "source", "traceback", "stack", "history", "over_budget",
                "grader_exception", "points"}
STUDENT_COLOUR, REFERENCE_COLOUR = "#1f77b4", "#888888"


@dataclass
class FailedTest:
    """A failed test as the student sees it."""

    name: str
    """The test's name without its part prefix."""
    outcome: str
    """One of results.OUTCOMES."""
    points: str
    """'0 / 1'."""
    message: str
    """What was tried and what went wrong (the named mistake is in `facts` instead)."""
    facts: list[tuple[str, str]]
    """(label, value): the error against the tolerance, the budget, the named mistake..."""


@dataclass
class LostPart:
    """A part that lost points."""

    part: str
    """Its part id."""
    outcome: str
    """Its worst outcome."""
    points: str
    """'2 / 6'."""
    guide: Guide
    """Its hint and where the book teaches it."""
    tests: list[FailedTest]
    """Its failed tests the student may see, those of functions still stubs aside."""
    stubs: list[str]
    """One line per function of the part that is still a stub."""
    unseen: int
    """How many of its failed tests are not visible (shown only as this count)."""


@dataclass
class Curves:
    """Fashion-MNIST histories [(train_loss, train_acc, test_acc), ...] to draw."""

    student: list | None
    """The student's, from the training check's details; None when it gave none."""
    reference: list | None
    """The reference's run of the same scenario; None when not recorded."""
    threshold: float | None
    """The test accuracy the check asks for."""
    check: str
    """The training check's name, for the caption."""


# ---------------------------------------------------------------- content


def part_rows(report):
    """(part, points, status words, outcome, its first book Section or None) for every part."""
    outcomes = report.outcome_by_part()
    rows = []
    for part, (score, max_score) in report.part_scores().items():
        if outcomes[part] == "manual":
            pending = math.fsum(float(t.details.get("points", 0)) for t in report.tests
                                if t.part == part)
            points = f"– / {points_text(pending)} (graded by hand)"
        else:
            points = f"{points_text(score)} / {points_text(max_score)}"
        read = guide(part).read
        rows.append((part, points, STATUS_WORDS[outcomes[part]], outcomes[part],
                     read[0] if read else None))
    return rows


def lost_parts(report):
    """LostPart for every auto-graded part with a failed test, in report order."""
    outcomes, scores = report.outcome_by_part(), report.part_scores()
    lost = []
    for part, outcome in outcomes.items():
        failed = [t for t in report.tests if t.part == part and t.outcome not in _PASSING]
        if not failed:
            continue
        shown = [t for t in failed if t.visibility == "visible"]
        notes = [failed_test(t) for t in shown if t.outcome != "not_attempted"]
        stubs = list(dict.fromkeys(t.message for t in failed if t.outcome == "not_attempted"))
        score, max_score = scores[part]
        lost.append(LostPart(part, outcome, f"{points_text(score)} / {points_text(max_score)}",
                             guide(part), notes, stubs,
                             len([t for t in failed if t.outcome != "not_attempted"])
                             - len(notes)))
    return lost


def failed_test(test):
    """The FailedTest of a TestResult."""
    mistake = test.details.get("mistake")
    message = test.message
    if mistake and message.endswith(f"this looks like {mistake}"):
        message = message.removesuffix(f"this looks like {mistake}").rstrip(" ;,:")
    return FailedTest(test.name.removeprefix(f"{test.part}: "), test.outcome,
                      f"{points_text(test.score)} / {points_text(test.max_score)}",
                      printable(message, 1500), facts(test.details, message))


def facts(details, message):
    """(label, value) pairs of a failed test's measurements, the named mistake last; a value
    its message already states (a returned or expected value) is left out."""
    shown = {k: v for k, v in details.items() if k not in _NEVER_SHOWN}
    mistake = shown.pop("mistake", None)
    pairs = []
    expected = [str(shown.pop("dtype"))] if "dtype" in shown else []
    if "expected_shape" in shown:
        expected.append("shape [" + ", ".join(map(str, shown.pop("expected_shape"))) + "]")
    if expected:
        pairs.append(("expected result", ", ".join(expected)))
    if "max_abs_error" in shown:
        pairs.append(("largest error", error_text(shown.pop("max_abs_error"),
                                                  shown.pop("tolerance", None))))
    if "ratio" in shown:
        what = "peak memory" if "peak_mib" in shown else "time"
        text = f"{number_text(shown.pop('ratio'))}× the reference's"
        if "budget" in shown:
            text += f" (allowed: at most {number_text(shown.pop('budget'))}×)"
        pairs.append((f"{what} against the reference", text))
    if "peak_mib" in shown:
        pairs.append(("peak memory", f"{number_text(shown.pop('peak_mib'))} MiB"))
    if "test_accuracy" in shown:
        text = number_text(shown.pop("test_accuracy"))
        if "threshold" in shown:
            text += f" (needed: at least {number_text(shown.pop('threshold'))})"
        pairs.append(("test accuracy", text))
    for key, value in shown.items():
        text = value_text(value)
        if text not in message and repr(value) not in message:
            pairs.append((key.replace("_", " "), printable(text, 300)))
    if mistake:
        pairs.append(("likely mistake", printable(mistake, 500)))
    return pairs


def error_text(error, tolerance):
    """'0.031, tolerance 0.001 (31× the tolerance)'."""
    text = number_text(error)
    if tolerance is None:
        return text
    text += f", tolerance {number_text(tolerance)}"
    if isinstance(error, float) and math.isfinite(error) and tolerance and error > tolerance:
        text += f" ({error / tolerance:.3g}× the tolerance)"
    return text


def value_text(value):
    """A detail for people: numbers as number_text, lists joined with commas."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return ", ".join(value_text(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {value_text(v)}" for k, v in value.items())
    return number_text(value)


def training_curves(report):
    """Curves of the report's Fashion-MNIST check, or None when there is nothing to draw."""
    check = next((t for t in report.tests if t.part == "train" and "history" in t.details),
                 None)
    visible = check is not None and check.visibility == "visible"
    student = check.details["history"] if visible else None
    if student is None and report.reference_history is None:
        return None
    threshold = check.details.get("threshold") if visible else None
    name = check.name.removeprefix("train: ") if visible else "Fashion-MNIST training"
    return Curves(student, report.reference_history, threshold, name)


def curves_caption(curves):
    """One sentence under the curves."""
    if curves.student is None:
        return ("Your training run gave no history to draw (see the part train below); the "
                "reference solution's run of the same check shows what to expect.")
    yours = (f"Your train_ch3 with your own net, cross_entropy and sgd in the check "
             f"“{curves.check}” (blue)")
    if curves.reference is None:
        return f"{yours}; the reference solution's curve could not be recorded in this grading."
    return (f"{yours}, next to the reference solution's run of the same check on the same "
            "seeded batches in this grading (grey band); curves that coincide overlap.")


def curves_png(curves):
    """PNG bytes: train loss, train accuracy and test accuracy per epoch, yours and the
    reference's. Figure without pyplot: no global state, no display needed."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 2.7), dpi=100, layout="constrained")
    axes = figure.subplots(1, 3)
    # The reference first, as a wide pale band: a student's curve that retraces it exactly
    # (a correct submission does, on the same seeded batches) stays visible on top.
    runs = ((curves.reference, dict(color=REFERENCE_COLOUR, linewidth=7, alpha=0.35,
                                    solid_capstyle="round", label="reference")),
            (curves.student, dict(color=STUDENT_COLOUR, linewidth=2, marker="o", label="yours")))
    for column, (ax, title) in enumerate(zip(axes, ("train loss", "train accuracy",
                                                    "test accuracy"))):
        for history, style in runs:
            if history:
                ax.plot(range(1, len(history) + 1), [finite(h[column]) for h in history], **style)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    if curves.threshold is not None:
        axes[2].axhline(curves.threshold, color="#b00020", linestyle=":",
                        label=f"needed: {number_text(curves.threshold)}")
    figure.legend(*axes[2].get_legend_handles_labels(), loc="outside right center")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def finite(value):
    """A history value to plot: NaN where it is not a finite number (drawn as a gap)."""
    return value if isinstance(value, float) and math.isfinite(value) else math.nan


# ---------------------------------------------------------------- Markdown

_MD_SPECIAL = str.maketrans({c: f"\\{c}" for c in "\\`*_[]<>#|~&"})


def _md(text):
    """Text shown as it is in Markdown: formatting characters escaped, line breaks kept."""
    return printable(text).translate(_MD_SPECIAL).replace("\n", "  \n")


def _md_link(section, site=True):
    if section is None:
        return "–"
    link = f"[{_md(section.number + ' ' + section.title)}]({section.url})"
    return f"{link} ({section.site})" if site else link


def feedback_markdown(report):
    """The student's feedback as Markdown."""
    out = [f"# Feedback: {_md(Path(report.submission).name)}", ""]
    out += [_md(line) + "  " for line in summary(report).splitlines()]
    out += ["", "| part | points | status | read |", "|---|---|---|---|"]
    out += [f"| {_md(part)} | {_md(points)} | {_md(status)} | {_md_link(section, site=False)} |"
            for part, points, status, _, section in part_rows(report)]
    curves = training_curves(report)
    if curves:
        out += ["", "## Training on Fashion-MNIST", "", _md(curves_caption(curves)), "",
                *curves_table(curves)]
    lost = lost_parts(report)
    if lost:
        out += ["", "## What went wrong"]
    for part in lost:
        out += ["", f"### {_md(part.part)}: {part.points} points, {STATUS_WORDS[part.outcome]}",
                "", *hint_lines(part.guide, _md, _md_link, "**{}:** {}  ")]
        out += ["", *(_md(stub[0].upper() + stub[1:]) + "  " for stub in part.stubs)]
        for test in part.tests:
            out += ["", f"#### {_md(test.name)}", "",
                    f"*{_md(STATUS_WORDS[test.outcome])}, {test.points} points*", "",
                    _md(test.message), ""]
            out += [f"- {_md(label)}: {_md(value)}" for label, value in test.facts]
        if part.unseen:
            out += ["", _md(unseen_text(part.unseen))]
    return "\n".join(out).rstrip() + "\n"


def curves_table(curves):
    """Markdown table lines: per epoch, yours / the reference's loss and accuracies."""
    rows = max(len(curves.student or []), len(curves.reference or []))

    def cell(history, epoch, column):
        return number_text(history[epoch][column]) if history and epoch < len(history) else "–"

    lines = ["| epoch | train loss | train accuracy | test accuracy |", "|---|---|---|---|"]
    for epoch in range(rows):
        cells = [f"{cell(curves.student, epoch, c)} / {cell(curves.reference, epoch, c)}"
                 for c in range(3)]
        lines.append(f"| {epoch + 1} | " + " | ".join(cells) + " |")
    return [*lines, "", "(yours / the reference's)"]


def hint_lines(part_guide, escape, link, line):
    """The Hint and Read lines of a part's guide, as `line`.format(label, text)."""
    lines = [line.format("Hint", escape(part_guide.hint))] if part_guide.hint else []
    if part_guide.read:
        lines.append(line.format("Read", "; ".join(map(link, part_guide.read))))
    return lines


# ---------------------------------------------------------------- HTML

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; line-height: 1.45; }
a { color: #00695c; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border: 1px solid #ccc; padding: .2rem .6rem; text-align: left; white-space: nowrap; }
th { background: #f3f3f3; }
.passed { color: #17692f; } .manual { color: #555; }
.failed, .over_budget, .not_attempted, .partial { color: #9a5b00; }
.error, .timeout, .crashed { color: #b00020; }
figure { margin: 1rem 0; } figure img { max-width: 100%; }
figcaption { color: #555; font-size: .9rem; }
.part { border-left: 4px solid #9a5b00; padding: .1rem 1rem; margin: 1.5rem 0;
        background: #fafafa; }
.test { border-top: 1px solid #ddd; } .test h4 { margin-bottom: .3rem; }
.test small { font-weight: normal; }
.message { white-space: pre-wrap; }
.warnings { background: #fff6e0; padding: .5rem 1rem; }
"""


def _esc(text):
    return html.escape(printable(text), quote=True)


def _html_link(section, site=True):
    if section is None:
        return "–"
    link = f'<a href="{_esc(section.url)}">{_esc(section.number + " " + section.title)}</a>'
    return f"{link} ({_esc(section.site)})" if site else link


def _html_table(report):
    lost = {part.part for part in lost_parts(report)}

    def name(part):  # a part that lost points links to its explanation below
        return f'<a href="#{_esc(part)}">{_esc(part)}</a>' if part in lost else _esc(part)

    rows = "".join(
        f'<tr><td>{name(part)}</td><td>{_esc(points)}</td><td class="{outcome}">'
        f"{_esc(status)}</td><td>{_html_link(section, site=False)}</td></tr>"
        for part, points, status, outcome, section in part_rows(report))
    return ('<table class="parts"><thead><tr><th>part</th><th>points</th><th>status</th>'
            f"<th>read</th></tr></thead><tbody>{rows}</tbody></table>")


def _html_curves(curves):
    data = base64.b64encode(curves_png(curves)).decode("ascii")
    return ("<h2>Training on Fashion-MNIST</h2><figure>"
            f'<img src="data:image/png;base64,{data}" alt="training curves: train loss, train '
            'accuracy and test accuracy per epoch, yours and the reference\'s">'
            f"<figcaption>{_esc(curves_caption(curves))}</figcaption></figure>")


def _html_part(part):
    body = [f'<section class="part" id="{_esc(part.part)}"><h3>{_esc(part.part)}: '
            f'{part.points} points, <span class="{part.outcome}">'
            f"{_esc(STATUS_WORDS[part.outcome])}</span></h3>",
            *hint_lines(part.guide, _esc, _html_link, "<p><strong>{}:</strong> {}</p>")]
    body += [f"<p>{_esc(stub[0].upper() + stub[1:])}</p>" for stub in part.stubs]
    for test in part.tests:
        body.append(f'<div class="test"><h4>{_esc(test.name)} <small>· <span class="'
                    f'{test.outcome}">{_esc(STATUS_WORDS[test.outcome])}</span>, {test.points} '
                    f'points</small></h4><p class="message">{_esc(test.message)}</p>')
        if test.facts:
            body.append("<ul>" + "".join(f"<li>{_esc(label)}: {_esc(value)}</li>"
                                         for label, value in test.facts) + "</ul>")
        body.append("</div>")
    if part.unseen:
        body.append(f"<p>{_esc(unseen_text(part.unseen))}</p>")
    return "".join(body) + "</section>"


def feedback_html(report):
    """The student's feedback as one self-contained HTML page: inline CSS, the curves as a
    data: URI; its only links lead to the book."""
    name = Path(report.submission).name
    body = [f"<h1>Feedback: {_esc(name)}</h1>"]
    if report.error:
        body.append(f'<p class="error">The submission could not be graded: '
                    f"{_esc(report.error)}</p>")
    body.append(f'<p class="score">Score: <strong>{points_text(report.score)} / '
                f"{points_text(report.max_score)}</strong> auto-graded points.")
    if report.manual_points:
        body.append(f" Written answers: {points_text(report.manual_points)} more points await "
                    "manual grading.")
    body.append("</p>")
    if report.warnings:
        body.append('<div class="warnings"><p>Warnings:</p><ul>'
                    + "".join(f"<li>{_esc(w)}</li>" for w in report.warnings) + "</ul></div>")
    body.append(_html_table(report))
    curves = training_curves(report)
    if curves:
        body.append(_html_curves(curves))
    lost = lost_parts(report)
    if lost:
        body.append("<h2>What went wrong</h2>")
    body += [_html_part(part) for part in lost]
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>softgrade feedback: {_esc(name)}</title>\n"
            f"<style>{_CSS}</style>\n</head>\n<body>\n" + "\n".join(body)
            + "\n</body>\n</html>\n")


def write_feedback(report, directory):
    """Write `feedback.md` and `feedback.html` into `directory` (created if needed), atomically.

    Returns (markdown path, html path).
    """
    directory = Path(directory)
    return (atomic_write(directory / "feedback.md", feedback_markdown(report).encode("utf-8")),
            atomic_write(directory / "feedback.html", feedback_html(report).encode("utf-8")))
