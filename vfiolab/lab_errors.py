"""One actionable line, not a traceback through the board's internals, when a lab cell's board call fails.

A learner who runs a cell twice or out of order meets the kernel's answer to a sysfs write or an
ioctl the board's state no longer allows (ENODEV from an unbind, EBUSY, ...). On the sim that
answer comes from deep inside vfiolab/board/sim/, and IPython would show every frame of it. The
error is the kernel's and stays an error (the cell fails, a grader sees it); only its display
changes: the errno and the path, the line of the cell that made the call, and how to start over.
A board this machine cannot run (BoardUnavailable: a tool not installed, packages that cannot be
fetched) shows the same way, with what is missing and where to get it instead of starting over.
"""
import os
import traceback

from .board import BoardUnavailable

BOARD_CODE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "board") + os.sep
PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
START_OVER = ("The board is not in the state this cell expects (a cell run twice or out of order?): "
              "Run > Restart Kernel and Run up to Selected Cell starts over")
BAD_ARGUMENT = "The board refused this call's arguments: check their types and values against its docstring"
UNAVAILABLE = ("`vfiolab doctor {kind}` checks everything this board needs here; on Debian or Ubuntu "
               "`./bootstrap test` installs it all")
SHOWN = (OSError, TypeError, ValueError, LookupError, BoardUnavailable)


def install(shell=None):
    """Show board errors of this IPython shell (the notebook's) in one line; no-op outside IPython."""
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return
        shell = get_ipython()
    if shell is not None:
        shell.set_custom_exc(SHOWN, _show)


def one_line(value, tb):
    """The line a board error shows as, or None when the error did not come from a board."""
    frames = traceback.extract_tb(tb)
    if not frames or not frames[-1].filename.startswith(BOARD_CODE):
        return None          # raised elsewhere (the learner's own code, a library): the usual traceback
    caller = next((f for f in reversed(frames) if not f.filename.startswith(PACKAGE)), None)
    where = f" (in `{caller.line.strip()}`)" if caller is not None and caller.line else ""
    if isinstance(value, BoardUnavailable):
        hint = UNAVAILABLE.format(kind=value.kind)
    else:
        hint = START_OVER if isinstance(value, OSError) else BAD_ARGUMENT
    return f"{type(value).__name__}: {value}{where}. {hint}"


def _show(shell, etype, value, tb, tb_offset=None):
    line = one_line(value, tb)
    if line is None:
        stb = shell.InteractiveTB.structured_traceback(etype, value, tb, tb_offset=tb_offset)
    else:
        stb = [f"\x1b[31m{line}\x1b[0m"]
    # IPython's run_code drops what a custom handler returns: show it as showtraceback would
    # (in a notebook kernel that sends the error output, ename and evalue included).
    shell._showtraceback(etype, value, stb)
    return stb
