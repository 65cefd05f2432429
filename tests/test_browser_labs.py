"""Every lab in a real browser: JupyterLab headless, Debian's chromium driven by Playwright.

Each labs/NN-*/ notebook is opened as a learner gets it (vfiolab.workspace: the released version,
solutions out), answered by typing the lab's own solutions into its answer cells, run with Run All
on the sim board, and judged on what the page shows: the kernel finishes, no error output, every
widget view drawn (no "Error displaying widget", no raw `VBox(...)` text, no endless "Loading
widget..."). Then one interaction per kind of widget must change what is drawn, and one wrong
answer must show its hint. Screenshots of the key views go under the test's tmp folder, whose
path every failure message gives (pytest keeps the last three runs' folders).

When chromium or Playwright is missing, or chromium cannot start, the tests skip and say why;
VFIOLAB_REQUIRE_BROWSER=1 turns that into a failure (for CI, where ./bootstrap test installs both).
"""
import glob
import os
import re
import shutil

import pytest

from browser import chromium, learner
from browser.notebook import NotebookPage
from browser.session import browser_session
from vfiolab import workspace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB_NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "labs", "[0-9][0-9]-*", "*.ipynb")))
FIXTURES = os.path.join(ROOT, "tests", "browser_fixtures")


def view_kinds():
    """The kinds of view photographed after Run All: every vfiolab widget's view carries the CSS
    class vfiolab-<kind> (add_class in vfiolab/widgets/*.py), so a new widget is photographed
    without editing this test; still pictures (vfiolab-still) are HTML, not views."""
    kinds = set()
    for path in glob.glob(os.path.join(ROOT, "vfiolab", "widgets", "*.py")):
        with open(path) as f:
            kinds.update(re.findall(r"add_class\(\s*[\"']vfiolab-([a-z0-9-]+)[\"']", f.read()))
    return sorted(kinds - {"still"})


VIEW_KINDS = view_kinds()

pytestmark = pytest.mark.timeout(600)


def unavailable(reason):
    if chromium.required():
        pytest.fail(f"{reason} (VFIOLAB_REQUIRE_BROWSER is set, so this is a failure)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """JupyterLab on a learner's workspace of every lab (plus the test fixtures), and chromium."""
    reason = chromium.missing()
    if reason:
        unavailable(reason)
    scratch = tmp_path_factory.mktemp("browser")
    work = workspace.prepare(scratch / "work", labs=[os.path.dirname(p) for p in LAB_NOTEBOOKS])
    shutil.copytree(FIXTURES, os.path.join(work.path, "browser_fixtures"))
    try:
        with browser_session(work, str(scratch)) as s:
            s.scratch = str(scratch)
            yield s
    except chromium.Unavailable as e:
        unavailable(str(e))


@pytest.fixture
def notebook_page(session, request):
    """open(path) -> NotebookPage in a new tab; screenshots under <tmp>/screens/<test>; the kernel
    is shut down and the tab closed after the test."""
    pages = []
    shots = os.path.join(session.scratch, "screens", request.node.name.replace("/", "_"))

    def open_notebook(path):
        page = session.context.new_page()
        notebook = NotebookPage(page, session.server, path, shots)
        pages.append(notebook)
        notebook.open()
        return notebook

    yield open_notebook
    for notebook in pages:
        try:
            notebook.shot("at-end")      # what the page showed last, failed or not
        except Exception:
            pass
        session.record()
        notebook.page.close()
    session.server.shut_down_kernels()


def test_every_lab_notebook_is_found():
    """Labs 01 and 02 exist; every lab folder with a notebook is parametrized below."""
    names = [os.path.basename(os.path.dirname(p)) for p in LAB_NOTEBOOKS]
    assert "01-platform-bus" in names and "02-vfio-pl330" in names, names


def test_every_widget_kind_is_photographed():
    """The widgets the labs use so far are found by their CSS class."""
    assert {"busgraph", "inspector", "pl330", "iommu", "memory", "xgmac",
            "irq-timeline", "its", "v2m", "interrupts"} <= set(VIEW_KINDS), VIEW_KINDS


@pytest.mark.parametrize("lab_notebook", LAB_NOTEBOOKS,
                         ids=[os.path.basename(os.path.dirname(p)) for p in LAB_NOTEBOOKS])
def test_lab_in_the_browser(lab_notebook, notebook_page, session):
    lab = os.path.basename(os.path.dirname(lab_notebook))
    shots = os.path.join(session.scratch, "screens", f"test_lab_in_the_browser[{lab}]")
    where = f"(screenshots: {shots})"
    try:
        nb = notebook_page(f"{lab}/{os.path.basename(lab_notebook)}")
        learn_in_the_browser(lab, lab_notebook, nb, where)
    except AssertionError:
        raise
    except Exception as e:      # a page that never got where it should: say where the pictures are
        raise AssertionError(f"{lab}: {type(e).__name__}: {str(e).splitlines()[0]} {where}") from e


def learn_in_the_browser(lab, lab_notebook, nb, where):
    nb.shot("opened")

    # Answer as a learner who knows the answers: type them in, then Run All.
    typed = learner.type_answers(nb, learner.solutions(lab_notebook))
    nb.run_all(timeout=300)
    problems = nb.problems()
    for index, text in typed.items():
        if nb.nb.cells[index].source != text:
            problems.append(f"{nb.label(index)}: the page holds other text than was typed")
    nb.shot("after-run-all")
    assert not problems, f"{lab} after Run All {where}:\n" + "\n".join(problems)

    views = {kind: nb.views(f"vfiolab-{kind}") for kind in VIEW_KINDS}
    for kind in ("inspector", "pl330", "busgraph", "xgmac", "irq-timeline", "its", "v2m", "interrupts"):
        views.setdefault(kind, [])      # (test_every_widget_kind_is_photographed keeps them found)
    for kind, found in views.items():
        for n, view in enumerate(found):
            nb.shot(f"{kind}-{n}", view)

    # One interaction per kind of widget: what is drawn must change.
    for n, view in enumerate(views["inspector"]):
        device = learner.pick_in_inspector(nb, view)
        nb.shot(f"inspector-{n}-picked-{device}", view)
    working = [v for v in views["pl330"] if "has work left" in v.text_content()]
    if views["pl330"]:
        assert working, f"{lab}: no PL330 panel has work left, so Step has nothing to show {where}"
        before, stepped, end = learner.step_and_run_pl330(nb, working[0], "pl330-stepped")
        assert before < stepped < end, f"{lab}: PL330 cycles {before} -> {stepped} -> {end} {where}"
    if views["busgraph"]:
        device, old, new, view = learner.rebind_under_bus_graph(nb, views["busgraph"])
        nb.shot(f"busgraph-after-{device}-to-{new}", view)
    if views["xgmac"]:
        for view, frames in learner.refresh_xgmac(nb, views["xgmac"]):
            nb.shot(f"xgmac-{views['xgmac'].index(view)}-refreshed-{frames}-frames", view)
    if views["its"] or views["v2m"] or views["interrupts"]:       # lab 04's: Refresh each kind
        for kind, view in learner.refresh_msi_views(nb, views):
            nb.shot(f"{kind}-{views[kind].index(view)}-refreshed", view)
    for n, view in enumerate(views["its"]):                      # and follow a foreign DeviceID
        landing = learner.landing_for(nb, view, 0)
        assert "dropped: no device table entry for DeviceID 0" in landing, \
            f"{lab}: the ITS view's landing for DeviceID 0 says {landing!r} {where}"
        nb.shot(f"its-{n}-deviceid-0-dropped", view)
    timelines = views["irq-timeline"]
    with_buttons = [v for v in timelines
                    if learner.button(v, "Raise").count() and learner.button(v, "KVM_RUN").count()]
    for view in with_buttons:
        learner.raise_and_run(nb, view)
        nb.shot(f"irq-timeline-{timelines.index(view)}-raise-kvm-run", view)
    if timelines:
        view = (with_buttons or timelines)[0]
        learner.clear_timeline(nb, view)
        nb.shot(f"irq-timeline-{timelines.index(view)}-cleared", view)

    # A wrong answer in one exercise shows its hint in the page.
    wrong = learner.wrong_answer(lab)
    if wrong is None:      # no wrong answer written for this lab: its first exercise left undone,
        answer, check = learner.first_exercise(nb)       # on a fresh kernel (the board as booted)
        source, hint = "# YOUR CODE HERE\nraise NotImplementedError()", None
    else:
        answer, check, source, hint = wrong
    a, c = nb.index_of(answer), nb.index_of(check)
    nb.set_source(a, source)
    if wrong is None:
        nb.restart_and_run_to(a - 1)
    nb.run_cells(a, c)
    shown = nb.output_text(c)
    nb.shot(f"hint-{check}", nb.cell(c))
    assert "fail" in shown, f"{nb.label(c)} shows no failing check after a wrong answer {where}:\n{shown}"
    if hint is not None:
        assert hint in shown, f"{nb.label(c)} does not show the hint {hint!r} {where}:\n{shown}"


def test_broken_widgets_fail_naming_their_cells(notebook_page):
    nb = notebook_page("browser_fixtures/broken-widget/broken-widget.ipynb")
    nb.run_all(timeout=120)
    problems = nb.problems(loading_timeout=10)
    nb.shot("broken-widgets")
    print("\n".join(problems))
    assert len(problems) == 3, problems
    view_failed, raw, no_model = problems
    assert view_failed.startswith("cell 3 of 6 `from traitlets import Unicode`: the widget view "
                                  "failed: ") and "NoSuchView" in view_failed, problems
    assert raw.startswith("cell 5 of 6 `print(w.VBox([w.HTML(\"printed, not shown\")]))`: raw widget "
                          "text instead of a view: ") and "VBox(children=" in raw, problems
    assert no_model == ("cell 6 of 6 `from IPython.display import display`: the page shows "
                        "'Error displaying widget: model not found'"), problems
