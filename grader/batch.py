"""`softgrade grade-batch`: a class's submissions, graded in parallel, resumable.

Every finished report is stored at once (atomically) under a cache folder beside
the CSV, keyed by the hash of the notebook's content (and of the source notebook and
the grader's code); a run that is interrupted, even
killed, and started again grades only what is missing, and a resubmitted notebook
with new content is graded again. The CSV is rewritten from the cache at the end.
What failed for the grader's or the machine's sake is not cached: a rerun retries it.

Each worker process grades one submission at a time against a reference process of
its own; one that dies costs only the submission it was grading (see grade_all).
"""

import csv
import hashlib
import json
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import sys
import tempfile
from collections import deque
from pathlib import Path

from tqdm import tqdm

from .isolation import NOT_ISOLATED, CannotGrade
from .notebook import NotebookError, find_parts, read_notebook
from .secret import DEFAULT_SECRET, add_secret_argument, course_secret, warn_if_default

USER_ERRORS = (NotebookError, OSError, CannotGrade)

DESCRIPTION = """\
Grade every .ipynb under DIR (checkpoints excluded) with `softgrade grade`'s hidden
tests and budgets, in parallel, with a progress bar. Writes one CSV row per
submission with a column per part. Resumable: reports are cached next to the CSV
by content hash, so a rerun grades only new or changed notebooks. A submission
that cannot be graded gets an error row; the batch goes on. Exit code 2, with one
line on stderr, when this machine cannot isolate submissions (`softgrade doctor`)."""


def add_arguments(parser):
    from .grade import DEFAULT_SOURCE, add_isolation_arguments

    parser.add_argument("directory", metavar="DIR", help="folder of submitted notebooks")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) // 2),
                        metavar="N", help="submissions graded at once (default: %(default)s)")
    parser.add_argument("--out", default="grades.csv", metavar="CSV",
                        help="the class's grades (default: %(default)s)")
    parser.add_argument("--source", default=str(DEFAULT_SOURCE), metavar="NOTEBOOK",
                        help="the instructor's source notebook (default: the bundled assignment)")
    add_isolation_arguments(parser)
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


class Worker:
    """One grading process of the batch, and the submission it is grading."""

    def __init__(self, context, options):
        self.connection, their_end = context.Pipe()
        self.process = context.Process(target=serve, args=(their_end, options), daemon=False)
        self.process.start()
        their_end.close()
        self.task = None
        """(path, attempt) being graded, None when idle."""

    def give(self, task):
        self.task = task
        self.connection.send(task[0])

    def stop(self):
        try:
            self.connection.send(None)
        except OSError:
            pass  # already dead
        self.process.join(timeout=30)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.connection.close()

    def death(self):
        """How the process ended, for the error row."""
        self.process.join()
        code = self.process.exitcode
        if code is not None and code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exited with code {code}"


def serve(connection, options):
    """A worker's life: grade each path it is sent against one reference process, until
    it is sent None."""
    reference = None
    try:
        while (path := connection.recv()) is not None:
            result, reference = grade_in_worker(path, reference, options)
            connection.send(result)
    finally:
        if reference is not None:
            reference.close()


def grade_in_worker(path, reference, options):
    """(the cached form of one submission's report, the worker's reference process)."""
    from .grade import grade_notebook, reference_submission
    from .isolation import CannotGrade
    from .results import to_gradescope

    try:
        if reference is None:
            reference = reference_submission(
                options["source"], options["use_namespaces"], options["temp_root"],
                options["unsafe"], options["secret_file"])
        report = grade_notebook(path, options["source"], options["use_namespaces"],
                                reference=reference, temp_root=options["temp_root"],
                                unsafe=options["unsafe"], secret=options["secret"],
                                secret_file=options["secret_file"])
        if report.error:
            return {"error": report.error, "cache": True}, reference
        return {"gradescope": to_gradescope(report),
                "parts": {part: score for part, (score, _) in report.part_scores().items()},
                "outcomes": report.outcome_by_part(), "warnings": report.warnings,
                "isolation": report.isolation, "cache": True}, reference
    except (Exception, CannotGrade) as err:  # one broken submission must not stop the class
        # Not cached: the fault may be the grader's or the machine's, so a rerun retries.
        return {"error": f"{type(err).__name__}: {err}", "cache": False}, reference


def grade_all(todo, workers, options, finished):
    """Grade `todo` in `workers` processes; finished(path, result) as each ends.

    A worker that dies (killed by the OOM killer, a signal, or a submission where it is
    not isolated) costs only the submission it was grading: the others are in
    processes of their own. That submission is graded once more in a fresh worker, in
    case it was only near the machine's trouble; dying again gives it an error row.
    """
    context = multiprocessing.get_context("spawn")
    pending = deque((str(path), 0) for path in todo)
    pool = [Worker(context, options) for _ in range(min(workers, len(pending)))]
    try:
        while pending or any(worker.task for worker in pool):
            for worker in pool:
                if worker.task is None and pending:
                    worker.give(pending.popleft())
            busy = [worker for worker in pool if worker.task]
            multiprocessing.connection.wait(
                [w.connection for w in busy] + [w.process.sentinel for w in busy])
            for index, worker in enumerate(pool):
                if worker.task is None:
                    continue
                path, attempt = worker.task
                result = _reply(worker)
                if result is not None:
                    worker.task = None
                    finished(path, result)
                elif not worker.process.is_alive():
                    death = worker.death()
                    if attempt == 0:
                        pending.appendleft((path, 1))
                    else:
                        finished(path, {"error": f"the grading worker died twice while grading "
                                                 f"it ({death})", "cache": False})
                    worker.connection.close()
                    pool[index] = Worker(context, options)
    finally:
        for worker in pool:
            worker.stop()


def _reply(worker):
    """The worker's result if one has arrived, else None (still grading, or dead)."""
    try:
        return worker.connection.recv() if worker.connection.poll() else None
    except (EOFError, OSError):
        return None


def run(args):
    from .grade import fashion_mnist_raw_dir, protected_paths
    from .isolation import choose_isolation

    # Decided here first: a machine that cannot isolate the submissions fails the batch
    # with one line, before any worker starts.
    isolation = choose_isolation(not args.no_namespaces, args.unsafe_no_sandbox,
                                 fashion_mnist_raw_dir(),
                                 protected_paths(args.source, args.secret_file))
    submissions = submissions_in(args.directory)
    parts = [p for p in find_parts(read_notebook(args.source)) if not p.written]
    cache = cache_dir_for(args.out)
    cache.mkdir(parents=True, exist_ok=True)
    remove_leftovers_of_killed_runs(cache)
    # A report made without isolation is never reused by a grading with it.
    secret, own = course_secret(args)
    warn_if_default("grade-batch", own)
    fingerprint = grading_fingerprint(args.source, secret) + ("" if isolation.isolated
                                                              else "-unsafe")
    keys = {path: content_key(path, fingerprint) for path in submissions}
    todo = [path for path in submissions if not (cache / f"{keys[path]}.json").exists()]
    cached = len(submissions) - len(todo)
    uncached = {}
    # Every sandbox of this batch lives under one folder, removed at the end even if a
    # worker died without cleaning up after itself.
    with tempfile.TemporaryDirectory(prefix=f"{TEMP_PREFIX}{os.getpid()}-") as temp_root, \
            tqdm(total=len(submissions), initial=cached, desc="grading", unit="notebook",
                 file=sys.stderr, disable=None) as progress:
        # Sandboxes of the unprivileged fallback (other uids) must pass through it.
        os.chmod(temp_root, 0o711)
        options = {"source": args.source, "use_namespaces": not args.no_namespaces,
                   "unsafe": args.unsafe_no_sandbox, "temp_root": temp_root, "secret": secret,
                   "secret_file": args.secret_file}

        def finished(path, result):
            if result["cache"]:
                write_atomically(cache / f"{keys[Path(path)]}.json", json.dumps(result))
            else:
                uncached[Path(path)] = result
            progress.update()

        try:
            grade_all(todo, args.workers, options, finished)
        finally:
            remove_orphaned_sandboxes()
    results = {path: uncached.get(path) or json.loads((cache / f"{keys[path]}.json").read_text())
               for path in submissions}
    rows = [csv_row(path, keys[path], results[path], parts) for path in submissions]
    write_csv(args.out, rows, parts)
    print_table(results)
    errors = sum(1 for row in rows if row["error"])
    scores = [row["score"] for row in rows if not row["error"]]
    mean = sum(scores) / len(scores) if scores else 0.0
    print(f"graded {len(submissions)} submissions ({len(todo)} now, {cached} from the cache), "
          f"{errors} errors; mean score {mean:.1f}; wrote {args.out}"
          + ("" if isolation.isolated else f"; {NOT_ISOLATED}"), file=sys.stderr)
    return 0


def remove_orphaned_sandboxes():
    """Kill what a dead worker's sandboxes left running (their pids cgroups)."""
    from .sandbox import pids_cgroup_root, remove_orphaned_cgroups

    root = pids_cgroup_root()
    if root is not None:
        remove_orphaned_cgroups(root)


def print_table(results, file=sys.stdout):
    """One line per submission: score, and the parts that did not pass."""
    width = max(len(str(path)) for path in results)
    for path, result in results.items():
        if result.get("error"):
            print(f"{str(path):<{width}}  error: {result['error']}", file=file)
            continue
        gradescope = result["gradescope"]
        mark = f"  ({NOT_ISOLATED})" if result.get("isolation") == NOT_ISOLATED else ""
        auto = [part for part, outcome in result["outcomes"].items() if outcome != "manual"]
        lost = {}
        for part in auto:
            if result["outcomes"][part] != "passed":
                lost.setdefault(result["outcomes"][part].replace("_", " "), []).append(part)
        summary = "; ".join(f"{outcome}: {'every part' if len(parts) == len(auto) else ', '.join(parts)}"
                            for outcome, parts in lost.items())
        print(f"{str(path):<{width}}  {gradescope['score']:6.2f} / {gradescope['max_score']:g}  "
              f"{summary or 'every auto-graded part passed'}{mark}", file=file)


def csv_row(path, key, result, parts):
    row = {"submission": str(path), "sha256": key[:16], "error": result.get("error") or "",
           "isolation": result.get("isolation", "")}
    if row["error"]:
        return {**row, "score": "", "max_score": "", **{p.id: "" for p in parts}}
    gradescope = result["gradescope"]
    return {**row, "score": round(gradescope["score"], 4), "max_score": gradescope["max_score"],
            **{p.id: round(result["parts"].get(p.id, 0.0), 4) for p in parts}}


def write_csv(out, rows, parts):
    out = Path(out)
    fields = ["submission", "score", "max_score", *[p.id for p in parts], "error", "isolation",
              "sha256"]
    fd, temporary = tempfile.mkstemp(dir=out.parent if str(out.parent) else ".", prefix=".tmp-")
    with os.fdopen(fd, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, out)
