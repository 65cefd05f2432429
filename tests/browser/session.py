"""A browser session: JupyterLab on a learner's workspace plus chromium, ended on every exit path.

Every process either of them started is recorded while it is still our descendant (RECORDED keeps
them for the whole pytest run), so that test_browser_processes.py can show all of them ended.
"""
import contextlib
import os

from . import chromium, procs
from .server import JupyterLab

RECORDED = {}      # (pid, start) -> command line, of every browser session in this pytest run


class Session:
    def __init__(self, server, context, baseline):
        self.server, self.context, self.baseline = server, context, baseline

    def record(self):
        """Remember every process the server and the browser run now."""
        seen = self.server.record()
        seen.update({p: c for p, c in procs.descendants(os.getpid()).items() if p not in self.baseline})
        RECORDED.update(seen)
        return seen


@contextlib.contextmanager
def browser_session(root, scratch):
    """(Session) JupyterLab serving `root` and a chromium context; `scratch` holds their files.
    Raises chromium.Unavailable when chromium is missing or cannot start."""
    from playwright.sync_api import Error as PlaywrightError, sync_playwright

    baseline = procs.descendants(os.getpid())
    server = JupyterLab(root, scratch)
    playwright = context = session = None
    try:
        playwright = sync_playwright().start()
        try:
            context = chromium.launch(playwright, os.path.join(scratch, "chromium-profile"))
        except PlaywrightError as e:
            raise chromium.Unavailable(f"chromium ({chromium.executable()}) did not start: "
                                       f"{str(e).strip().splitlines()[0]}") from e
        server.start()
        session = Session(server, context, baseline)
        session.record()
        yield session
    finally:
        if session is not None:
            session.record()
        try:
            if context is not None:
                context.close()
        except Exception:       # a browser that died already: its processes are checked below
            pass
        try:
            if playwright is not None:
                playwright.stop()
        finally:
            RECORDED.update(server.stop())
            procs.kill(procs.left_running(RECORDED, timeout=10))
