"""Processes a browser test started, so that every one of them can be shown to have ended.

A process is named by (pid, start time): a pid reused by a later process is not mistaken for it.
Kernels run in sessions of their own (jupyter_client starts them so), and an orphan is re-parented
away from us, so a process is recorded while it is still our descendant and checked by its pid.
"""
import os
import signal
import time


def _stat(pid):
    """(ppid, start time, state, name) of a live pid, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    name = text[text.index("(") + 1:text.rindex(")")]
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), int(fields[19]), fields[0], name


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def descendants(root):
    """{(pid, start): command line} of every live descendant of `root` (not root itself)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st:
                children.setdefault(st[0], []).append((int(entry), st[1]))
    found, todo = {}, [root]
    while todo:
        for pid, start in children.get(todo.pop(), []):
            found[(pid, start)] = cmdline(pid)
            todo.append(pid)
    return found


def alive(proc):
    """Whether (pid, start) still runs (a zombie counts as ended)."""
    pid, start = proc
    st = _stat(pid)
    return st is not None and st[1] == start and st[2] not in ("Z", "X")


def left_running(procs, timeout=20):
    """Those of `procs` still running after up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        left = {p: c for p, c in procs.items() if alive(p)}
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.1)


def kill(procs):
    """SIGKILL whichever of `procs` still run."""
    for proc in procs:
        if alive(proc):
            try:
                os.kill(proc[0], signal.SIGKILL)
            except ProcessLookupError:
                pass


def describe(procs):
    return "; ".join(f"pid {pid}: {cmd[:120]}" for (pid, _), cmd in sorted(procs.items()))


def identity(pid):
    """(pid, start) of a live pid, or (pid, None)."""
    st = _stat(pid)
    return pid, st[1] if st else None
