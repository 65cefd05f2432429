"""Grade a class: find the submissions, run each in its own process, judge, write as each completes.

SUBMISSIONS/<learner>/<lab-folder>/<notebook>.ipynb -> GRADES (see gradebook.py). The runner
process (runner.py) returns observations only; public and hidden checks judge them here, in the
grader's process, which the learners' code never shares.
"""
import hashlib
import json
import multiprocessing
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

import nbformat

from . import gradebook
from .collector import library_roots, package_fingerprints
from .defaults import default_jobs
from .lab import HIDDEN_CHECKS, Lab
from .notebook import changed_locked_cells
from .progress import Progress
from .release import release_lab
from .verdict import results_for, tampering_notes, zero
from .runner import read_notebook
from .zygote import Factory


@dataclass
class Job:
    learner: str
    lab: str
    notebook: str | None  # path of the submitted notebook, None if there is none
    note: str = ""

    @property
    def label(self):
        return f"{self.learner}/{self.lab}"


@dataclass
class Limits:
    cell_timeout: float = 60
    notebook_timeout: float = 600


class PreparedLab:
    """Everything the grader needs about one lab, made once per run."""

    def __init__(self, lab, work):
        self.lab = lab
        self.checks, _ = lab.load(hidden=True)
        self.files = release_lab(lab, os.path.join(work, "release"))
        self.released_nb = nbformat.read(os.path.join(self.files, lab.notebook), as_version=4)
        self.checks_source = lab.public_source()
        self.imports = notebook_imports(self.released_nb)


_IMPORT = re.compile(r"^\s*(?:from\s+(vfiolab[\w.]*)\s+import|import\s+(vfiolab[\w.]*))", re.M)


def notebook_imports(nb):
    """The vfiolab modules a lab's notebook imports: the kernel factory imports them beforehand."""
    found = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            for m in _IMPORT.finditer(cell.source):
                name = m.group(1) or m.group(2)
                if name not in found:
                    found.append(name)
    return found


def find_jobs(submissions, labs):
    """(jobs, warnings): one job per learner and known lab folder; odd entries become warnings."""
    jobs, warnings = [], []
    for learner in sorted(os.listdir(submissions)):
        folder = os.path.join(submissions, learner)
        if learner.startswith(".") or not os.path.isdir(folder):
            warnings.append(f"ignored {learner}: not a learner folder")
            continue
        for lab in sorted(os.listdir(folder)):
            path = os.path.join(folder, lab)
            if lab.startswith("."):
                continue
            if lab not in labs or not os.path.isdir(path):
                warnings.append(f"ignored {learner}/{lab}: not a lab folder "
                                f"(labs: {', '.join(sorted(labs)) or 'none'})")
                continue
            expected = labs[lab].lab.notebook
            books = sorted(f for f in os.listdir(path) if f.endswith(".ipynb"))
            if expected in books:
                jobs.append(Job(learner, lab, os.path.join(path, expected)))
            elif len(books) == 1:
                jobs.append(Job(learner, lab, os.path.join(path, books[0]),
                                f"graded {books[0]} (the lab's notebook is named {expected})"))
            else:
                found = ", ".join(sorted(os.listdir(path))) or "nothing"
                jobs.append(Job(learner, lab, None, f"no notebook {expected} submitted (found: {found})"))
    return jobs, warnings


def sha256(path):
    if path is None:
        return ""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def judge_run(prepared, run, submitted=None):
    """Results of every check (public and hidden) for one runner result (verdict.py)."""
    return results_for(prepared.checks, run, submitted)


def _run_isolated(job, prepared, limits, out, work, prints_path, hide, factory):
    """Run one notebook in its own runner process; returns its result dict."""
    name = f"{job.learner}--{job.lab}"
    job_path = os.path.join(work, "jobs", name + ".json")
    raw_path = os.path.join(work, "raw", name + ".json")
    executed = os.path.join(out, "executed", job.learner, f"{job.lab}.ipynb")
    os.makedirs(os.path.dirname(executed), exist_ok=True)
    if os.path.exists(raw_path):
        os.unlink(raw_path)
    with open(job_path, "w") as f:
        json.dump({"notebook": job.notebook, "lab_files": prepared.files,
                   "checks_source": prepared.checks_source, "cell_timeout": limits.cell_timeout,
                   "notebook_timeout": limits.notebook_timeout, "hide": hide,
                   "result": raw_path, "executed": executed, "prints_path": prints_path,
                   "roots": library_roots(), "factory": factory}, f)
    log = os.path.join(work, "logs", name + ".log")
    # A fresh process per notebook, forked from a server that has nbclient imported already.
    process = _forkserver().Process(target=_runner_main, args=(job_path, log), daemon=True)
    with _lock:
        if _stopping.is_set():
            return {"status": "error", "notes": ["the grading run was interrupted"]}
        started = time.time()
        process.start()
        _running.add(process)
    # The runner enforces the limits itself; this is the backstop if it cannot. (A notebook that
    # stops early runs its earlier cells a second time, with 1.25 times the notebook's limit.)
    process.join(timeout=2.25 * limits.notebook_timeout + 2 * limits.cell_timeout + 120)
    with _lock:
        _running.discard(process)
    if process.is_alive():
        process.kill()  # its sandboxed kernel follows (parent-death signal)
        process.join()
        return {"status": "timeout", "notes": ["the grader's runner did not finish in time"]}
    try:
        with open(raw_path) as f:
            run = json.load(f)
        if run.get("status") == "error":
            run.setdefault("detail", []).append("the runner's log ends: " + " / ".join(_tail(log)))
        times = run.pop("runner", None)
        if times:
            run.setdefault("phases", {}).update({
                "runner start": round(times["began"] - started, 3),
                "runner exit": round(time.time() - times["ended"], 3)})
        return run
    except (OSError, ValueError):
        return {"status": "error", "notes": ["the grader could not run the notebook"],
                "detail": [f"the runner exited with status {process.exitcode} and no result; "
                           "its log ends: " + " / ".join(_tail(log))]}


def _tail(log, lines=4):
    try:
        with open(log, errors="replace") as f:
            return [line for line in f.read().strip().splitlines()
                    if "running over TCP without encryption" not in line][-lines:]
    except OSError:
        return []


_context = None
_running, _lock, _stopping = set(), threading.Lock(), threading.Event()


def _forkserver():
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(["nbclient", "nbformat", "vfiolab.grading.runner",
                                         "vfiolab.grading.grader"])
    return _context


def _runner_main(job_path, log):
    # The forkserver, our parent, ends with the grader: a grader killed outright (SIGKILL, a
    # crash) takes its runners along, and their kernels follow them.
    from .sandbox import PR_SET_PDEATHSIG, _libc
    import signal
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.setsid()  # its own session: a learner's stray signal to the group reaches no grader
    from .runner import main
    main([job_path])


def grade_one(job, prepared, limits, out, work, prints_path, hide, factory=None):
    """The graded record of one job (runs in a worker thread; the notebook in its own process)."""
    started = time.monotonic()
    rec = _grade_one(job, prepared, limits, out, work, prints_path, hide, factory)
    rec["seconds"] = round(time.monotonic() - started, 3)
    return rec


def _grade_one(job, prepared, limits, out, work, prints_path, hide, factory):
    notes = [job.note] if job.note else []
    submitted = None
    if job.notebook is None:
        return gradebook.record(job.learner, job.lab, None, "", "missing", notes,
                                zero(prepared.checks, f"not graded: {job.note}"))
    try:
        submitted = read_notebook(job.notebook)
    except ValueError as e:
        run = {"status": "not-a-notebook", "notes": [str(e)]}
    else:
        deleted, edited = changed_locked_cells(prepared.released_nb, submitted)
        if deleted or edited:
            notes.append("locked cells changed, which changes nothing (the grader runs its own "
                         "checks): " + ", ".join([f"{i} deleted" for i in deleted] +
                                                 [f"{i} edited" for i in edited]))
        run = _run_isolated(job, prepared, limits, out, work, prints_path, hide, factory)
    notes += run.get("notes", [])
    notes += tampering_notes(run.get("tampering", []))
    detail = list(run.get("detail", []))
    if run.get("isolation", {}).get("isolation") == "none":
        detail.append("the kernel ran without isolation "
                      f"({run['isolation'].get('why', '')})")
    results = judge_run(prepared, run, submitted)
    rec = gradebook.record(job.learner, job.lab, os.path.basename(job.notebook), sha256(job.notebook),
                           run["status"], notes, results)
    rec["phases"] = run.get("phases", {})  # where the time went, for the instructor
    # The instructor's, never in the learner's feedback: why the grader failed, every replaced
    # function (the notes group them), whether the kernel was isolated.
    rec["detail"], rec["tampering"] = detail, run.get("tampering", [])
    if run.get("stopped_cell"):
        rec["stopped_cell"] = run["stopped_cell"]
    return rec


def grade_class(submissions, out, labs, jobs=None, limits=Limits(), regrade=False, stream=None,
                factory=True):
    """Grade every submission; returns (records graded now, records skipped, warnings).

    Resumable: each record is written (atomically) as soon as its notebook is graded, and a later
    run skips every notebook whose record matches its sha256; an interrupted run (Ctrl-C: the
    notebooks still running are stopped and not recorded) or a machine that went down loses at
    most the notebooks that were running. Memory stays bounded by `jobs`: one runner and one
    kernel per notebook being graded, records of a few KB."""
    stream = stream or sys.stderr
    submissions, out = os.path.abspath(submissions), os.path.abspath(out)
    os.makedirs(out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="vfiolab-grade-")
    kernels = None
    try:
        for sub in ("jobs", "raw", "logs"):
            os.makedirs(os.path.join(work, sub))
        prepared = {lab.name: PreparedLab(lab, work) for lab in map(Lab, labs)}
        todo, warnings = find_jobs(submissions, prepared)
        skipped = []
        if not regrade:
            for job in list(todo):
                rec = gradebook.read_record(out, job.learner, job.lab)
                if rec and rec.get("sha256") == sha256(job.notebook):
                    todo.remove(job)
                    skipped.append(rec)
        prints_path = os.path.join(work, "prints.json")
        with open(prints_path, "w") as f:
            json.dump(package_fingerprints(), f)  # the code every kernel must run, taken once
        # What a learner's kernel must not see: the labs (hidden checks), the class, the grades.
        hide = [p.lab.path for p in prepared.values()] + [submissions, out, work] + \
               [p.lab.file(HIDDEN_CHECKS) for p in prepared.values()]
        if factory and todo:
            kernels = Factory(work, sorted({m for p in prepared.values() for m in p.imports}))
            if not kernels.ready:
                warnings.append("the kernel factory did not start, so each kernel starts anew "
                                f"(slower): {kernels.why_not()}")
                kernels.stop()
                kernels = None
        prints = package_fingerprints()
        graded = _grade_all(todo, prepared, limits, out, work, prints_path, hide,
                            kernels.socket_path if kernels else None, jobs, stream, len(skipped))
        if todo and package_fingerprints() != prints:
            warnings.append("vfiolab's installed code changed while the class was graded, so "
                            "notebooks graded 'tampered' may have been judged against the old "
                            "code: grade again with --regrade")
        return graded, skipped, warnings
    finally:
        if kernels:
            kernels.stop()
        shutil.rmtree(work, ignore_errors=True)


GRADEBOOK_EVERY = 30  # seconds between rebuilds of gradebook.csv/.json during a run


def _grade_all(todo, prepared, limits, out, work, prints_path, hide, factory, jobs, stream, skipped):
    progress, graded = Progress(len(todo), stream), []
    _stopping.clear()
    if skipped:
        stream.write(f"{skipped} notebooks already graded (unchanged since): skipped\n")
    pool = ThreadPoolExecutor(max_workers=jobs or default_jobs())
    rebuilt = time.monotonic()
    try:
        futures = [pool.submit(grade_one, job, prepared[job.lab], limits, out, work, prints_path,
                               hide, factory) for job in todo]
        for future in as_completed(futures):
            rec = future.result()
            gradebook.write_record(out, rec)
            graded.append(rec)
            progress.step(f"{rec['learner']}/{rec['lab']}: {rec['points']:g}/{rec['max_points']:g}"
                          f" {'' if rec['status'] == 'ok' else rec['status']}")
            if time.monotonic() - rebuilt > GRADEBOOK_EVERY:
                gradebook.write_gradebook(out)
                rebuilt = time.monotonic()
    except BaseException:  # Ctrl-C: stop what runs, record nothing more; a rerun resumes here
        _stopping.set()
        pool.shutdown(wait=False, cancel_futures=True)
        with _lock:
            for process in list(_running):
                process.kill()
        pool.shutdown(wait=True)
        gradebook.write_gradebook(out)
        stream.write(f"\ninterrupted: {len(graded)} graded and recorded in {out}; run the same "
                     "command again to grade the rest\n")
        raise
    pool.shutdown(wait=True)
    gradebook.write_gradebook(out)
    return graded
