"""A qemu board lives exactly as long as the notebook kernel that opened it.

A real Jupyter kernel (ipykernel, through jupyter_client) opens a board; restarting the kernel
(which kills it, as JupyterLab's "Restart Kernel" does) or shutting it down must leave no QEMU.
"""
import os
import shutil
import time

import pytest

from processes import gone

pytestmark = pytest.mark.skipif(
    not shutil.which("qemu-system-aarch64"),
    reason="qemu-system-aarch64 is not installed (sudo apt install qemu-system-arm); "
           "the qemu board's tests need it")

jupyter_client = pytest.importorskip("jupyter_client")


def run_cell(client, code, timeout=120):
    """Execute code in the kernel; its stdout."""
    msg_id = client.execute(code)
    out = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = client.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            raise AssertionError("\n".join(msg["content"]["traceback"]))
        elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return "".join(out)
    raise TimeoutError(code)


OPEN = "import vfiolab\nboard = vfiolab.open_board('qemu', quiet=True)\nprint(board.qemu_pid)"


@pytest.mark.parametrize("how", ["restart", "shutdown"])
def test_no_qemu_outlives_its_notebook_kernel(how):
    km = jupyter_client.KernelManager(kernel_name="python3")
    km.start_kernel()
    client = km.client()
    client.start_channels()
    qemu_pid = None
    try:
        client.wait_for_ready(timeout=60)
        qemu_pid = int(run_cell(client, OPEN).split()[-1])
        os.kill(qemu_pid, 0)
        if how == "restart":
            km.restart_kernel(now=True)     # JupyterLab's "Restart Kernel": the old one is killed
        else:
            km.shutdown_kernel(now=False)   # a clean shutdown: atexit closes the board
        assert gone(qemu_pid), f"QEMU (pid {qemu_pid}) outlived the notebook kernel ({how})"
    finally:
        client.stop_channels()
        if km.is_alive():
            km.shutdown_kernel(now=True)
        if qemu_pid and not gone(qemu_pid, 0):
            os.kill(qemu_pid, 9)
