"""Lab 01 cell by cell, each run twice in a row on the sim board: the second run says what the first
did (exercise cells exactly), and a board call that fails shows one line, not the sim's traceback."""
import re

import nbformat

from lab_runs import lab_copy, run_twice

# Demo cells that move the board one step: run again, they find the step done and say so instead.
STEP_DONE = {"bind-step2": "nothing to unbind"}


def shown(cell):
    """What a cell showed, with what differs between any two runs (widget ids, addresses) taken out."""
    parts = []
    for o in cell.outputs:
        if o.output_type == "error":
            parts.append(f"ERROR {o.ename}: {o.evalue}")
        else:
            parts.append(o.get("text", "") + o.get("data", {}).get("text/plain", ""))
    return re.sub(r"model_id='[^']*'| at 0x[0-9a-f]+", "", "".join(parts))


def test_every_cell_run_twice_says_what_it_said_once(tmp_path):
    folder, nb = lab_copy("01-platform-bus", tmp_path)
    # After Run All, out of order: unbind a device its driver does not hold (the kernel's ENODEV,
    # in one line); a bad argument to a board call (one line too); an error of the cell's own
    # (the usual traceback).
    probe, bad, own = (nbformat.v4.new_code_cell(code) for code in (
        'board.sysfs_write("/sys/bus/amba/drivers/dma-pl330/unbind", "1c090000.serial")',
        'board.sysfs_write(f"{base}/driver_override", 42)', 'int("not a number")'))
    differ = {}
    for grade_id, once, twice in run_twice(nb, folder, timeout=180, after=(probe, bad, own)):
        first, second = shown(once), shown(twice)
        assert "ERROR" not in first, f"{grade_id} failed on its first run: {first}"
        if grade_id in STEP_DONE:
            assert STEP_DONE[grade_id] in second, f"{grade_id} run again: {second}"
        elif second != first:
            differ[grade_id] = (first, second)
    assert not differ, "cells that answer differently when run again: " + "; ".join(
        f"{gid}: {a!r} then {b!r}" for gid, (a, b) in differ.items())
    bad_error, own_error = (next(o for o in c.outputs if o.output_type == "error") for c in (bad, own))
    assert bad_error.ename == "TypeError" and len(bad_error.traceback) == 1
    assert "check their types" in bad_error.traceback[0]
    assert own_error.ename == "ValueError" and len(own_error.traceback) > 1
    error = next(o for o in probe.outputs if o.output_type == "error")
    assert error.ename == "OSError" and "No such device" in error.evalue
    assert len(error.traceback) == 1, error.traceback
    assert "Restart Kernel and Run up to Selected Cell" in error.traceback[0]
    assert "board.sysfs_write(" in error.traceback[0]          # the cell's own line, not the sim's
    assert "vfiolab/board/sim" not in error.traceback[0]
