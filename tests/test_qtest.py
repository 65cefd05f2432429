"""vfiolab.qtest: QEMU's qtest protocol from Python; QEMU never outlives its client."""
import gc
import os

import pytest

from vfiolab.qtest import QEMUNotFound, QTest, QTestError, find_qemu

QEMU = "qemu-system-arm"
needs_qemu = pytest.mark.skipif(not find_qemu(QEMU), reason=f"{QEMU} is not installed: the "
                                "qtest client cannot be exercised (sudo apt install "
                                "qemu-system-arm)")


def test_missing_qemu_is_a_clear_error():
    with pytest.raises(QEMUNotFound, match="not installed"):
        QTest("qemu-system-nonesuch")


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:       # a zombie is gone for our purposes
        return f.read().split()[2] != "Z"


@needs_qemu
def test_memory_and_registers():
    with QTest(QEMU, ["-M", "xilinx-zynq-a9"]) as q:
        q.writel(0x1000, 0xDEADBEEF)
        assert q.readl(0x1000) == 0xDEADBEEF
        q.writeq(0x1008, 0x0123456789ABCDEF)
        assert q.readq(0x1008) == 0x0123456789ABCDEF
        data = os.urandom(5000)
        q.write(0x2000, data)
        assert q.read(0x2000, 5000) == data
        q.memset(0x2000, 16, 0x5A)
        assert q.read(0x2000, 16) == b"\x5a" * 16
        assert q.readl(0xF8003FF0) == 0x0D          # the PL330's PrimeCell ID
        with pytest.raises(QTestError):
            q.command("no_such_command")
        pid = q._proc.pid
    assert not alive(pid)


@needs_qemu
def test_a_dropped_client_takes_qemu_with_it():
    q = QTest(QEMU, ["-M", "xilinx-zynq-a9"])
    pid = q._proc.pid
    assert alive(pid)
    del q
    gc.collect()
    assert not alive(pid)


@needs_qemu
def test_qemu_exiting_is_reported():
    q = QTest(QEMU, ["-M", "xilinx-zynq-a9"])
    q._proc.kill()
    q._proc.wait()
    with pytest.raises(QTestError, match="exited"):
        q.readl(0)
    q.close()
