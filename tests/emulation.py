"""Is this test running under user-mode emulation: qemu-user through binfmt_misc, as in the arm64
workshop image on an x86 host? Tests that measure time scale their limits by scaled(), and the
sanitizer harnesses run without LeakSanitizer there (it stops the process's threads with ptrace,
which qemu-user does not emulate), each saying so.

qemu-user reports the guest's machine in uname but leaves /proc/cpuinfo the host's: an "aarch64"
whose CPUs have an x86 vendor_id and flags, and no "CPU implementer", is emulated.
"""
import os

# Measured in the arm64 image on this project's x86 hosts: lab Run All 8-10 times amd64's.
SLOWDOWN = 10


def emulated(machine=None, cpuinfo="/proc/cpuinfo"):
    """Why this process runs emulated (the guest and the host CPU), or None when it runs natively."""
    machine = machine or os.uname().machine
    try:
        text = open(cpuinfo).read()
    except OSError:
        return None
    fields = {line.split(":", 1)[0].strip() for line in text.splitlines() if ":" in line}
    native = {"aarch64": "CPU implementer", "x86_64": "vendor_id"}
    if machine not in native or native[machine] in fields:
        return None
    values = dict(reversed([[part.strip() for part in line.split(":", 1)]
                            for line in text.splitlines() if ":" in line]))   # the first CPU's
    host = next((values[k] for k in ("model name", "vendor_id", "CPU implementer") if k in values),
                "another CPU")
    return f"{machine} emulated by qemu-user on {host}"


def scaled(seconds):
    """A time limit for this machine: `seconds` natively, SLOWDOWN times it under emulation."""
    return seconds * SLOWDOWN if emulated() else seconds


def limit_note(seconds):
    """The words a timing assertion adds to its message: what limit applied, and why."""
    why = emulated()
    return f"limit {scaled(seconds)} s" + (f" ({SLOWDOWN} x {seconds} s: {why})" if why else "")
