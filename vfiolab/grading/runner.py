"""Run one submitted notebook headless and observe what it did: `python -m vfiolab.grading.runner
JOB.json` (the grader starts one such process per notebook).

The notebook runs cell by cell in a sandboxed kernel (sandbox.py) inside a scratch folder that holds
only the notebook and the lab's released files; each cell has a time limit (then it is interrupted
and the run goes on) and so does the whole notebook (then the kernel is killed). The collector cell
(collector.py) then observes the state. The result (a JSON file) carries observations, never
judgements: this process never loads hidden checks.
"""
import copy
import json
import os
import re
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


def _kernel_spec(private, config_path, factory_socket=None):
    """A kernel forked by the grader's kernel factory (zygote.py) when there is one, else a
    sandbox process that execs a fresh ipykernel: the same sandbox either way."""
    folder = os.path.join(private, "kernels", KERNEL_NAME)
    os.makedirs(folder)
    if factory_socket:
        from .zygote import launcher_argv
        argv = launcher_argv(factory_socket, config_path)
    else:
        argv = [sys.executable, "-m", "vfiolab.grading.sandbox", config_path, "--",
                sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    with open(os.path.join(folder, "kernel.json"), "w") as f:
        json.dump({"argv": argv, "display_name": "vfiolab grader", "language": "python",
                   "interrupt_mode": "signal"}, f)


class Watchdog:
    """Kills the kernel when a deadline passes: the one limit a notebook cannot catch or ignore.
    Two deadlines: the notebook's, and the running cell's (a cell still running one per-cell
    limit after it was interrupted ignores interrupts, and waiting on would lose the rest)."""

    def __init__(self, client):
        self.client, self.fired, self._timer = client, None, None

    def arm(self, seconds, why):
        self.disarm()
        self._timer = threading.Timer(max(seconds, 0.1), self._fire, (why,))
        self._timer.daemon = True
        self._timer.start()

    def disarm(self):
        if self._timer:
            self._timer.cancel()

    def _fire(self, why):
        self.fired = why
        process = getattr(getattr(self.client.km, "provisioner", None), "process", None)
        if process is not None:
            process.kill()


def _scrub(value, folders):
    """value with the grader's scratch folders taken out of every string (learners see these)."""
    if isinstance(value, str):
        for folder in folders:
            value = value.replace(folder + os.sep, "").replace(folder, ".")
        return value
    if isinstance(value, list):
        return [_scrub(v, folders) for v in value]
    if isinstance(value, dict):
        return {k: _scrub(v, folders) for k, v in value.items()}
    return value


_IN_CELL = re.compile(r"cell In\[(\d+)\]")


def _cells_by_count(nb):
    """{execution count: the notebook's cell number} of an executed notebook."""
    return {c.execution_count: i + 1 for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and c.get("execution_count")}


def _execute(job, nb, time_budget):
    """Run nb's code cells in a fresh sandboxed kernel, then the collector; the result dict.
    A run that stops early (kernel death, out of time) says where: "stopped_index"."""
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    private = tempfile.mkdtemp(prefix="vfiolab-runner-")  # 0700: the kernel never sees it
    base, scratch = _make_scratch(job)
    config_path, report_path = os.path.join(private, "sandbox.json"), os.path.join(private, "report.json")
    with open(config_path, "w") as f:
        json.dump({"scratch": scratch, "hide": job["hide"] + [private], "report": report_path,
                   "keep": job.get("keep", [])}, f)
    _kernel_spec(private, config_path, job.get("factory"))
    os.environ.update(JUPYTER_PATH=private, JUPYTER_RUNTIME_DIR=os.path.join(private, "runtime"),
                      JUPYTER_PLATFORM_DIRS="1")
    result = {"status": "ok", "notes": [], "observations": {}, "tampering": [], "isolation": {}}
    cell_timeout = job["cell_timeout"]
    client = NotebookClient(nb, timeout=cell_timeout, kernel_name=KERNEL_NAME,
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
            deadline = time.monotonic() + time_budget
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                # nbclient interrupts the cell after cell_timeout and again after each further
                # cell_timeout: one more than the first and it is killed.
                left = deadline - time.monotonic()
                if left < 2 * cell_timeout + 1:
                    watchdog.arm(left, "notebook")
                else:
                    watchdog.arm(2 * cell_timeout + 1, "cell")
                try:
                    client.execute_cell(cell, index)
                except DeadKernelError:
                    result["stopped_index"] = index
                    if watchdog.fired == "notebook":
                        result.update(status="timeout", notes=[
                            f"the notebook ran out of time ({job['notebook_timeout']:g} s) in cell "
                            f"{index + 1}"])
                    elif watchdog.fired == "cell":
                        result.update(status="timeout", notes=[
                            f"cell {index + 1} ran out of time: it went on running after it was "
                            f"interrupted at the per-cell limit ({cell_timeout:g} s), so its "
                            "kernel was stopped"])
                    else:
                        result.update(status="kernel-died", notes=[
                            f"the kernel died while running cell {index + 1} (os._exit, a crash "
                            "or no memory left)"])
                    break
                for output in cell.get("outputs", []):
                    if output.get("output_type") == "error":
                        result["notes"].append(f"cell {index + 1} raised {output.get('ename')}"
                                               + (" (interrupted: over the per-cell time limit)"
                                                  if output.get("ename") == "KeyboardInterrupt" else ""))
            else:
                phases["cells"] = round(time.monotonic() - start - phases["kernel start"], 3)
                watchdog.arm(cell_timeout + 15, "collector")
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
                    cells = _cells_by_count(nb)
                    result["observations"] = _scrub(snapshot[0], [scratch, base])
                    result["tampering"] = [
                        _IN_CELL.sub(lambda m: f"cell {cells.get(int(m.group(1)), '?')}", p)
                        for p in _scrub(snapshot[1], [scratch, base])]
                    if snapshot[1]:
                        result["status"] = "tampered"
            watchdog.disarm()
            shutdown_from = time.monotonic()
        phases["kernel stop"] = round(time.monotonic() - shutdown_from, 3)
    except Exception as e:  # a kernel that cannot start: the grader's problem, said plainly
        result.update(status="error", notes=["the grader could not run the notebook"],
                      detail=[f"{type(e).__name__}: {e}"])  # for the instructor: may name paths
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


def run_notebook(job, nb):
    """Execute nb as the job says; returns the result dict (see module docstring).

    When the run stops in cell N (the kernel died, or a cell or the notebook ran out of time),
    what the cells before N did still counts: they run again in a fresh kernel, without cell N
    and what follows, and that state is observed; the grader then judges the exercises whose
    cells all come before N ("stopped_cell"), and says the others were not graded."""
    pristine = nbformat.from_dict(copy.deepcopy(nb))
    started = time.monotonic()
    for attempt in range(3):
        # A kernel that dies before it answers ran no learner code: the grader's own failure
        # (seen 1 in 100 on a loaded machine: its TCP ports were taken in between), so try again.
        result = _execute(job, nb, job["notebook_timeout"])
        if result["status"] != "error" or "kernel start" in result["phases"]:
            break
        failed = result.get("detail", [])
        nb = nbformat.from_dict(copy.deepcopy(pristine))
    if attempt:
        result.setdefault("detail", []).append(f"the kernel failed to start {attempt} time(s) "
                                               f"before this run: {'; '.join(failed)}")
    index = result.pop("stopped_index", None)
    if index is None:
        return result
    result["stopped_cell"] = index + 1
    before = [c for c in pristine.cells[:index]]
    if not any(c.cell_type == "code" for c in before):
        return result
    pristine.cells = before
    # These cells fitted the notebook's limit once; a slower second run is not the learner's fault.
    again = _execute(job, pristine, 1.25 * job["notebook_timeout"])
    result["phases"]["again"] = again["seconds"]
    result["seconds"] = round(time.monotonic() - started, 3)
    if again["status"] in ("ok", "tampered"):
        result.update(observations=again["observations"], tampering=again["tampering"],
                      partial=True)
        if again["status"] == "tampered":
            result["status"] = "tampered"
    else:
        result["notes"].append(f"the cells before cell {index + 1} could not be run again to "
                               f"observe them: {'; '.join(again['notes'])}")
    return result


def main(argv):
    began = time.time()
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
    result["runner"] = {"began": began, "ended": time.time()}  # the grader times our start and exit
    tmp = job["result"] + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, job["result"])


if __name__ == "__main__":
    main(sys.argv[1:])
