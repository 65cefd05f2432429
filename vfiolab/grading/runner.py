"""Run one submitted notebook headless and observe what it did: `python -m vfiolab.grading.runner
JOB.json` (the grader starts one such process per notebook).

The notebook runs cell by cell in a sandboxed kernel (sandbox.py) inside a scratch folder that holds
only the notebook and the lab's released files; each cell has a time limit (then it is interrupted
and the run goes on) and so does the whole notebook (then the kernel is killed). The collector cell
(collector.py) then observes the state. The result (a JSON file) carries observations, never
judgements: this process never loads hidden checks.
"""
import json
import os
import secrets
import shutil
import sys
import tempfile
import threading
import time

import nbformat

from .collector import collector_source, find_snapshot

KERNEL_NAME = "vfiolab-grader"


def read_notebook(path):
    """The submission as a notebook, or raise ValueError saying why it is not one."""
    try:
        with open(path, encoding="utf-8") as f:
            nb = nbformat.read(f, as_version=4)
        try:
            nbformat.validate(nb)
        except nbformat.ValidationError:
            _repair(nb)  # editors mix 4.4 and 4.5 (cell ids): accept what nbformat can mend
            nbformat.validate(nb)
    except (UnicodeDecodeError, ValueError, KeyError, AttributeError, TypeError,
            nbformat.ValidationError, OSError) as e:
        raise ValueError(f"not a readable Jupyter notebook ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:160] if str(e) else ''})") from None
    language = nb.metadata.get("kernelspec", {}).get("language", "python")
    if language != "python":
        raise ValueError(f"a {language} notebook, not a Python one")
    return nb


def _repair(nb):
    import uuid
    nb.nbformat_minor = max(nb.get("nbformat_minor", 0), 5)
    seen = set()
    for cell in nb.cells:
        if not cell.get("id") or cell["id"] in seen:
            cell["id"] = uuid.uuid4().hex[:8]
        seen.add(cell["id"])


def _make_scratch(job):
    """A world-traversable folder holding only the submission and the lab's released files."""
    base = tempfile.mkdtemp(prefix="vfiolab-scratch-")
    os.chmod(base, 0o711)
    scratch = os.path.join(base, "work")
    shutil.copytree(job["lab_files"], scratch)
    shutil.copy(job["notebook"], os.path.join(scratch, os.path.basename(job["notebook"])))
    os.chmod(scratch, 0o755)
    return base, scratch


def _kernel_spec(private, config_path):
    folder = os.path.join(private, "kernels", KERNEL_NAME)
    os.makedirs(folder)
    with open(os.path.join(folder, "kernel.json"), "w") as f:
        json.dump({"argv": [sys.executable, "-m", "vfiolab.grading.sandbox", config_path, "--",
                            sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                   "display_name": "vfiolab grader", "language": "python",
                   "interrupt_mode": "signal"}, f)


class Watchdog:
    """Kills the kernel when a deadline passes: the one limit a notebook cannot catch or ignore."""

    def __init__(self, client):
        self.client, self.fired, self._timer = client, False, None

    def arm(self, seconds):
        self.disarm()
        self._timer = threading.Timer(max(seconds, 0.1), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def disarm(self):
        if self._timer:
            self._timer.cancel()

    def _fire(self):
        self.fired = True
        process = getattr(getattr(self.client.km, "provisioner", None), "process", None)
        if process is not None:
            process.kill()


def run_notebook(job, nb):
    """Execute nb as the job says; returns the result dict (see module docstring)."""
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    private = tempfile.mkdtemp(prefix="vfiolab-runner-")  # 0700: the kernel never sees it
    base, scratch = _make_scratch(job)
    config_path, report_path = os.path.join(private, "sandbox.json"), os.path.join(private, "report.json")
    with open(config_path, "w") as f:
        json.dump({"scratch": scratch, "hide": job["hide"] + [private], "report": report_path,
                   "keep": job.get("keep", [])}, f)
    _kernel_spec(private, config_path)
    os.environ.update(JUPYTER_PATH=private, JUPYTER_RUNTIME_DIR=os.path.join(private, "runtime"),
                      JUPYTER_PLATFORM_DIRS="1")
    result = {"status": "ok", "notes": [], "observations": {}, "tampering": [], "isolation": {}}
    client = NotebookClient(nb, timeout=job["cell_timeout"], kernel_name=KERNEL_NAME,
                            allow_errors=True, interrupt_on_timeout=True, startup_timeout=60,
                            iopub_timeout=4, record_timing=False, shutdown_kernel="immediate",
                            resources={"metadata": {"path": scratch}})
    watchdog = Watchdog(client)
    nonce = secrets.token_hex(16)
    start = time.monotonic()
    phases = result["phases"] = {}
    try:
        with client.setup_kernel():
            phases["kernel start"] = round(time.monotonic() - start, 3)
            watchdog.arm(job["notebook_timeout"])
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                try:
                    client.execute_cell(cell, index)
                except DeadKernelError:
                    if watchdog.fired:
                        result.update(status="timeout", notes=[
                            f"the notebook ran out of time ({job['notebook_timeout']:g} s) in cell "
                            f"{index + 1}, which did not stop when interrupted"])
                    else:
                        result.update(status="kernel-died", notes=[
                            f"the kernel died while running cell {index + 1} (os._exit, a crash or "
                            "no memory left): nothing could be observed"])
                    break
                for output in cell.get("outputs", []):
                    if output.get("output_type") == "error":
                        result["notes"].append(f"cell {index + 1} raised {output.get('ename')}"
                                               + (" (interrupted: over the per-cell time limit)"
                                                  if output.get("ename") == "KeyboardInterrupt" else ""))
            else:
                phases["cells"] = round(time.monotonic() - start - phases["kernel start"], 3)
                watchdog.arm(job["cell_timeout"] + 15)
                collector = nbformat.v4.new_code_cell(collector_source(
                    job["checks_source"], nonce, job["prints"], job["roots"]))
                nb.cells.append(collector)
                try:
                    client.execute_cell(collector, len(nb.cells) - 1)
                    snapshot = find_snapshot(collector, nonce)
                except DeadKernelError:
                    snapshot = None
                nb.cells.pop()
                phases["observe"] = round(time.monotonic() - start - sum(phases.values()), 3)
                if snapshot is None:
                    result.update(status="no-observation", notes=result["notes"] + [
                        "the notebook's state could not be observed after its last cell (the "
                        "kernel died or stopped answering while the checks' observers ran)"])
                else:
                    result["observations"], result["tampering"] = snapshot
                    if snapshot[1]:
                        result["status"] = "tampered"
            watchdog.disarm()
            shutdown_from = time.monotonic()
        phases["kernel stop"] = round(time.monotonic() - shutdown_from, 3)
    except Exception as e:  # a kernel that cannot start: the grader's problem, said plainly
        result.update(status="error", notes=[f"the grader could not run the notebook: "
                                             f"{type(e).__name__}: {e}"])
    finally:
        watchdog.disarm()
        result["seconds"] = round(time.monotonic() - start, 3)
        try:
            result["isolation"] = json.load(open(report_path))
        except (OSError, ValueError):
            pass
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(private, ignore_errors=True)
    return result


def main(argv):
    with open(argv[0]) as f:
        job = json.load(f)
    with open(job["prints_path"]) as f:
        job["prints"] = json.load(f)
    try:
        nb = read_notebook(job["notebook"])
    except ValueError as e:
        result = {"status": "not-a-notebook", "notes": [str(e)], "observations": {}, "tampering": []}
    else:
        result = run_notebook(job, nb)
        if job.get("executed"):
            nbformat.write(nb, job["executed"])
    tmp = job["result"] + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, job["result"])


if __name__ == "__main__":
    main(sys.argv[1:])
