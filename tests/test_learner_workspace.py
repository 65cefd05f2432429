"""The learner's workspace: `vfiolab lab` serves released labs (no solutions, no hidden checks),
copies them once and keeps a learner's work; `--instructor` serves the sources.

The servers are started with the real command, headless, on a free port with a token, each in its
own process group, and always ended (the group is killed if SIGTERM does not end it).
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import nbformat
import pytest

from processes import gone
from vfiolab import workspace
from vfiolab.grading.lab import HIDDEN_CHECKS, Lab
from vfiolab.grading.release import hidden_markers, lab_folders

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LABS = lab_folders(os.path.join(ROOT, "labs"))
TOKEN = "vfiolab-workspace-test"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m vfiolab lab ...` in its own process group, talked to through the REST API."""

    def __init__(self, tmp_path, work, *options):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, VFIOLAB_WORK=str(work), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
                   JUPYTER_CONFIG_DIR=str(tmp_path / "config"))
        self.log = open(tmp_path / f"server-{self.port}.log", "w+")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vfiolab", "lab", *options, "--no-browser",
             f"--port={self.port}", f"--IdentityProvider.token={TOKEN}", "--ServerApp.ip=127.0.0.1"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def output(self):
        self.log.seek(0)
        return self.log.read()

    def wait_ready(self, timeout=120):
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, f"JupyterLab exited early:\n{self.output()}"
            try:
                self.get("/api/status", timeout=2)
                return self
            except OSError:
                assert time.monotonic() < deadline, f"no answer in {timeout} s:\n{self.output()}"
                time.sleep(0.5)

    def request(self, path, data=None, method="GET", timeout=20):
        sep = "&" if "?" in path else "?"
        req = urllib.request.Request(f"{self.base}{path}{sep}token={TOKEN}", method=method,
                                     data=None if data is None else json.dumps(data).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.read().decode()

    def get(self, path, timeout=20):
        return self.request(path, timeout=timeout)[1]

    def contents(self, path=""):
        return json.loads(self.get(f"/api/contents/{path}?content=1"))

    def walk(self, path=""):
        """Every file the contents API lists under path (what the file browser can show)."""
        for item in self.contents(path)["content"]:
            if item["type"] == "directory":
                yield from self.walk(item["path"])
            else:
                yield item["path"]

    def page_config(self):
        page = self.get("/lab")
        found = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
                          page, re.S)
        return json.loads(found.group(1))

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)   # kernels or anything left in the group
        except ProcessLookupError:
            pass
        self.process.wait()
        self.log.close()
        assert gone(self.process.pid)


@pytest.fixture
def serve(tmp_path):
    started = []

    def start(work, *options):
        server = Server(tmp_path, work, *options)
        started.append(server)
        return server.wait_ready()

    yield start
    for server in started:
        server.stop()


def solution_lines(lab):
    """The instructor notebook's solution code, line by line: the lines worth searching for
    (long enough, and found nowhere in the notebook outside its solution blocks)."""
    nb = nbformat.read(os.path.join(lab.path, lab.notebook), as_version=4)
    pattern = re.compile(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", re.S)
    public = "\n".join(pattern.sub("", cell.source) for cell in nb.cells)
    lines = []
    for cell in nb.cells:
        for block in pattern.findall(cell.source):
            lines += [line.strip() for line in block.splitlines()
                      if len(line.strip()) >= 12 and line.strip() not in public]
    return lines


def test_learner_server_shows_no_solution_and_no_hidden_check(tmp_path, serve):
    server = serve(tmp_path / "work")
    files = set(server.walk())
    labs = [Lab(path) for path in LABS]
    for lab in labs:
        assert f"{lab.name}/{lab.notebook}" in files, sorted(files)
    assert not [f for f in files if os.path.basename(f) == HIDDEN_CHECKS or f.startswith(".")], files
    for lab in labs:
        nb = server.contents(f"{lab.name}/{lab.notebook}")["content"]
        text = "\n".join(cell["source"] for cell in nb["cells"])
        assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
        assert solution_lines(lab), f"{lab.name}: found no solution code to look for"
        leaked = [line for line in solution_lines(lab) if line in text]
        assert not leaked, f"{lab.name}: solution code visible to the learner: {leaked}"
        for marker in hidden_markers(lab):
            for path in (f for f in files if f.startswith(lab.name + "/")):
                body = json.dumps(server.contents(path).get("content"))
                assert marker not in body, f"{path} reveals the hidden check {marker!r}"
    # nbgrader's menus and sidebar: its labextension is disabled, its server extensions are off.
    assert workspace.NBGRADER_LABEXTENSION in server.page_config()["disabledExtensions"]
    with pytest.raises(urllib.error.HTTPError) as missing:
        server.get("/formgrader")
    assert missing.value.code == 404
    assert "your work folder is" in server.output() and "--fresh" in server.output()


def test_second_run_keeps_a_learners_work_and_instructor_sees_the_sources(tmp_path, serve):
    work = tmp_path / "work"
    first = serve(work)
    lab = Lab(LABS[0])
    path = f"{lab.name}/{lab.notebook}"
    model = first.contents(path)
    answer = "# my own answer, typed in the browser"
    cell = next(c for c in model["content"]["cells"] if c["cell_type"] == "code"
                and c["metadata"].get("nbgrader", {}).get("solution"))
    cell["source"] = answer
    status, _ = first.request(f"/api/contents/{path}", method="PUT",
                              data={"type": "notebook", "format": "json", "content": model["content"]})
    assert status == 200
    first.stop()

    again = serve(work)
    assert answer in json.dumps(again.contents(path)["content"]), "the second run overwrote the notebook"
    assert f"left as you left them: {lab.name}" in again.output()
    again.stop()

    instructor = serve(work, "--instructor")
    sources = set(instructor.walk("labs"))
    assert f"labs/{lab.name}/{HIDDEN_CHECKS}" in sources
    text = json.dumps(instructor.contents(f"labs/{path}")["content"])
    assert "### BEGIN SOLUTION" in text
    assert workspace.NBGRADER_LABEXTENSION not in instructor.page_config()["disabledExtensions"]


def test_a_lab_added_by_an_update_joins_without_touching_the_others(tmp_path):
    first, second = (Lab(p) for p in LABS[:2])
    work = workspace.prepare(tmp_path / "work", labs=[first.path])
    assert work.added == [first.name] and not os.path.exists(os.path.join(work, second.name))
    mine = os.path.join(work, first.name, first.notebook)
    with open(mine, "a") as f:
        f.write(" ")     # any change at all, even one nbformat would not keep
    changed = open(mine).read()
    updated = workspace.prepare(tmp_path / "work", labs=[first.path, second.path])
    assert updated.added == [second.name] and updated.kept == [first.name]
    assert open(mine).read() == changed
    assert os.path.exists(os.path.join(work, second.name, second.notebook))
    assert not [n for n in os.listdir(work) if n.startswith(".incoming")]


def test_fresh_sets_the_old_workspace_aside(tmp_path):
    lab = Lab(LABS[0])
    work = workspace.prepare(tmp_path / "work", labs=[lab.path])
    mine = os.path.join(work, lab.name, lab.notebook)
    with open(mine, "a") as f:
        f.write(" ")
    fresh = workspace.prepare(tmp_path / "work", labs=[lab.path], fresh=True)
    assert fresh.set_aside and open(os.path.join(fresh.set_aside, lab.name, lab.notebook)).read().endswith(" ")
    assert not open(mine).read().endswith(" ") and fresh.added == [lab.name]


def test_opening_a_notebook_does_not_mark_it_modified(tmp_path):
    """JupyterLab writes the running kernel's kernelspec (name, display name, language) and
    language_info into the notebook and marks it modified when they differ: the workspace's
    copy must already hold exactly what this machine's kernel reports."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import start_new_kernel
    lab = Lab(LABS[0])
    work = workspace.prepare(tmp_path / "work", labs=[lab.path])
    meta = nbformat.read(os.path.join(work, lab.name, lab.notebook), as_version=4).metadata
    spec = KernelSpecManager().get_kernel_spec(meta.kernelspec.name)
    assert meta.kernelspec == {"name": meta.kernelspec.name, "display_name": spec.display_name,
                               "language": spec.language}
    manager, client = start_new_kernel(kernel_name=meta.kernelspec.name)
    try:
        reply = client.kernel_info(reply=True, timeout=60)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    assert meta.language_info == reply["content"]["language_info"]
