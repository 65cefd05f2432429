"""The kernel factory (zygote.py), driven as the runner drives it: jupyter_client starts the launcher
as the kernel's command. The kernel it gets is forked with vfiolab already imported, sandboxed,
interruptible, and it dies when its launcher is killed (nbclient's shutdown, the watchdog)."""
import json
import os
import time

import pytest

from vfiolab.grading.zygote import Factory, launcher_argv

from processes import gone


def descendants(pid):
    kids = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                stat = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if stat[0] not in ("Z", "X"):
                kids.setdefault(int(stat[1]), []).append(int(p))
    found, todo = [], list(kids.get(pid, []))
    while todo:
        p = todo.pop()
        found.append(p)
        todo += kids.get(p, [])
    return found


def run(kc, code, timeout=60):
    out = []
    reply = kc.execute_interactive(code, timeout=timeout, output_hook=lambda m: out.append(
        m["content"].get("text", "")) if m["msg_type"] == "stream" else None)
    return reply["content"], "".join(out)


@pytest.fixture
def kernel(tmp_path):
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager
    work = tmp_path / "work"
    work.mkdir(mode=0o700)
    (work / "secret.txt").write_text("the instructor's")
    factory = Factory(str(work), ["vfiolab.hw.pl330"])
    assert factory.ready, factory.why_not()
    scratch = tmp_path / "base" / "work"
    scratch.mkdir(parents=True)
    os.chmod(scratch.parent, 0o711)
    os.chmod(scratch, 0o755)
    config, report = tmp_path / "sandbox.json", tmp_path / "report.json"
    config.write_text(json.dumps({"scratch": str(scratch), "hide": [str(work)],
                                  "report": str(report)}))
    spec = tmp_path / "kernels" / "factory"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": launcher_argv(factory.socket_path, str(config)), "display_name": "factory",
        "language": "python", "interrupt_mode": "signal"}))
    km = KernelManager(kernel_name="factory",
                       kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")]))
    km.start_kernel(cwd=str(scratch))
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    try:
        yield km, kc, factory, work, json.loads(report.read_text())
    finally:
        kc.stop_channels()
        if km.has_kernel:
            km.shutdown_kernel(now=True)
        factory.stop()


def test_a_factory_kernel_is_preloaded_sandboxed_interruptible_and_dies_with_its_launcher(kernel):
    km, kc, factory, work, report = kernel
    content, text = run(kc, "import os, sys\n"
                            "print(sorted(m for m in sys.modules if m.startswith('vfiolab.hw')))\n"
                            f"print(os.path.exists({str(work / 'secret.txt')!r}), os.getuid())")
    assert content["status"] == "ok", content
    assert "'vfiolab.hw.pl330'" in text      # imported by the factory, not by this kernel

    # What every lab's kernel imported for itself before: the sim board, the widgets' library
    # (whose comm targets must still be registered: it was imported before the kernel existed);
    # and the kernel knows it is graded (the scoreboard then leaves the judging to the grader).
    content, more = run(kc, "import sys, os, comm\n"
                            "print('vfiolab.board.sim' in sys.modules, 'ipywidgets' in sys.modules)\n"
                            "print(sorted(comm.get_comm_manager().targets))\n"
                            "print(os.environ.get('VFIOLAB_GRADED_KERNEL'))")
    assert content["status"] == "ok", content
    assert more.splitlines() == ["True True", "['jupyter.widget', 'jupyter.widget.control']", "1"]
    if report["isolation"] == "none":
        pytest.skip("no Linux namespaces on this machine: the grader warns the instructor instead")
    assert "False " in text                    # the grader's work folder is out of sight
    if os.geteuid() == 0:
        assert "False 65534\n" in text         # nobody

    kc.execute("import time\ntime.sleep(60)")
    time.sleep(1)
    km.interrupt_kernel()
    reply = kc.get_shell_msg(timeout=20)
    assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"

    kernels = descendants(factory.process.pid)
    assert kernels                             # the keeper and the kernel it forked
    km.provisioner.process.kill()              # what nbclient's shutdown and the watchdog do
    assert all(gone(pid, timeout=20) for pid in kernels)
