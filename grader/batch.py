"""`softgrade grade-batch`: a class's submissions, graded in parallel, resumable.

Every finished report is stored at once (atomically) under a cache folder beside
the CSV, keyed by the hash of the notebook's content (and of the source notebook and
the grader's code); a run that is interrupted, even
killed, and started again grades only what is missing, and a resubmitted notebook
with new content is graded again. The CSV is rewritten from the cache at the end.
"""

import csv
import hashlib
import json
import multiprocessing
import multiprocessing.util
import os
import shutil
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from tqdm import tqdm

from .notebook import NotebookError, find_parts, read_notebook
from .secret import DEFAULT_SECRET, add_secret_argument, course_secret, warn_if_default

USER_ERRORS = (NotebookError, OSError)

DESCRIPTION = """\
Grade every .ipynb under DIR (checkpoints excluded) with `softgrade grade`'s hidden
tests and budgets, in parallel, with a progress bar. Writes one CSV row per
submission with a column per part. Resumable: reports are cached next to the CSV
by content hash, so a rerun grades only new or changed notebooks. A submission
that cannot be graded gets an error row; the batch goes on."""


def add_arguments(parser):
    from .grade import DEFAULT_SOURCE

    parser.add_argument("directory", metavar="DIR", help="folder of submitted notebooks")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) // 2),
                        metavar="N", help="submissions graded at once (default: %(default)s)")
    parser.add_argument("--out", default="grades.csv", metavar="CSV",
                        help="the class's grades (default: %(default)s)")
    parser.add_argument("--source", default=str(DEFAULT_SOURCE), metavar="NOTEBOOK",
                        help="the instructor's source notebook (default: the bundled assignment)")
    add_secret_argument(parser)


def submissions_in(directory):
    directory = Path(directory)
    if not directory.is_dir():
        raise NotADirectoryError(f"{directory}: not a directory")
    return sorted(p for p in directory.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def grading_fingerprint(source, secret=DEFAULT_SECRET):
    """A hash of what decides a grade besides the notebook: the source notebook, the course
    secret (the hidden inputs) and the grader's code (hidden tests, budgets), so a changed
    grader never reuses old reports."""
    digest = hashlib.sha256(Path(source).read_bytes())
    digest.update(hashlib.sha256(secret).digest())
    for path in sorted(Path(__file__).parent.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def content_key(path, fingerprint):
    return hashlib.sha256(Path(path).read_bytes() + fingerprint.encode()).hexdigest()


def cache_dir_for(out):
    return Path(f"{out}.cache")


TEMP_PREFIX = "softgrade-batch-"


def remove_leftovers_of_killed_runs(cache):
    """A batch killed part-way leaves half-written reports (never under a report's
    name) in its cache and its sandboxes' folder in the temporary directory."""
    for partial in cache.glob(".tmp-*"):
        partial.unlink(missing_ok=True)
    for folder in Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*-*"):
        owner = folder.name.removeprefix(TEMP_PREFIX).split("-")[0]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            shutil.rmtree(folder, ignore_errors=True)


def write_atomically(path, text):
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "w") as file:
        file.write(text)
    os.replace(temporary, path)


_worker_reference = None


def _grade_in_worker(path, source, temp_root, secret):
    """Grade one submission in a pool worker, reusing the worker's reference process."""
    from .grade import grade_notebook, reference_submission
    from .results import to_gradescope

    global _worker_reference
    try:
        if _worker_reference is None:
            _worker_reference = reference_submission(source, temp_root=temp_root)
            # close it (and remove its files) when the pool ends this worker
            multiprocessing.util.Finalize(None, _worker_reference.close, exitpriority=10)
        report = grade_notebook(path, source, reference=_worker_reference, temp_root=temp_root,
                                secret=secret)
        if report.error:
            return {"error": report.error, "cache": True}
        return {"gradescope": to_gradescope(report),
                "parts": {part: score for part, (score, _) in report.part_scores().items()},
                "outcomes": report.outcome_by_part(), "warnings": report.warnings, "cache": True}
    except Exception as err:  # one broken submission must not stop the class
        # Not cached: the fault may be the grader's or the machine's, so a rerun retries.
        return {"error": f"{type(err).__name__}: {err}", "cache": False}


def run(args):
    submissions = submissions_in(args.directory)
    parts = [p for p in find_parts(read_notebook(args.source)) if not p.written]
    cache = cache_dir_for(args.out)
    cache.mkdir(parents=True, exist_ok=True)
    remove_leftovers_of_killed_runs(cache)
    secret, own = course_secret(args)
    warn_if_default("grade-batch", own)
    fingerprint = grading_fingerprint(args.source, secret)
    keys = {path: content_key(path, fingerprint) for path in submissions}
    todo = [path for path in submissions if not (cache / f"{keys[path]}.json").exists()]
    cached = len(submissions) - len(todo)
    uncached = {}
    # spawn, not fork: a forked copy of a process that has started torch's threads can hang
    context = multiprocessing.get_context("spawn")
    # Every sandbox of this batch lives under one folder, removed at the end even if a
    # worker died without cleaning up after itself.
    with tempfile.TemporaryDirectory(prefix=f"{TEMP_PREFIX}{os.getpid()}-") as temp_root, \
            ProcessPoolExecutor(max_workers=max(1, args.workers), mp_context=context) as pool, \
            tqdm(total=len(submissions), initial=cached, desc="grading", unit="notebook",
                 file=sys.stderr, disable=None) as progress:
        futures = {pool.submit(_grade_in_worker, str(path), args.source, temp_root, secret): path
                   for path in todo}
        for future in as_completed(futures):
            path = futures[future]
            try:
                result = future.result()
            except Exception as err:  # the worker itself died (e.g. killed)
                result = {"error": f"the grading worker failed: {err}", "cache": False}
            if result["cache"]:
                write_atomically(cache / f"{keys[path]}.json", json.dumps(result))
            else:
                uncached[path] = result
            progress.update()
    results = {path: uncached.get(path) or json.loads((cache / f"{keys[path]}.json").read_text())
               for path in submissions}
    rows = [csv_row(path, keys[path], results[path], parts) for path in submissions]
    write_csv(args.out, rows, parts)
    print_table(results)
    errors = sum(1 for row in rows if row["error"])
    scores = [row["score"] for row in rows if not row["error"]]
    mean = sum(scores) / len(scores) if scores else 0.0
    print(f"graded {len(submissions)} submissions ({len(todo)} now, {cached} from the cache), "
          f"{errors} errors; mean score {mean:.1f}; wrote {args.out}", file=sys.stderr)
    return 0


def print_table(results, file=sys.stdout):
    """One line per submission: score, and the parts that did not pass."""
    width = max(len(str(path)) for path in results)
    for path, result in results.items():
        if result.get("error"):
            print(f"{str(path):<{width}}  error: {result['error']}", file=file)
            continue
        gradescope = result["gradescope"]
        auto = [part for part, outcome in result["outcomes"].items() if outcome != "manual"]
        lost = {}
        for part in auto:
            if result["outcomes"][part] != "passed":
                lost.setdefault(result["outcomes"][part].replace("_", " "), []).append(part)
        summary = "; ".join(f"{outcome}: {'every part' if len(parts) == len(auto) else ', '.join(parts)}"
                            for outcome, parts in lost.items())
        print(f"{str(path):<{width}}  {gradescope['score']:6.2f} / {gradescope['max_score']:g}  "
              f"{summary or 'every auto-graded part passed'}", file=file)


def csv_row(path, key, result, parts):
    row = {"submission": str(path), "sha256": key[:16], "error": result.get("error") or ""}
    if row["error"]:
        return {**row, "score": "", "max_score": "", **{p.id: "" for p in parts}}
    gradescope = result["gradescope"]
    return {**row, "score": round(gradescope["score"], 4), "max_score": gradescope["max_score"],
            **{p.id: round(result["parts"].get(p.id, 0.0), 4) for p in parts}}


def write_csv(out, rows, parts):
    out = Path(out)
    fields = ["submission", "score", "max_score", *[p.id for p in parts], "error", "sha256"]
    fd, temporary = tempfile.mkstemp(dir=out.parent if str(out.parent) else ".", prefix=".tmp-")
    with os.fdopen(fd, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, out)
