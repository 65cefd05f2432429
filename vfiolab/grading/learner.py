"""The learner's side, in a notebook: check one exercise now, or show the lab's scoreboard.

Both observe the notebook's live state with the lab's public observers and judge it with the public
checks, exactly as the grader will (the grader adds the hidden checks, and runs them elsewhere).
"""
import os

import __main__

from .checks import judge
from .lab import find_lab
from .observations import LazySeen, observe_all, round_trip, seen_from
from .sandbox import GRADED_KERNEL
from .widgets import exercise_bundle, scoreboard_bundle


class ExerciseFailed(AssertionError):
    """Raised after the widget when a check fails, so nbgrader's autograde scores the cell 0."""

    def _render_traceback_(self):  # IPython shows this instead of a long traceback
        return [f"\x1b[31m{self}\x1b[0m"]


def _namespace():
    try:
        from IPython import get_ipython
        shell = get_ipython()
    except ImportError:
        shell = None
    return shell.user_ns if shell is not None else vars(__main__)


def public_results(lab=None, exercise=None, namespace=None):
    """Public check results on the current state, for one exercise or all."""
    lab = find_lab(lab) if lab is None or isinstance(lab, str) else lab
    checks, observers = lab.load(hidden=False)
    ns = namespace or _namespace()
    if exercise is None:        # the scoreboard reads everything: observe it all at once
        seen = seen_from(round_trip(observe_all(observers, ns)))
    else:                       # one exercise: only the observers its checks read
        seen = LazySeen(observers, ns)
    return lab, judge([c for c in checks if exercise in (None, c.exercise)], seen)


def _display(bundle):
    try:
        from IPython.display import display
        display(bundle, raw=True)
    except ImportError:
        print(bundle["text/plain"])


def check_exercise(exercise, lab=None, raise_on_fail=True):
    """Judge exercise `exercise` ("ex1") now and show its checks; raise if one fails.

    The notebook's check cell is this one call. The exception lets nbgrader (and "Run all") see
    a failure; set raise_on_fail=False to only show the widget.
    """
    lab, results = public_results(lab, exercise)
    if not results:
        raise ValueError(f"{lab.name} has no public check for exercise {exercise!r}")
    _display(exercise_bundle(exercise, results))
    failed = [r for r in results if not r.passed]
    if failed and raise_on_fail:
        raise ExerciseFailed(f"{exercise}: {len(failed)} of {len(results)} checks fail (see above)")


def scoreboard(lab=None):
    """Show the lab's public checks, exercise by exercise, on the current state.

    Not in a kernel the grader runs: there its result never counts, and the grader observes the
    same state once more right after the last cell (the scoreboard observing everything was a
    quarter of lab 02's graded time)."""
    if os.environ.get(GRADED_KERNEL) == "1":
        print("scoreboard: the grader judges this notebook after its last cell, with every check "
              "(public and hidden): your points are in your feedback")
        return
    lab, results = public_results(lab)
    by_exercise = {}
    for r in results:
        by_exercise.setdefault(r.exercise, []).append(r)
    _display(scoreboard_bundle(lab.name, by_exercise))
