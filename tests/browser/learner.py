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


# Run in the learner's kernel: change what every live xgmac view shows while keeping it from
# redrawing (a live view redraws after each cell), so that only its Refresh button can redraw it.
# The frame goes out through the lab's own driver when the notebook has one (`loopback`, typed in
# from the lab's solutions), else it arrives from the wire.
XGMAC_CELL = """\
# browser test: change what the xgmac views show without redrawing them: only Refresh may
import vfiolab as vfiolab_
from vfiolab.widgets.live import _watching as live_views_
from vfiolab.widgets.xgmac_rings import XgmacView as XgmacView_
views_, seen_ = [], []
for v_ in [v for v in list(live_views_) if isinstance(v, XgmacView_)]:
    if any(v_.board is b for b in vfiolab_._retired_lab_boards):
        continue                       # its board was replaced: the view keeps its last picture
    v_.stop()                          # the end of this cell redraws nothing
    views_.append(v_)
    seen_.append(v_.text())
frame_ = b"\\x02\\x00\\x00\\x00\\x00\\x01\\x02\\x00\\x00\\x00\\x00\\x02\\x88\\xb5" + b"refresh! " * 6
if callable(globals().get("loopback")):
    print("SENT by loopback, came back the same:", loopback(frame_) == frame_)
else:
    for v_ in views_:
        print("INJECTED", v_.device, v_.board.xgmac_wire(v_.device).inject(frame_))
        v_.board.model(v_.device).step()
for v_, text_ in zip(views_, seen_):
    if v_.text() != text_:
        regs_ = ",".join("=".join(line.split()) for line in v_.text().splitlines()
                         if line.split()[0].isupper())
        print("XGMAC-CHANGED", len(v_.board.xgmac_wire(v_.device).frames_sent()), regs_, v_.title)"""


def button(view, label):
    """The button of `view` that reads `label` (by its text: an icon's glyph joins the button's
    accessible name, so get_by_role's name would not match a button with an icon)."""
    return view.locator("button", has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))


def view_title(view):
    """The title a vfiolab view draws first, in bold."""
    return view.locator(".widget-html-content b").first.text_content()


def refresh_xgmac(notebook, views):
    """Run XGMAC_CELL, then click Refresh on each xgmac view it changed: the drawing must stay as
    it was until the click, and show the new state (the wire's frame count) after it.
    Returns [(view, frames on the wire)] of the views refreshed."""
    before = [html_of(v) for v in views]
    index = notebook.append_cell(XGMAC_CELL)
    text = notebook.output_text(index)
    changed = re.findall(r"XGMAC-CHANGED (\d+) (\S+) (.+)", text)
    assert changed, (f"{notebook.label(index)} (added by the test) changed no live xgmac view: "
                     f"{text!r}")
    assert "SENT" not in text or "came back the same: True" in text, \
        f"{notebook.label(index)} (added by the test): the lab's loopback lost the frame: {text!r}"
    refreshed = []
    for frames, registers, title in changed:
        title = title.strip()
        at = [i for i, v in enumerate(views) if view_title(v) == title]
        assert at, f"no xgmac view in the page is titled {title!r}"
        view = views[at[0]]
        assert html_of(view) == before[at[0]], \
            f"the xgmac view {title!r} redrew before Refresh was clicked (the test stopped its redraws)"
        button(view, "Refresh").click()
        wait_until(notebook.page, lambda: html_of(view) != before[at[0]],
                   f"the xgmac view {title!r} did not redraw after Refresh", timeout=20)
        wire = f"{frames} frame(s) on the wire" if int(frames) else "Nothing sent on the wire yet."
        shown = panel_text(view)
        assert wire in shown, f"the xgmac view {title!r} after Refresh does not say {wire!r}: {shown!r}"
        drawn = {row[0]: row[1] for row in table_rows(view) if len(row) > 1}
        for name, value in (r.split("=") for r in registers.split(",")):   # as the kernel reads them
            assert drawn.get(name) == value, \
                f"the xgmac view {title!r} after Refresh shows {name} {drawn.get(name)}, not {value}"
        refreshed.append((view, int(frames)))
    return refreshed


# Run in the learner's kernel: change what lab 04's live views show (the ITS, the GICv2m frame,
# /proc/interrupts) while keeping them from redrawing, so that only their Refresh buttons can: the
# sim kernel sends one more INV + SYNC to the ITS, and edu forges the SMMU's SPI again with the
# lab's own forge() (typed in from the lab's solutions) on the GICv2m board. Each line printed is
# what the kernel reads now, for the views to be compared with after Refresh.
MSI_CELL = """\
# browser test: change what lab 04's views show without redrawing them: only Refresh may
import vfiolab as vfiolab_
from vfiolab.hw.gic import its_command as its_command_
from vfiolab.widgets.interrupts import InterruptView as InterruptView_
from vfiolab.widgets.its_view import ItsView as ItsView_, device_table as device_table_, registers as its_registers_
from vfiolab.widgets.live import _watching as live_views_
from vfiolab.widgets.v2m_view import V2mView as V2mView_
views_ = [v for v in list(live_views_) if isinstance(v, (ItsView_, V2mView_, InterruptView_))
          and not any(v.board is b for b in vfiolab_._retired_lab_boards)]
for v_ in views_:
    v_.stop()                          # the end of this cell redraws nothing
for v_ in views_:
    if isinstance(v_, ItsView_) and v_.its is not None and device_table_(v_.its):
        dev_ = device_table_(v_.its)[0][0]
        v_.board.interrupts.msi_chip.send(its_command_("INV", device_id=dev_, event_id=0),
                                          its_command_("SYNC", rdbase=0))
        r_ = its_registers_(v_.its)
        print(f"ITS-CHANGED {r_['GITS_CREADR']:#x} {r_['GITS_CWRITER']:#x} {v_.title}")
forger_ = globals().get("v2m_edu")
if callable(globals().get("forge")) and forger_ is not None:
    irqs_ = [v for v in views_ if isinstance(v, InterruptView_) and v.board is forger_.board]
    smmu_ = next(r for r in irqs_[0].read() if r["handler"] == "arm-smmu-v3-evtq")
    forge(forger_, v2m_address, smmu_["hwirq"])
    for v_ in views_:
        if v_.board is forger_.board and isinstance(v_, V2mView_):
            print(f"V2M-CHANGED {len(v_.state()['writes'])} {smmu_['hwirq']} {v_.title}")
        if v_.board is forger_.board and isinstance(v_, InterruptView_):
            now_ = next(r for r in v_.read() if r["handler"] == "arm-smmu-v3-evtq")
            print(f"IRQS-CHANGED arm-smmu-v3-evtq {sum(now_['counts'])} {v_.title}")"""


def refresh_msi_views(notebook, views):
    """Run MSI_CELL, then click Refresh on each lab 04 view it changed: the drawing must stay as it
    was until the click and show, after it, what the kernel reads: the ITS's CREADR and CWRITER,
    the frame's new last write (the SMMU's SPI, by edu), and the SMMU's line highlighted with +1.
    Returns [(name, view)] of the views refreshed."""
    kinds = {"ITS": "its", "V2M": "v2m", "IRQS": "interrupts"}
    before = {kind: [html_of(v) for v in views[kind]] for kind in kinds.values()}
    index = notebook.append_cell(MSI_CELL)
    text = notebook.output_text(index)
    changed = re.findall(r"(ITS|V2M|IRQS)-CHANGED (\S+) (\S+) (.+)", text)
    assert {c[0] for c in changed} == set(kinds), \
        f"{notebook.label(index)} (added by the test) did not change an ITS, v2m and interrupt view: {text!r}"
    refreshed = []
    for what, first, second, title in changed:
        kind, title = kinds[what], title.strip()
        at = [i for i, v in enumerate(views[kind]) if view_title(v) == title]
        assert at, f"no {kind} view in the page is titled {title!r}"
        view = views[kind][at[0]]
        assert html_of(view) == before[kind][at[0]], \
            f"the {kind} view {title!r} redrew before Refresh was clicked (the test stopped its redraws)"
        button(view, "Refresh").click()
        wait_until(notebook.page, lambda: html_of(view) != before[kind][at[0]],
                   f"the {kind} view {title!r} did not redraw after Refresh", timeout=20)
        shown = panel_text(view)
        if what == "ITS":
            drawn = {row[0]: row[1] for row in table_rows(view)}
            assert (drawn.get("GITS_CREADR"), drawn.get("GITS_CWRITER")) == (first, second), \
                f"the ITS view after Refresh shows CREADR/CWRITER {drawn}, the kernel reads {first}/{second}"
            assert f"CREADR {first}, CWRITER {second}" in shown, shown
        elif what == "V2M":
            rows = table_rows(view, 1)
            assert len(rows) == min(int(first), 8) and rows[-1][0] == f"{second} ({int(second):#x})", \
                f"the v2m view after Refresh lists the writes {rows}, not {first} ending with {second}"
            assert "the SMMUv3 (host driver)'s" in rows[-1][1], rows[-1]
        else:
            moved = view.evaluate("v => Array.from(v.querySelectorAll('tr.vfiolab-moved'))"
                                  ".map(r => Array.from(r.cells).map(c => c.textContent))")
            assert len(moved) == 1 and moved[0][4] == first and moved[0][6] == second and moved[0][7] == "+1", \
                f"the interrupt view after Refresh highlights {moved}: not {first} at count {second}, +1"
        refreshed.append((kind, view))
    return refreshed


def landing_for(notebook, view, device_id):
    """Type a DeviceID into the ITS view's "where a write lands": the path must follow. Returns
    what the view says from there on."""
    said = re.compile(rf"DeviceID {device_id}( \([^)]*\))? writes")     # (the PCI device, if any)
    box = view.locator(".widget-inline-hbox", has_text="DeviceID").locator("input").first
    box.fill(str(device_id))
    box.press("Tab")                   # the text box sends its value when it loses the focus
    try:
        wait_until(notebook.page, lambda: said.search(view.text_content()),
                   f"the ITS view's landing did not follow DeviceID {device_id}", timeout=20)
    except AssertionError as e:
        raise AssertionError(f"{e}; it says {view.text_content()[-300:]!r}") from None
    text = view.text_content()
    return text[said.search(text).start():]


def table_rows(view, table=0):
    """The rows of a view's table number `table`, each as its cells' text (header row left out)."""
    return view.evaluate("""(v, n) => Array.from(
        v.querySelectorAll('.widget-html-content table')[n].querySelectorAll('tr')).slice(1)
        .map(r => Array.from(r.cells).map(c => c.textContent))""", table)


def timeline_rows(view):
    """The rows an IRQ timeline draws (none before its first sample: no table then)."""
    if "No moments sampled yet." in panel_text(view):
        return []
    return table_rows(view)


def press_on_timeline(notebook, view, label, rows):
    """Click button `label` on an IRQ timeline that draws `rows` rows: it must draw one more; returns it."""
    button(view, label).click()
    wait_until(notebook.page, lambda: len(timeline_rows(view)) == rows + 1,
               f"the IRQ timeline did not draw one more row than {rows} after {label}", timeout=20)
    return timeline_rows(view)[-1]


def raise_and_run(notebook, view):
    """Raise, then KVM_RUN, on an IRQ timeline with those buttons: each click adds a row, and the
    guest reports taking the timeline's SPI (its column title, "SPI N"). Returns the two rows."""
    spi = re.search(r"SPI (\d+)", " ".join(view.locator("th").all_text_contents())).group(1)
    rows = len(timeline_rows(view))
    raised = press_on_timeline(notebook, view, "Raise", rows)
    ran = press_on_timeline(notebook, view, "KVM_RUN", rows + 1)
    took = f"IAR: took INTID {spi}"
    assert raised[0] == "Raise" and ran[0] == "KVM_RUN" and any(took in c for c in ran), \
        f"after Raise and KVM_RUN the timeline's last rows are {raised} and {ran}: no {took!r}"
    return raised, ran


def clear_timeline(notebook, view):
    """Clear: the timeline forgets its rows and says so."""
    button(view, "Clear").click()
    wait_until(notebook.page, lambda: "No moments sampled yet." in panel_text(view),
               "the IRQ timeline still draws rows after Clear", timeout=20)


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
