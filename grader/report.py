"""`softgrade report`: a class's results on one page, from what `grade-batch` wrote.

Reads grades.csv and, for every graded row, its report in `<grades.csv>.cache/`:
the cache names each report by the sha256 key of the notebook (and of the grader),
of which the CSV keeps the first 16 hex digits in its `sha256` column. Writes into
DIR `report.html` with PNGs beside it:

- the class at a glance: submissions, graded, errors, mean and median score;
- a histogram of the scores (scores.png);
- per part, how many submissions ended with each outcome, and the pass rate
  (parts.png and a table);
- the named mistakes the hidden tests recognised: per part and mistake, how many
  submissions made it (a submission that makes it in three tests counts once);
- per performance budget, the measured ratios to the reference against the budget's
  limit (budgets.png and a table), and how many were not timed (their values failed);
- the submissions that could not be graded, with the reason.
"""

import csv
import html
import io
import json
import math
import re
import statistics
import sys
import textwrap
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .batch import cache_dir_for
from .results import SEVERITY, atomic_write, number_text, points_text

DESCRIPTION = """\
Summarise a class graded by `softgrade grade-batch`: reads GRADES (the CSV) and the
reports cached beside it (GRADES.cache/), and writes report.html with its PNGs into
--out: score histogram, pass rate per part, the most common named mistakes, the
distribution of budget ratios, and the submissions that could not be graded."""

REQUIRED_COLUMNS = ("submission", "score", "max_score", "error", "sha256")
AUTO_OUTCOMES = [o for o in SEVERITY if o != "manual"]
OUTCOME_COLOURS = {"passed": "#2e8b57", "partial": "#8fbc8f", "not_attempted": "#b8b8b8", "failed": "#e69f00",
                   "over_budget": "#f0e442", "error": "#d55e00", "timeout": "#8e44ad",
                   "crashed": "#222222"}
EXAMPLES_SHOWN = 3  # submissions named beside a mistake; the rest are counted


class ReportError(ValueError):
    """grades.csv or its cache cannot be read as grade-batch wrote them; one line."""


USER_ERRORS = (ReportError, OSError)


def add_arguments(parser):
    parser.add_argument("grades", metavar="GRADES", help="the CSV written by grade-batch --out")
    parser.add_argument("--out", metavar="DIR",
                        help="where report.html and its pictures go (default: GRADES's folder, "
                             "a subfolder named after it: grades.csv -> grades-report/)")


@dataclass
class Row:
    """One submission of grades.csv, with its cached report when it was graded."""

    submission: str
    """The notebook's path as grade-batch was given it."""
    score: float | None
    """Its score; None when it could not be graded."""
    error: str
    """Why it could not be graded; empty when it was."""
    key: str
    """The CSV's sha256 column: the first 16 hex digits of its report's name in the cache."""
    result: dict | None = None
    """Its cached grade-batch result (gradescope, parts, outcomes); None for an error row."""


@dataclass
class Budget:
    """The measurements of one performance budget over the class."""

    limit: float
    """The largest allowed ratio of the submission's time (or memory) to the reference's."""
    ratios: list[float] = field(default_factory=list)
    """One per timed submission (inf where it did not finish in time); the others were not
    timed: their part was not attempted, or its value tests failed first."""


@dataclass
class ClassSummary:
    """What the report shows, counted from the rows."""

    parts: list[str]
    """Auto-graded part ids, in the CSV's column order."""
    part_points: dict[str, float]
    """Points at stake per part."""
    max_score: float
    """Auto-graded points at stake in all."""
    scores: list[float]
    """Scores of the graded submissions."""
    outcomes: dict[str, Counter]
    """Per part: how many graded submissions ended with each outcome."""
    mistakes: dict[tuple[str, str], list[str]]
    """(part, named mistake) -> the submissions that made it."""
    budgets: dict[str, Budget]
    """Per budget that was timed at least once (its test name): its limit and ratios."""
    errors: list[tuple[str, str]]
    """(submission, reason) of every submission that could not be graded."""


# ---------------------------------------------------------------- reading


def read_grades(path):
    """(auto-graded part ids, [Row] without results) from grades.csv; ReportError when it is
    missing, empty or not what grade-batch writes."""
    path = Path(path)
    if not path.is_file():
        raise ReportError(f"{path}: no such file (grade-batch writes it: "
                          f"softgrade grade-batch DIR --out {path})")
    try:
        with open(path, newline="", encoding="utf-8") as file:
            reader = csv.DictReader(file)
            header = reader.fieldnames or []
            records = list(reader)
    except (UnicodeDecodeError, csv.Error) as err:
        raise ReportError(f"{path}: not a CSV file ({err})") from None
    if not header:
        raise ReportError(f"{path}: the file is empty, not the CSV of softgrade grade-batch")
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    if missing:
        raise ReportError(f"{path}: not the CSV of softgrade grade-batch (no column "
                          f"{', '.join(missing)})")
    if not records:
        raise ReportError(f"{path}: no submissions in it")
    parts = header[header.index("max_score") + 1:header.index("error")]
    return parts, [row_of(record, path, line) for line, record in enumerate(records, start=2)]


def row_of(record, path, line):
    """The Row of one CSV record (line: its line number, for the error message)."""
    if record["error"]:
        return Row(record["submission"], None, record["error"], record["sha256"])
    try:
        return Row(record["submission"], float(record["score"]), "", record["sha256"])
    except (TypeError, ValueError):
        raise ReportError(f"{path}, line {line}: score {record['score']!r} is not a number") \
            from None


def attach_results(path, rows):
    """Give every graded Row its cached result, found by its key prefix; ReportError
    naming the rows whose report is missing."""
    cache = cache_dir_for(path)
    missing = []
    for row in rows:
        if row.error:
            continue
        # checked first: the key becomes part of a glob pattern
        valid = re.fullmatch("[0-9a-f]{16}", row.key or "")
        found = sorted(cache.glob(f"{row.key}*.json")) if valid else []
        if len(found) != 1:
            missing.append(row.submission)
            continue
        row.result = read_result(found[0])
    if missing:
        raise ReportError(f"{path}: {len(missing)} graded row(s) have no report in {cache}/ "
                          f"(first: {missing[0]}); run softgrade grade-batch again with "
                          f"--out {path}")


def read_result(path):
    """One cached result of grade-batch; ReportError when it is not one."""
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ReportError(f"{path}: not a report of grade-batch ({err})") from None
    if not isinstance(result, dict) or not {"gradescope", "outcomes"} <= result.keys():
        raise ReportError(f"{path}: not a report of grade-batch (no gradescope or outcomes)")
    return result


def read_class(path):
    """(parts, [Row] with their results) of a grade-batch CSV and its cache."""
    parts, rows = read_grades(path)
    attach_results(Path(path), rows)
    return parts, rows


# ---------------------------------------------------------------- counting


def summarise(parts, rows):
    """The ClassSummary of the rows."""
    graded = [row for row in rows if not row.error]
    points = points_by_part(graded[0]) if graded else {}
    summary = ClassSummary(parts=parts,
                           part_points={part: points.get(part, 0.0) for part in parts},
                           max_score=math.fsum(points.get(part, 0.0) for part in parts),
                           scores=[row.score for row in graded],
                           outcomes={part: Counter() for part in parts}, mistakes={},
                           budgets={}, errors=[(row.submission, row.error) for row in rows
                                               if row.error])
    for row in graded:
        count_row(summary, row)
    return summary


def points_by_part(row):
    """{part: points at stake} of a graded row's report (the same for every submission)."""
    points = {}
    for test in row.result["gradescope"]["tests"]:
        points[test["tags"][0]] = points.get(test["tags"][0], 0.0) + test["max_score"]
    return points


def count_row(summary, row):
    """Add one graded submission's outcomes, named mistakes and budget ratios."""
    for part in summary.parts:
        summary.outcomes[part][row.result["outcomes"].get(part, "not_attempted")] += 1
    made = set()
    for test in row.result["gradescope"]["tests"]:
        extra = test.get("extra_data", {})
        if extra.get("mistake") and test["status"] == "failed":
            made.add((test["tags"][0], extra["mistake"]))
        if "ratio" in extra:
            budget = summary.budgets.setdefault(test["name"], Budget(float(extra["budget"])))
            budget.ratios.append(float(extra["ratio"]))  # float('inf') reads results.json's 'inf'
    for mistake in sorted(made):
        summary.mistakes.setdefault(mistake, []).append(row.submission)


# ---------------------------------------------------------------- pictures


def _png(figure):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def scores_png(summary):
    """Histogram of the (at least one) scores, 0 to the maximum, in bins of 5% of it."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.5, 2.8), dpi=100, layout="constrained")
    ax = figure.subplots()
    top = summary.max_score or max(summary.scores) or 1.0  # 0 points at stake: still a range
    ax.hist(summary.scores, bins=[top * k / 20 for k in range(21)], color="#1f77b4",
            edgecolor="white")
    mean = statistics.fmean(summary.scores)
    ax.axvline(mean, color="#b00020", linestyle="--", label=f"mean {mean:.1f}")
    ax.legend(loc="upper left")
    ax.set_xlim(0, top)
    ax.set_xlabel(f"score (of {points_text(top)} auto-graded points)")
    ax.set_ylabel("submissions")
    ax.yaxis.get_major_locator().set_params(integer=True)
    return _png(figure)


def parts_png(summary):
    """Per part, a bar split by outcome: the share of graded submissions ending each way."""
    from matplotlib.figure import Figure

    graded = len(summary.scores)
    figure = Figure(figsize=(5.5, 0.3 * len(summary.parts) + 1.4), dpi=100, layout="constrained")
    ax = figure.subplots()
    rows = range(len(summary.parts))
    left = [0.0] * len(summary.parts)
    for outcome in AUTO_OUTCOMES:
        shares = [summary.outcomes[part][outcome] / graded for part in summary.parts]
        if any(shares):
            ax.barh(rows, shares, left=left, color=OUTCOME_COLOURS[outcome],
                    label=outcome.replace("_", " "))
            left = [a + b for a, b in zip(left, shares)]
    ax.set_yticks(rows, summary.parts)
    ax.invert_yaxis()  # the notebook's order, top to bottom
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of graded submissions")
    figure.legend(loc="outside lower center", ncols=4, fontsize=8)
    return _png(figure)


def budgets_png(summary):
    """Per budget, every submission's ratio to the reference (log scale) and the limit."""
    from matplotlib.figure import Figure

    names = list(summary.budgets)
    figure = Figure(figsize=(9, 0.5 * len(names) + 1.3), dpi=100, layout="constrained")
    ax = figure.subplots()
    finite = [r for b in summary.budgets.values() for r in b.ratios if math.isfinite(r)]
    limits = [b.limit for b in summary.budgets.values()]
    right = max(finite + limits) * 3  # room to the right for the ones that never finished
    for y, name in enumerate(names):
        budget = summary.budgets[name]
        shown = [r if math.isfinite(r) else right for r in budget.ratios]
        ax.scatter(shown, [y] * len(shown), color="#1f77b4", alpha=0.6, zorder=3,
                   label="a submission" if y == 0 else None)
        ax.plot([budget.limit] * 2, [y - 0.35, y + 0.35], color="#b00020", linewidth=2,
                label="limit" if y == 0 else None)
    ax.set_xscale("log")
    ax.set_xlim(min(finite + limits) / 3, right * 1.5)
    ax.set_yticks(range(len(names)), [textwrap.fill(name, 34) for name in names], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("time (or peak memory) / the reference's; right edge: no answer in time")
    ax.grid(axis="x", alpha=0.3)
    figure.legend(loc="outside right upper")
    return _png(figure)


# ---------------------------------------------------------------- the page

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 76rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border: 1px solid #ccc; padding: .2rem .6rem; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f3f3f3; }
img { max-width: 100%; }
.row { display: flex; gap: 2rem; align-items: flex-start; }
.row img { min-width: 0; flex: 0 1 auto; height: auto; }  /* shrinks rather than overflows */
"""


def _esc(text):
    return html.escape(str(text), quote=True)


def _table(header, rows, numeric=()):
    """An HTML table (no header row when `header` is None); columns whose index is in
    `numeric` are right-aligned."""
    head = "" if header is None else \
        "<thead><tr>" + "".join(f"<th>{_esc(h)}</th>" for h in header) + "</tr></thead>"
    body = "".join("<tr>" + "".join(
        f'<td class="n">{_esc(cell)}</td>' if i in numeric else f"<td>{_esc(cell)}</td>"
        for i, cell in enumerate(row)) + "</tr>" for row in rows)
    return f"<table>{head}<tbody>{body}</tbody></table>"


def overview_rows(summary, rows):
    scores = summary.scores
    numbers = [("submissions", len(rows)), ("graded", len(scores)),
               ("could not be graded", len(summary.errors))]
    if scores:
        numbers += [("mean score", f"{statistics.fmean(scores):.2f}"),
                    ("median score", f"{statistics.median(scores):.2f}"),
                    ("lowest / highest", f"{min(scores):.2f} / {max(scores):.2f}"),
                    ("points at stake", points_text(summary.max_score))]
    return numbers


def outcomes_seen(summary):
    """The auto-graded outcomes some part ended with, "passed" always, in SEVERITY order."""
    return [o for o in AUTO_OUTCOMES
            if o == "passed" or any(counts[o] for counts in summary.outcomes.values())]


def part_table_rows(summary):
    graded = len(summary.scores)
    return [[part, points_text(summary.part_points[part]),
             *(summary.outcomes[part][o] for o in outcomes_seen(summary)),
             f"{summary.outcomes[part]['passed'] / graded:.0%}" if graded else "–"]
            for part in summary.parts]


def mistake_rows(summary):
    """Most common first: part, mistake, submissions, a few of them."""
    ranked = sorted(summary.mistakes.items(), key=lambda item: (-len(item[1]), item[0]))
    return [[part, mistake, len(who), ", ".join(Path(w).name for w in who[:EXAMPLES_SHOWN])
             + (f" and {len(who) - EXAMPLES_SHOWN} more" if len(who) > EXAMPLES_SHOWN else "")]
            for (part, mistake), who in ranked]


def budget_rows(summary):
    rows = []
    for name, budget in summary.budgets.items():
        ratios = budget.ratios
        rows.append([name, number_text(budget.limit), len(ratios),
                     number_text(statistics.median(ratios)), number_text(max(ratios)),
                     sum(1 for r in ratios if r > budget.limit), len(summary.scores) - len(ratios)])
    return rows


def report_html(summary, rows, csv_path, pictures):
    """The page; `pictures` are the file names of the PNGs written beside it."""
    seen = outcomes_seen(summary)
    body = [f"<h1>Class report: {_esc(Path(csv_path).name)}</h1>", '<div class="row">',
            _table(None, overview_rows(summary, rows), numeric=(1,)),
            '<img src="scores.png" alt="histogram of the scores">'
            if "scores.png" in pictures else "", "</div>",
            "<h2>Parts</h2>", '<div class="row">',
            _table(["part", "points", *(o.replace("_", " ") for o in seen), "pass rate"],
                   part_table_rows(summary), numeric=tuple(range(1, len(seen) + 3))),
            '<img src="parts.png" alt="per part, the share of submissions by outcome">'
            if "parts.png" in pictures else "", "</div>"]
    body.append("<h2>Named mistakes</h2>")
    body.append(_table(["part", "mistake", "submissions", "for example"], mistake_rows(summary),
                       numeric=(2,)) if summary.mistakes else
                "<p>No hidden test recognised a named mistake.</p>")
    if summary.budgets:
        body.append("<h2>Performance budgets</h2>")
        body.append('<img src="budgets.png" alt="per budget, the ratios to the reference">')
        body.append(_table(["budget", "limit", "timed", "median ratio", "largest ratio",
                            "over budget", "not timed"], budget_rows(summary),
                           numeric=(1, 2, 3, 4, 5, 6)))
    body.append("<h2>Could not be graded</h2>")
    body.append(_table(["submission", "reason"], summary.errors) if summary.errors else
                "<p>Every submission was graded.</p>")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>softgrade class report: {_esc(Path(csv_path).name)}</title>\n"
            f"<style>{_CSS}</style>\n</head>\n<body>\n" + "\n".join(body)
            + "\n</body>\n</html>\n")


def write_report(csv_path, out):
    """Write report.html and its PNGs into `out`; returns (the page's Path, ClassSummary)."""
    parts, rows = read_class(csv_path)
    summary = summarise(parts, rows)
    out = Path(out)
    pictures = {}
    if summary.scores:
        pictures["scores.png"] = scores_png(summary)
        pictures["parts.png"] = parts_png(summary)
    if summary.budgets:
        pictures["budgets.png"] = budgets_png(summary)
    for name, data in pictures.items():
        atomic_write(out / name, data)
    page = report_html(summary, rows, csv_path, pictures)
    return atomic_write(out / "report.html", page.encode("utf-8")), summary


def default_out(csv_path):
    """grades.csv -> grades-report/ beside it."""
    csv_path = Path(csv_path)
    return csv_path.with_name(f"{csv_path.stem}-report")


def run(args):
    page, summary = write_report(args.grades, args.out or default_out(args.grades))
    print(f"wrote {page}: {len(summary.scores) + len(summary.errors)} submissions, "
          f"{len(summary.errors)} could not be graded", file=sys.stderr)
    return 0
