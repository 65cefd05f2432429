"""The kernel factory: learners' kernels forked from one prepared process instead of started anew.

Why (issue 13's profile, sample lab, 2 cores): starting a sandboxed kernel by exec cost ~0.65 s per
notebook (two interpreters, ipykernel's and IPython's imports, then vfiolab's in the first cell),
a third of the grader's time. The factory imports all of that once; a kernel is then a fork.

    grader ──starts──> factory (this module): imported ipykernel, IPython, vfiolab, the labs' modules;
                       never runs learner code, so every fork starts from the same clean state
    runner ──jupyter_client starts──> kernel_launcher.py ──Unix socket──> factory
        factory forks a keeper: it isolates itself (sandbox.isolate: namespaces, covered folders)
        and forks the kernel (pid 1 of its PID namespace, `nobody`, in the scratch folder), which
        starts ipykernel in-process on the launcher's connection file and stdio.
        The keeper passes the launcher's interrupts on, kills the kernel when the launcher's
        socket closes (it was killed), and sends back the kernel's exit code.

The socket lives in the grader's private work folder (0700), which every kernel sees covered.
The sandbox is the one `python -m vfiolab.grading.sandbox` applies; only the start differs.
"""
import importlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import traceback

from . import sandbox

# What every kernel imports: ipykernel's app and shell (and what its initialize() imports: the
# debugger alone, debugpy, was 0.28 s), IPython, and vfiolab's grading side.
PRELOAD = ["ipykernel.kernelapp", "ipykernel.ipkernel", "ipykernel.zmqshell", "ipykernel.debugger",
           "IPython", "IPython.display", "IPython.core.completerlib", "IPython.core.debugger",
           "IPython.extensions.storemagic", "sqlite3", "pdb", "faulthandler",
           "tornado.platform.asyncio", "vfiolab", "vfiolab.grading",
           # What the labs' notebooks import without naming it: open_board()'s simulated board
           # and what it models, the widgets' library (0.2 + 0.14 s in every kernel, measured)
           "vfiolab.board.sim", "vfiolab.platform", "vfiolab.vfio", "vfiolab.uapi_kvm",
           "vfiolab.hw.pl330", "vfiolab.hw.xgmac", "vfiolab.hw.gic", "vfiolab.hw.a64",
           "ipywidgets", "graphviz"]


def _threads():
    return len(os.listdir("/proc/self/task"))


def serve(socket_path, preload):
    """The factory's loop (in its own process): import, then fork a keeper per request."""
    sandbox._libc.prctl(sandbox.PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    failed = []
    for name in PRELOAD + list(preload):
        try:
            importlib.import_module(name)
        except Exception as e:  # a lab's module that does not import: its notebook will say why
            failed.append(f"{name}: {type(e).__name__}: {e}")
    if _threads() != 1:  # fork() copies only the calling thread: a preloaded thread would be lost
        print(f"vfiolab kernel factory: an import started a thread ({_threads()} running); "
              "forked kernels would be broken", file=sys.stderr)
        return 3
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # keepers are reaped by the kernel, never zombies
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(socket_path)
    os.chmod(socket_path, 0o600)
    listener.listen(64)
    print(json.dumps({"ready": True, "preload_failed": failed}), flush=True)
    while True:
        conn, _ = listener.accept()
        try:
            message, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
            request = json.loads(message)
        except (OSError, ValueError):
            conn.close()
            continue
        if os.fork() == 0:
            listener.close()
            try:
                _keeper(conn, request, fds)
            finally:
                os._exit(0)
        conn.close()
        for fd in fds:
            os.close(fd)


def _keeper(conn, request, fds):
    """The kernel's parent: isolate, fork the kernel, then stand between it and the launcher."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sandbox._libc.prctl(sandbox.PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    try:
        with open(request["config"]) as f:
            config = json.load(f)
        scratch = config["scratch"]
        connection_copy = sandbox.copy_connection_file(request["connection_file"], scratch)
        report = sandbox.isolate(config)
    except BaseException as e:
        os.write(fds[2], f"vfiolab sandbox: cannot isolate the kernel: {type(e).__name__}: {e}\n"
                 .encode())
        conn.send(b"x127")
        return
    child = os.fork()
    if child == 0:
        conn.close()
        _kernel(report, scratch, connection_copy, fds, request.get("env", {}))
    for fd in fds:
        os.close(fd)
    pidfd = os.pidfd_open(child)
    while True:
        ready, _, _ = select.select([conn, pidfd], [], [])
        if pidfd in ready:
            conn.send(b"x%d" % sandbox.wait_exit_code(child))
            return
        try:
            order = conn.recv(16)
        except OSError:
            order = b""
        if not order:  # the launcher was killed: so is the kernel
            os.kill(child, signal.SIGKILL)
            sandbox.wait_exit_code(child)
            return
        for code in order:
            os.kill(child, signal.SIGINT if code == ord("i") else signal.SIGTERM)


def _kernel(report, scratch, connection_file, fds, env):
    """The forked kernel: the launcher's stdio, the sandbox's user and folder, then ipykernel."""
    try:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        sandbox.become_kernel(report, scratch)
        os.environ.clear()
        os.environ.update(sandbox.kernel_env(scratch, env))
        import tempfile
        tempfile.tempdir = None  # TMPDIR is the scratch folder now
        # As ipykernel_launcher leaves it: no factory folder first (IPython adds the cwd back).
        if sys.path and sys.path[0] in ("", os.path.realpath(os.getcwd())):
            del sys.path[0]
        sys.argv = [sys.executable, "-m", "ipykernel_launcher", "-f", connection_file]
        from ipykernel import kernelapp
        app = kernelapp.IPKernelApp.instance()  # what launch_new_instance does, in three steps
        app.initialize(["-f", connection_file])
        if "ipywidgets" in sys.modules:  # imported before there was a kernel to register with
            sys.modules["ipywidgets"].register_comm_target()
        app.start()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 127
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def launcher_argv(socket_path, config_path):
    """The kernel command (kernel.json's argv) that asks the factory at socket_path for a kernel."""
    launcher = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernel_launcher.py")
    return [sys.executable, "-I", "-S", launcher, socket_path, config_path, "{connection_file}"]


class Factory:
    """The grader's handle on a running factory (start it from the main thread: its parent-death
    signal follows the thread that started it)."""

    def __init__(self, work, preload=()):
        self.socket_path = os.path.join(work, "kernels.sock")
        self.log_path = os.path.join(work, "factory.log")
        log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-c", "import sys; from vfiolab.grading.zygote import serve; "
             "sys.exit(serve(sys.argv[1], sys.argv[2:]))", self.socket_path, *preload],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, cwd=work,
            start_new_session=True, text=True)
        log.close()
        line = self.process.stdout.readline()
        self.ready = line.startswith("{")
        self.preload_failed = json.loads(line)["preload_failed"] if self.ready else []

    def why_not(self):
        with open(self.log_path) as f:
            return f.read().strip()[-400:] or f"the factory exited with {self.process.poll()}"

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.process.stdout.close()
