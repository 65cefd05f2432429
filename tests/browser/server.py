"""JupyterLab, headless, on a free port with a token, serving a learner's workspace.

The server runs in a process group of its own. stop() ends it on every path: SIGTERM first (the
server shuts its kernels down), then SIGKILL for the group and for every descendant it had, kernels
included (they run in sessions of their own, outside the group). If the test process itself is
killed, the server gets SIGTERM from the kernel (parent-death signal) and ends its kernels.
"""
import ctypes
import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

from vfiolab import workspace

from . import procs

PR_SET_PDEATHSIG = 1

# A learner's JupyterLab as shipped, minus what needs the network this machine does not have.
SETTINGS = {"@jupyterlab/apputils-extension/notification.jupyterlab-settings":
            {"fetchNews": "false", "checkForUpdates": False}}


def _term_with_parent(parent_pid):
    """Between fork and exec: SIGTERM when the test process dies, even by SIGKILL, so the server
    still shuts its kernels down (prctl looked up before the fork)."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def setup():
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent_pid:      # the parent died before prctl took effect
            os._exit(1)
    return setup


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterLab:
    def __init__(self, root, scratch):
        self.root, self.scratch = os.fspath(root), scratch
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.process, self.seen = None, {}
        self.log_path = os.path.join(scratch, "jupyterlab.log")

    def start(self, timeout=90):
        settings = os.path.join(self.scratch, "lab-settings")
        for name, data in SETTINGS.items():
            os.makedirs(os.path.dirname(os.path.join(settings, name)), exist_ok=True)
            with open(os.path.join(settings, name), "w") as f:
                json.dump(data, f)
        argv, env = workspace.server_command(self.root, extra=[
            "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}"])
        env.update(JUPYTERLAB_SETTINGS_DIR=settings,
                   JUPYTERLAB_WORKSPACES_DIR=os.path.join(self.scratch, "lab-workspaces"),
                   JUPYTER_RUNTIME_DIR=os.path.join(self.scratch, "jupyter-runtime"),
                   VFIOLAB_BOARD="sim")
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True,
                                            preexec_fn=_term_with_parent(os.getpid()))
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.process.returncode} before it "
                                   f"answered; its log: {self.log_path}\n{self.log_tail()}")
            try:
                self.api("GET", "/api/status")
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() >= deadline:
                    raise RuntimeError(f"JupyterLab did not answer within {timeout} s; its log: "
                                       f"{self.log_path}\n{self.log_tail()}")
                time.sleep(0.3)

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}?token={self.token}"

    def api(self, method, path):
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as reply:
            body = reply.read()
        return json.loads(body) if body else None

    def shut_down_kernels(self):
        """End every session's kernel (a lab done with: its kernel's memory back for the next)."""
        for session in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{session['id']}")

    def record(self):
        """Remember the server and its descendants now, to check later that all of them ended."""
        if self.process is not None:
            self.seen.update(procs.descendants(self.process.pid))
            self.seen.setdefault(procs.identity(self.process.pid), procs.cmdline(self.process.pid))
        return dict(self.seen)

    def stop(self):
        """End the server and all it started; returns what was recorded (for the caller's check)."""
        if self.process is None:
            return {}
        self.record()
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        procs.kill(procs.left_running(self.seen, timeout=5))
        return dict(self.seen)
