"""A small client for QEMU's qtest protocol: drive QEMU's own device models from Python.

    with QTest("qemu-system-arm", ["-M", "xilinx-zynq-a9"]) as q:
        q.writel(0xF8003D08, value)
        q.readl(0xF8003000)
        q.write(0x1000, b"...");  q.read(0x1000, 16)

QEMU runs with `-qtest stdio -display none -nodefaults -S` (the CPUs never start: only the
script touches memory and devices). Each command is a line; each answer starts with OK (or ERR).
Interrupt notifications (IRQ raise/lower, after `irq_intercept_in`) are kept in .irq_events.
QEMU is killed when the client closes or is garbage collected, so none is ever left behind.
"""
import base64
import os
import shutil
import subprocess
import weakref

__all__ = ["QTest", "QTestError", "QEMUNotFound", "find_qemu"]


class QTestError(RuntimeError):
    """QEMU answered ERR, or stopped answering."""


class QEMUNotFound(QTestError):
    pass


def find_qemu(binary):
    """Path of a QEMU binary, or None."""
    return shutil.which(binary)


def _kill(proc):
    if proc.poll() is None:
        proc.kill()
        proc.wait()


class QTest:
    def __init__(self, binary, args=(), timeout=60.0):
        path = find_qemu(binary)
        if not path:
            raise QEMUNotFound(f"{binary} is not installed (on Debian or Ubuntu: "
                               f"sudo apt install qemu-system-arm qemu-system-misc)")
        cmd = [path, *args, "-qtest", "stdio", "-qtest-log", os.devnull, "-display", "none",
               "-nodefaults", "-S"]
        self.timeout = timeout
        self.irq_events = []
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE)
        # If the client is dropped without close(), QEMU still goes.
        self._finalizer = weakref.finalize(self, _kill, self._proc)
        self._out = self._proc.stdout

    # ---- protocol ----
    def command(self, line):
        """Send one command; return the words of its OK answer (after OK)."""
        if self._proc.poll() is not None:
            raise QTestError(f"QEMU has exited ({self._proc.returncode}): "
                             + self._stderr_tail())
        try:
            self._proc.stdin.write(line.encode() + b"\n")
            self._proc.stdin.flush()
        except BrokenPipeError:
            raise QTestError("QEMU closed its qtest connection: " + self._stderr_tail()) from None
        while True:
            answer = self._out.readline()
            if not answer:
                raise QTestError(f"QEMU exited while running {line!r}: " + self._stderr_tail())
            words = answer.decode().split()
            if words[:1] == ["IRQ"]:
                self.irq_events.append((words[1], int(words[2])))
                continue
            if words[:1] == ["OK"]:
                return words[1:]
            raise QTestError(f"{line!r}: {answer.decode().strip()}")

    def _stderr_tail(self):
        if self._proc.poll() is None:
            return "(still running)"
        return self._proc.stderr.read().decode(errors="replace")[-500:].strip()

    # ---- memory and registers ----
    def readl(self, addr):
        return int(self.command(f"readl 0x{addr:x}")[0], 16)

    def writel(self, addr, value):
        self.command(f"writel 0x{addr:x} 0x{value & 0xFFFFFFFF:x}")

    def readq(self, addr):
        return int(self.command(f"readq 0x{addr:x}")[0], 16)

    def writeq(self, addr, value):
        self.command(f"writeq 0x{addr:x} 0x{value & 0xFFFFFFFFFFFFFFFF:x}")

    def read(self, addr, n):
        if n == 0:
            return b""
        return base64.b64decode(self.command(f"b64read 0x{addr:x} 0x{n:x}")[0])

    def write(self, addr, data):
        data = bytes(data)
        if data:
            self.command(f"b64write 0x{addr:x} 0x{len(data):x} {base64.b64encode(data).decode()}")

    def memset(self, addr, n, value):
        self.command(f"memset 0x{addr:x} 0x{n:x} 0x{value & 0xFF:x}")

    def irq_intercept_in(self, qom_path):
        self.command(f"irq_intercept_in {qom_path}")

    def set_irq_in(self, qom_path, name, line, level):
        self.command(f"set_irq_in {qom_path} {name} {line} {level}")

    # ---- lifetime ----
    def close(self):
        """Stop QEMU (SIGTERM); kill it if it has not gone within 5 seconds."""
        proc = self._proc
        if proc.poll() is None:
            proc.terminate()            # QEMU shuts down cleanly on SIGTERM
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        try:
            proc.stdin.close()
        except OSError:
            pass
        self._finalizer()
        for stream in (proc.stdout, proc.stderr):
            stream.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
