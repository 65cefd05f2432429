"""Whether a process has ended, for the tests that check no QEMU outlives its owner."""
import time


def running(pid):
    """True while pid is a live process. A zombie (ended, not yet reaped by a parent that never
    waits, e.g. a container's PID 1) counts as ended."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def gone(pid, timeout=30):
    """Wait up to `timeout` seconds for pid to end; True if it did. (Generous: a loaded 2-core CI
    machine can take seconds to deliver PDEATHSIG and tear QEMU down.)"""
    deadline = time.monotonic() + timeout
    while running(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True
