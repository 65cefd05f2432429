"""What the browser tests do as a learner: answer the exercises, touch each kind of widget, get
one exercise wrong. Works on any lab: answers come from the lab's own (instructor's) notebook."""
import re
import time

import nbformat

from vfiolab.widgets.busgraph import _id as graph_id

from .wrong_answers import WRONG_ANSWERS

MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")


def solutions(instructor_notebook):
    """{grade_id: source} of the answer cells, as a learner who got them right would type them."""
    nb = nbformat.read(instructor_notebook, as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]:
            "\n".join(line for line in c.source.splitlines() if line.strip() not in MARKERS)
            for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("solution")}


def answer_cells(notebook):
    """[(index, grade_id)] of the answer cells of the learner's notebook."""
    return [(i, c.metadata["nbgrader"]["grade_id"]) for i, c in enumerate(notebook.nb.cells)
            if c.get("metadata", {}).get("nbgrader", {}).get("solution")]


def type_answers(notebook, answers):
    """Type every answer into its cell; returns {index: text} typed."""
    typed = {}
    for index, grade_id in answer_cells(notebook):
        if grade_id not in answers:
            raise AssertionError(f"{notebook.label(index)}: the lab's notebook has no solution for "
                                 f"answer cell {grade_id!r}")
        notebook.set_source(index, answers[grade_id])
        typed[index] = answers[grade_id]
    return typed


# --- one interaction per kind of widget ----------------------------------------------------
def html_of(view):
    return view.locator(".widget-html-content").first.inner_html()


def pick_in_inspector(notebook, view):
    """Choose another device in the inspector's list: its description must follow."""
    select = view.locator("select").first
    options = select.evaluate("s => Array.from(s.options).map(o => o.textContent)")
    current = select.evaluate("s => s.selectedIndex")
    before = html_of(view)
    index = next(i for i in range(len(options)) if i != current)
    device = options[index].split()[-1]
    select.select_option(index=index)
    notebook.page.wait_for_function(
        "([v, d]) => v.querySelector('.widget-html-content').textContent.includes(d + ' on the ')",
        arg=[view.element_handle(), device], timeout=20_000)
    after = html_of(view)
    assert after != before, f"the inspector did not redraw after picking {device}"
    return device


def panel_text(view):
    return view.locator(".widget-html-content").first.text_content()


def cycles_of(view):
    """The panel's cycle count ("N cycles · engine ...": a title may hold "400 cycles" too)."""
    match = re.search(r"(\d+) cycles \u00b7 engine", panel_text(view))
    return int(match.group(1)) if match else None


def wait_until(page, condition, what, timeout=30):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} within {timeout} s")
        page.wait_for_timeout(100)


def step_and_run_pl330(notebook, view, name):
    """Step, then Run to end, on a PL330 panel that has work left: the drawing must follow."""
    before = cycles_of(view)
    view.get_by_role("button", name="Step").click()
    wait_until(notebook.page, lambda: (cycles_of(view) or 0) > before,
               f"the PL330 panel's cycle count did not grow from {before} after Step")
    stepped = cycles_of(view)
    notebook.shot(f"{name}-after-step", view)
    view.get_by_role("button", name="Run to end").click()
    wait_until(notebook.page, lambda: "has work left" not in panel_text(view),
               "the PL330 panel still says 'has work left' after Run to end", timeout=60)
    notebook.shot(f"{name}-after-run-to-end", view)
    return before, stepped, cycles_of(view)


# Run in the learner's kernel: change a binding on the board a live bus graph watches (any lab).
REBIND_CELL = """\
# browser test: change one binding under the live bus graph, then watch it redraw
from vfiolab import platform as plat_
from vfiolab.widgets.busgraph import BusGraph as BusGraph_
from vfiolab.widgets.live import _watching as live_views_
graph_ = next(v for v in list(live_views_) if isinstance(v, BusGraph_))
rows_ = [r for r in plat_.inventory(graph_.board, graph_.buses) if graph_.show(r) and r["group"] is not None]
host_ = [r for r in rows_ if r["driver"] and not plat_.is_vfio_driver(r["driver"])]
row_ = host_[0] if host_ else rows_[0]
(plat_.bind_to_vfio if host_ else plat_.restore)(graph_.board, row_["device"])
print("REBOUND", row_["bus"], row_["device"], row_["driver"], plat_.driver_of(graph_.board, row_["device"]))"""


def graph_edges(view):
    """The edges the bus graph draws, as graphviz titles ("dev_X->drv_bus_name")."""
    return set(view.evaluate("v => Array.from(v.querySelectorAll('g.edge > title')).map(t => t.textContent)"))


def rebind_under_bus_graph(notebook, views):
    """Run REBIND_CELL in a new cell: the live graph must draw the device's new driver edge."""
    before = [graph_edges(v) for v in views]
    index = notebook.append_cell(REBIND_CELL)
    text = notebook.output_text(index)
    match = re.search(r"REBOUND (\S+) (\S+) (\S+) (\S+)", text)
    assert match, f"{notebook.label(index)} (added by the test) printed {text!r}"
    bus, device, old, new = match.groups()
    old_edge = f"{graph_id('dev', device)}->{graph_id('drv', bus, old)}"
    new_edge = f"{graph_id('dev', device)}->{graph_id('drv', bus, new)}"

    def redrawn():
        return [i for i, v in enumerate(views)
                if (new == "None" or new_edge in graph_edges(v)) and old_edge not in graph_edges(v)
                and graph_edges(v) != before[i]]
    notebook.page.wait_for_timeout(300)
    for _ in range(50):
        if redrawn():
            break
        notebook.page.wait_for_timeout(200)
    assert redrawn(), (f"no live bus graph redrew after {device} moved from {old} to {new}: "
                       f"expected edge {new_edge} and no edge {old_edge}")
    return device, old, new, views[redrawn()[0]]


# --- a wrong answer and its hint -----------------------------------------------------------
def wrong_answer(lab_name):
    """(answer grade_id, check grade_id, wrong source or None, hint text or None) for a lab.
    A lab without an entry gets the learner's untouched prompt (the exercise not done)."""
    if lab_name in WRONG_ANSWERS:
        w = WRONG_ANSWERS[lab_name]
        return w["answer"], w["check"], w["source"], w["hint"]
    return None


def first_exercise(notebook):
    """(answer grade_id, check grade_id) of the first exercise: its answer cell, then the first
    graded cell after it."""
    cells = notebook.nb.cells
    for i, cell in enumerate(cells):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution"):
            check = next(c.metadata["nbgrader"]["grade_id"] for c in cells[i + 1:]
                         if c.get("metadata", {}).get("nbgrader", {}).get("grade"))
            return meta["grade_id"], check
    return None
