"""Views of check results: an exercise's checks and a lab's scoreboard, as HTML with a text twin.

Thin views: they format Result objects and decide nothing. The output is a plain display bundle,
so it renders in JupyterLab, in nbconvert/nbgrader feedback and in headless runs alike.
"""
import html

_STYLE = ("font-family:var(--jp-ui-font-family,sans-serif);font-size:13px;border-collapse:collapse;"
          "margin:4px 0")
_CELL = "padding:2px 8px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top"
_PASS, _FAIL = "#1a7f37", "#cf222e"


def _points(x):
    return f"{x:g}"


def exercise_bundle(exercise, results):
    """Display bundle for one exercise: points, then pass/fail and the hint of each check."""
    earned, total = sum(r.earned for r in results), sum(r.points for r in results)
    colour = _PASS if results and earned == total else _FAIL
    rows = "".join(
        f"<tr><td style='{_CELL};color:{_PASS if r.passed else _FAIL}'>"
        f"{'&#10004; pass' if r.passed else '&#10008; fail'}</td>"
        f"<td style='{_CELL}'><code>{html.escape(r.id)}</code></td>"
        f"<td style='{_CELL}'>{_points(r.earned)}/{_points(r.points)}</td>"
        f"<td style='{_CELL}'>{'' if r.passed else html.escape(r.message)}</td></tr>"
        for r in results)
    head = (f"<div style='font-weight:bold;color:{colour}'>{html.escape(exercise)}: "
            f"{_points(earned)} / {_points(total)} points</div>")
    text = [f"{exercise}: {_points(earned)} / {_points(total)} points"]
    text += [f"  {'PASS' if r.passed else 'FAIL'} {r.id} ({_points(r.earned)}/{_points(r.points)})"
             + ("" if r.passed else f": {r.message}") for r in results]
    if not results:
        text.append("  no checks for this exercise")
    return {"text/html": f"{head}<table style='{_STYLE}'>{rows}</table>",
            "text/plain": "\n".join(text)}


def scoreboard_bundle(lab_name, by_exercise):
    """Display bundle for a lab: one row per exercise, {exercise: [Result, ...]} in order."""
    rows, text = [], [f"{lab_name}"]
    for exercise, results in by_exercise.items():
        earned, total = sum(r.earned for r in results), sum(r.points for r in results)
        passed = sum(r.passed for r in results)
        colour = _PASS if earned == total else _FAIL
        rows.append(f"<tr><td style='{_CELL}'>{html.escape(exercise)}</td>"
                    f"<td style='{_CELL};color:{colour}'>{_points(earned)}/{_points(total)}</td>"
                    f"<td style='{_CELL}'>{passed} of {len(results)} checks pass</td></tr>")
        text.append(f"  {exercise}: {_points(earned)}/{_points(total)} ({passed} of {len(results)} checks pass)")
    earned = sum(r.earned for rs in by_exercise.values() for r in rs)
    total = sum(r.points for rs in by_exercise.values() for r in rs)
    text.append(f"  total: {_points(earned)}/{_points(total)} (public checks only)")
    # The learner's kernel never loads the hidden checks, so it cannot count them: say so.
    note = ("Public checks only: the grader's hidden checks add more points, "
            "as each exercise's heading says.")
    text.append(f"  {note}")
    return {"text/html": (f"<div style='font-weight:bold'>{html.escape(lab_name)}: "
                          f"{_points(earned)} / {_points(total)} points from the public checks</div>"
                          f"<table style='{_STYLE}'>{''.join(rows)}</table>"
                          f"<div>{html.escape(note)}</div>"),
            "text/plain": "\n".join(text)}
