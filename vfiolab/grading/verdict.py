"""From a runner's result to results and notes: which exercises a run that stopped early still
grades, and what a learner is told about code of theirs that replaced vfiolab's.

A run stops early in cell N when the kernel died there or ran out of time there; the runner then
observed the state the cells before N left (it ran them again). An exercise is judged on that
state when all of its cells (grade_id "<exercise>" or "<exercise>-...") other than its check cell
come before N: its check cell only shows the checks, and the grader runs its own. Its other
checks are "not graded: ... in cell N".
"""
import re

from .checks import Result, judge
from .notebook import nbgrader_meta
from .observations import seen_from

STOPPED = {"kernel-died": "the kernel died in cell {cell}",
           "timeout": "ran out of time in cell {cell}"}
NOT_GRADED = {
    "not-a-notebook": "not graded: the submission is not a notebook",
    "kernel-died": "not graded: the kernel died",
    "timeout": "not graded: the notebook ran out of time",
    "no-observation": "not graded: the notebook's state could not be observed",
    "error": "not graded: the grader could not run the notebook",
}
TAMPERED = "0: vfiolab's code was replaced from the notebook (see the notes)"


def zero(checks, message):
    """Every check scored 0 with the same message."""
    return [Result(c.id, c.exercise, c.points, 0.0, c.hidden, message) for c in checks]


def exercise_ends(nb, exercises):
    """{exercise: index of its last cell other than its check cell, or of its check cell}."""
    answers, checks = {}, {}
    for index, cell in enumerate(nb.cells):
        meta = nbgrader_meta(cell)
        gid = str(meta.get("grade_id", ""))
        for ex in exercises:
            if gid == ex and meta.get("grade"):
                checks[ex] = index
            elif gid == ex or gid.startswith(ex + "-"):
                answers[ex] = index
    return {ex: answers.get(ex, checks.get(ex)) for ex in exercises
            if ex in answers or ex in checks}


def results_for(checks, run, submitted):
    """The Result of every check for one run (see the module docstring)."""
    status = run["status"]
    if status == "tampered":
        return zero(checks, TAMPERED)
    stopped = run.get("stopped_cell")
    if status in STOPPED and stopped:
        why = "not graded: " + STOPPED[status].format(cell=stopped)
        if not run.get("partial") or submitted is None:
            return zero(checks, why)
        ends = exercise_ends(submitted, {c.exercise for c in checks})
        reached = [c for c in checks if ends.get(c.exercise, -1) < stopped - 1]
        judged = dict(zip((c.id for c in reached),
                          judge(reached, seen_from(run["observations"]))))
        unreached = {r.id: r for r in zero([c for c in checks if c.id not in judged], why)}
        return [judged.get(c.id) or unreached[c.id] for c in checks]
    if status != "ok":
        return zero(checks, NOT_GRADED.get(status, f"not graded: {status}"))
    return judge(checks, seen_from(run["observations"]))


_FROM = re.compile(r"^(?P<what>.+) was replaced by code from (?P<source>.+)$")
_CODE = re.compile(r"^(?P<what>.+) is not the installed code of .+$")


def tampering_notes(problems, shown=3):
    """One line per place the notebook replaced vfiolab's code (a cell, a file it wrote), saying
    which cell, what it replaced, and what to do; the full list stays in the gradebook."""
    groups, others = {}, []
    for problem in problems:
        m = _FROM.match(problem) or _CODE.match(problem)
        if m:
            source = m.groupdict().get("source")
            groups.setdefault(source, []).append(m.group("what"))
        else:
            others.append(problem)
    advice = ("so the board's state cannot be trusted and every check scores 0: use vfiolab as "
              "it is (no assignments to its functions, classes or modules) and submit again")
    lines = []
    for source, what in groups.items():
        names = ", ".join(what[:shown]) + (f" and {len(what) - shown} more" if len(what) > shown else "")
        if source is None:
            lines.append(f"{names} (vfiolab's own code) no longer run as installed (changed in "
                         f"place, e.g. a __code__ replaced), {advice}")
        else:
            where = source if source.startswith("cell ") else f"code from {source}"
            lines.append(f"{where} replaced {names} (vfiolab's own code), {advice}")
    lines += [f"{p}, {advice}" for p in others]
    return lines
