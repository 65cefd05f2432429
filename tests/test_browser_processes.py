"""The browser tests leave no chromium, Playwright driver, JupyterLab or kernel process behind, on
any exit path. (Runs after test_browser_labs.py: it also checks every process that module's
session started.)"""
import os
import shutil

import pytest

from browser import chromium, procs
from browser.notebook import NotebookPage
from browser.session import RECORDED, browser_session
from vfiolab import workspace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "browser_fixtures")
OURS = ("chrom", "playwright", "jupyter", "ipykernel")    # what a browser session starts


def ours(procs_by_id):
    return {p: c for p, c in procs_by_id.items() if any(word in c for word in OURS)}


@pytest.mark.timeout(300)
def test_a_test_failing_midway_leaves_no_process(tmp_path):
    reason = chromium.missing()
    if reason:
        (pytest.fail if chromium.required() else pytest.skip)(reason)
    work = workspace.prepare(tmp_path / "work", labs=[])
    shutil.copytree(FIXTURES, os.path.join(work.path, "browser_fixtures"))
    seen = {}
    try:
        with browser_session(work, str(tmp_path)) as session:
            page = session.context.new_page()
            notebook = NotebookPage(page, session.server,
                                    "browser_fixtures/broken-widget/broken-widget.ipynb", str(tmp_path))
            notebook.open()                       # a kernel starts for it
            seen = session.record()
            raise RuntimeError("a test failing midway, browser, server and kernel all running")
    except chromium.Unavailable as e:
        (pytest.fail if chromium.required() else pytest.skip)(str(e))
    except RuntimeError as e:
        assert "failing midway" in str(e)
    commands = " | ".join(seen.values())
    for what in ("chrom", "jupyterlab", "ipykernel"):     # the check below is not vacuous
        assert what in commands, f"no {what} process was recorded: {procs.describe(seen)}"
    left = procs.left_running(seen, timeout=0)
    assert not left, f"still running after the session ended: {procs.describe(left)}"


def test_no_browser_test_left_a_process():
    if not RECORDED:
        pytest.skip("no browser session ran in this pytest run")
    left = procs.left_running(RECORDED, timeout=5)
    assert not left, f"still running after the browser tests: {procs.describe(left)}"
    strays = ours(procs.descendants(os.getpid()))
    assert not strays, f"children of this test run still running: {procs.describe(strays)}"


CHILD = """
import os, sys, time
sys.path.insert(0, {tests!r})
from browser.server import JupyterLab
server = JupyterLab({root!r}, {scratch!r}).start()
print(server.process.pid, flush=True)
time.sleep(600)
"""


@pytest.mark.timeout(120)
def test_a_killed_test_run_takes_jupyterlab_with_it(tmp_path):
    """pytest killed outright (SIGKILL, no finalizer runs): the server still ends."""
    import signal
    import subprocess
    import sys
    work = workspace.prepare(tmp_path / "work", labs=[])
    code = CHILD.format(tests=os.path.join(ROOT, "tests"), root=work.path, scratch=str(tmp_path))
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        server = procs.identity(int(child.stdout.readline()))
        assert procs.alive(server)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    left = procs.left_running({server: "jupyterlab"}, timeout=30)
    procs.kill(left)
    assert not left, "JupyterLab outlived the test process that started it"
