"""One notebook open in JupyterLab in the browser, driven the way a learner drives it: typing into
cells, Run All from the menu, Shift+Enter, saving. problems() lists what a learner would see wrong,
each naming its cell.
"""
import os
import re
import time

import nbformat

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
# The repr a widget falls back to when no widget manager draws it: the raw text a learner sees.
RAW_WIDGET = re.compile(r"\b(VBox|HBox|Box|GridBox|Tab|Accordion|Output|HTML|Button|Dropdown)\("
                        r"(children|value|description|layout|options)=")
# The notebook in the tab shown (a page restores the tabs of an earlier one unless reset).
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
CELLS = f"{PANEL} .jp-Notebook .jp-Cell"


class NotebookPage:
    def __init__(self, page, server, path, shots):
        """path: the notebook's path under the server's root; shots: the screenshot folder."""
        self.page, self.server, self.path, self.shots = page, server, path, shots
        self.file = os.path.join(server.root, path)
        self.nb = nbformat.read(self.file, as_version=4)
        os.makedirs(shots, exist_ok=True)

    # --- naming cells ----------------------------------------------------------------------
    def label(self, index):
        """How a message names cell `index`: its number as JupyterLab's status bar counts, its
        nbgrader id, its first line."""
        cell = self.nb.cells[index]
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        first = next((line for line in cell.source.splitlines() if line.strip()), "")[:70]
        return (f"cell {index + 1} of {len(self.nb.cells)}" + (f" [{grade_id}]" if grade_id else "")
                + f" `{first}`")

    def index_of(self, grade_id):
        for i, cell in enumerate(self.nb.cells):
            if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
                return i
        raise LookupError(f"{self.path} has no cell with grade_id {grade_id!r}")

    def cell(self, index):
        return self.page.locator(CELLS).nth(index)

    def views(self, css_class):
        """The widget views with this CSS class in this notebook (vfiolab's views carry one)."""
        return self.page.locator(f"{PANEL} .{css_class}").all()

    # --- driving ---------------------------------------------------------------------------
    def open(self, timeout=90):
        self.page.goto(self.server.url(f"/lab/tree/{self.path}") + "&reset")   # no earlier tabs
        n = len(self.nb.cells)
        self.page.wait_for_function(f"document.querySelectorAll({CELLS!r}).length == {n}",
                                    timeout=timeout * 1000)
        deadline = time.monotonic() + timeout
        while self.kernel_state() != "idle":      # the page says idle before a kernel exists
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no idle kernel for {self.path} after {timeout} s "
                                   f"(kernel: {self.kernel_state()})")
            time.sleep(0.2)
        self.wait_idle(timeout)

    def kernel_state(self):
        """The server's word on this notebook's kernel: "idle", "busy", ..., or None (none yet)."""
        for session in self.server.api("GET", "/api/sessions"):
            if session.get("path") == self.path and session.get("kernel"):
                return session["kernel"].get("execution_state")
        return None

    def kernel_status(self):
        return self.page.locator(f"{PANEL} .jp-Notebook-ExecutionIndicator").first \
            .get_attribute("data-status")

    def busy_prompts(self):
        """Numbers of the cells whose prompt says queued or running ([*])."""
        return self.page.evaluate(f"""() => Array.from(document.querySelectorAll({CELLS!r}))
            .map((c, i) => [i, (c.querySelector('.jp-InputPrompt') || {{}}).textContent || ''])
            .filter(([i, t]) => t.includes('*')).map(([i]) => i)""")

    def wait_idle(self, timeout=120):
        """Until the kernel is idle and no cell waits to run; TimeoutError names what still runs."""
        deadline = time.monotonic() + timeout
        calm = 0
        while True:
            status, busy = self.kernel_status(), self.busy_prompts()
            if status == "idle" and not busy:
                status = self.kernel_state()
            calm = calm + 1 if status == "idle" and not busy else 0
            if calm >= 3:          # idle three polls running: not a gap between two cells
                return
            if time.monotonic() >= deadline:
                running = ", ".join(self.label(i) for i in busy[:3]) or "none queued"
                raise TimeoutError(f"the kernel is still {status!r} after {timeout} s; running or "
                                   f"queued: {running}")
            time.sleep(0.2)

    def set_source(self, index, text):
        """Replace a cell's text as a learner does: click into it, select all, type."""
        cell = self.cell(index)
        cell.scroll_into_view_if_needed()
        cell.locator(".cm-content").click()
        self.page.keyboard.press("Control+a")
        self.page.keyboard.insert_text(text)
        self.page.keyboard.press("Escape")

    def menu(self, top, item):
        self.page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{re.escape(top)}$")).click()
        self.page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")).click()

    def run_all(self, timeout=300):
        self.menu("Run", "Run All Cells")
        self.page.wait_for_timeout(500)
        self.wait_idle(timeout)

    def run_cells(self, first, last, timeout=120):
        """Select cell `first` and press Shift+Enter through cell `last`."""
        cell = self.cell(first)
        cell.scroll_into_view_if_needed()
        cell.locator(".jp-InputPrompt").click()        # selects it in command mode
        for _ in range(first, last + 1):
            self.page.keyboard.press("Shift+Enter")
            self.wait_idle(timeout)

    def restart_and_run_to(self, index, timeout=300):
        """Kernel > Restart Kernel and Run up to Selected Cell, with cell `index` selected."""
        cell = self.cell(index)
        cell.scroll_into_view_if_needed()
        cell.locator(".jp-InputPrompt").click()
        self.menu("Kernel", "Restart Kernel and Run up to Selected Cell…")
        self.page.locator(".jp-Dialog button.jp-mod-accept").click()
        self.page.wait_for_timeout(1000)
        self.wait_idle(timeout)

    def append_cell(self, text, timeout=120):
        """A new code cell at the end holding `text`, run with Shift+Enter; returns its index."""
        last = len(self.page.locator(CELLS).all()) - 1
        self.cell(last).locator(".jp-InputPrompt").click()
        self.page.keyboard.press("b")                  # insert a cell below (command mode)
        self.page.keyboard.press("Enter")              # edit it
        self.page.keyboard.insert_text(text)
        self.page.keyboard.press("Shift+Enter")
        self.wait_idle(timeout)
        return last + 1

    def save(self, timeout=30):
        """Ctrl+S, then read back what JupyterLab wrote (self.nb)."""
        self.page.keyboard.press("Escape")
        self.page.keyboard.press("Control+s")
        self.page.wait_for_function(
            "() => !document.querySelector('.lm-TabBar-tab.jp-mod-current.jp-mod-dirty')",
            timeout=timeout * 1000)
        self.nb = nbformat.read(self.file, as_version=4)
        return self.nb

    def output_text(self, index):
        area = self.cell(index).locator(".jp-OutputArea")
        area.scroll_into_view_if_needed()      # innerText of a cell the browser skips is empty
        return area.inner_text()

    def shot(self, name, locator=None):
        """A screenshot (of one element, or the window) under the screenshot folder."""
        path = os.path.join(self.shots, f"{name}.png")
        if locator is None:
            self.page.screenshot(path=path)
        else:
            locator.scroll_into_view_if_needed()
            locator.screenshot(path=path)
        return path

    # --- judging ---------------------------------------------------------------------------
    def outputs_in_dom(self):
        """Per cell, its outputs as the page draws them, in the notebook's order:
        [[{"text", "widget": a widget view, "error": an ipywidgets error view}]]."""
        return self.page.evaluate(f"""() => Array.from(document.querySelectorAll({CELLS!r})).map(cell =>
            Array.from(cell.querySelectorAll('.jp-OutputArea-child .jp-OutputArea-output')).map(o => ({{
                text: o.textContent,
                widget: !!o.querySelector('.jupyter-widgets'),
                error: !!o.querySelector('.jupyter-widgets-error-widget')}})))""")

    def wait_views(self, timeout=30):
        """Give "Loading widget..." views `timeout` seconds to draw."""
        deadline = time.monotonic() + timeout
        while any("Loading widget" in o["text"] for cell in self.outputs_in_dom() for o in cell):
            if time.monotonic() >= deadline:
                return
            time.sleep(0.25)

    def widget_error(self, index):
        """The error an ipywidgets error view of cell `index` shows when clicked, as a learner would."""
        view = self.cell(index).locator(".jupyter-widgets-error-widget").first
        view.scroll_into_view_if_needed()
        view.click()
        self.page.wait_for_timeout(300)
        text = " ".join(view.inner_text().split())
        return re.sub(r"^\[Open Browser Console[^\]]*\]\s*", "", text)[:200]   # the error, not the help

    def problems(self, loading_timeout=30):
        """What a learner would see wrong after running the notebook, one line per problem,
        each naming its cell: error outputs, red stderr text, cells that never ran, widget views
        that show an error, stay "Loading widget..." after loading_timeout seconds, are not drawn,
        or fell back to raw text like `VBox(children=...)`."""
        self.wait_views(loading_timeout)
        nb, found = self.save(), []
        drawn = self.outputs_in_dom()
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            label = self.label(i)
            if cell.source.strip() and cell.execution_count is None:
                found.append(f"{label}: never ran (Run All stopped before it?)")
            page = drawn[i]
            if len(page) != len(cell.outputs):
                found.append(f"{label}: {len(cell.outputs)} output(s) in the notebook, {len(page)} "
                             "drawn in the page")
            for out, shown in zip(cell.outputs, page):
                text = " ".join(shown["text"].split())
                if out.output_type == "error":
                    found.append(f"{label}: error output {out.ename}: {out.evalue}"[:400])
                elif out.output_type == "stream" and out.name == "stderr":
                    found.append(f"{label}: red stderr text: {out.text.strip()[:200]}")
                elif WIDGET_MIME not in out.get("data", {}):
                    match = RAW_WIDGET.search(shown["text"])
                    if match:
                        found.append(f"{label}: raw widget text instead of a view: "
                                     f"{shown['text'][match.start():match.start() + 80]!r}")
                elif "Error displaying widget" in text:
                    found.append(f"{label}: the page shows {text[:200]!r}")
                elif shown["error"]:
                    found.append(f"{label}: the widget view failed: {self.widget_error(i)!r}")
                elif "Loading widget" in text:
                    found.append(f"{label}: still 'Loading widget...' after {loading_timeout} s")
                elif not shown["widget"]:
                    found.append(f"{label}: a widget output with no view drawn: {text[:100]!r}")
        return found
