"""Lab 02 (a user-space PL330 driver through VFIO): the notebook runs top to bottom.

- On the sim board, with the evidence each section is about in its outputs.
- With VFIOLAB_BOARD=qemu the whole notebook runs too: the PL330 sections on the sim (the qemu
  board has no PL330), the qemu-board section (cells tagged "qemu") on the real kernel: edu through
  vfio-pci, and microcode on QEMU's own PL330. Learners turn that section on with RUN_QEMU = True.
Grading (solution full marks, learner version zero with hints) is tests/test_grading_labs.py's,
for every lab through `vfiolab grade`.
"""
import copy
import os

import nbformat

from lab_runs import LABS, errors, execute, grade_id, lab_copy, needs_qemu, run_all, run_twice, text_of
from vfiolab.qtest import find_qemu

LAB = "02-vfio-pl330"


def test_solution_runs_on_the_sim(tmp_path):
    nb, outputs, _ = run_all(LAB, tmp_path)
    assert "component ID  0xB105F00D" in outputs
    assert "64 bytes copied: True" in outputs
    # Stepped 300 cycles into the barrier-free copy: every burst issued, the data trailing behind.
    assert "0: completing pc=0x1001a sar=0x101000 dar=0x111000" in outputs
    assert "the first 2360 bytes match" in outputs
    assert "data write error" in outputs and "0x40000000 (8 bytes): translation" in outputs
    assert "undefined instruction" in outputs and "operand invalid" in outputs
    assert "second interrupt within 200 ms: 0" in outputs
    assert "total: 16/16" in outputs                       # the public checks, on the scoreboard
    assert "r1p0 and later (this PL330): 131080 cycles, correct" in outputs
    assert "r0p0, with barriers:         286791 cycles, correct" in outputs
    assert ("1003 x 300: 91 bytes of microcode (at most 512), 38408 cycles (the bus needs 38400, "
            "at most 40384 allowed), rows correct, gaps untouched") in outputs
    assert "after INTEN: interrupt: 1" in outputs          # our engine: line = RIS & INTEN
    # After Run All the live panel shows the end; the still picture beside it keeps the moment
    # section 4's text describes: 300 cycles in, channel 0 completing, E0 already raised.
    stepped = next(c for c in nb.cells if grade_id(c) == "code-44")
    stills = [o["data"]["text/html"] for o in stepped.outputs if "text/html" in o.get("data", {})]
    assert len(stills) == 2 and "Still picture, at 300 cycles" in stills[0]
    assert "completing" in stills[0] and "IRQ raised" in stills[0] and "2360 bytes match" in stills[1]


@needs_qemu(LAB)
def test_whole_notebook_runs_with_the_qemu_board(tmp_path):
    """VFIOLAB_BOARD=qemu: the PL330 sections still use the sim (the qemu board has no PL330);
    the cells tagged "qemu" run on the real kernel."""
    nb, outputs, _ = run_all(LAB, tmp_path, board="qemu", timeout=300)
    assert sum(c.cell_type == "code" and "qemu" in c.metadata.get("tags", []) for c in nb.cells) >= 4
    assert "-> vfio-pci" in outputs
    assert "copied through the SMMUv3: True" in outputs
    assert "IOMMU faults: []" in outputs
    if find_qemu("qemu-system-arm"):
        assert "same destination bytes: True" in outputs


def test_a_copy_made_by_the_cpu_does_not_pass_for_the_devices(tmp_path):
    """Exercise 3 with memcpy_start copying by CPU: the bytes are right, the check still fails and
    says why (the PL330's DMA never wrote them: board.dma_writes)."""
    folder, nb = lab_copy(LAB, tmp_path)
    ids = [grade_id(c) for c in nb.cells]
    answer, check = ids.index("ex3-answer"), ids.index("ex3")
    nb.cells[answer].source = (
        "def memcpy_start(src, dst, size):\n"
        "    dst_buf[dst - DST_IOVA:dst - DST_IOVA + size] = src_buf[src - SRC_IOVA:src - SRC_IOVA + size]\n\n"
        "def memcpy_wait(timeout_ms=1000):\n"
        "    pass\n")
    nb.cells = nb.cells[:check + 1]
    execute(nb, folder)
    assert [i for i, _ in errors(nb)] == [check]          # a failing check cell ends in an error
    verdict = str(nb.cells[check].outputs)
    assert "the PL330 never wrote the one at IOVA 0x202000 (ex3)" in verdict, verdict


# Cells whose second run cannot repeat the first (the board's state moved on) and the one line
# each prints instead.
RECOVERY = {
    "code-07": "this board's group is already open and in the container: to walk again, run the "
               "cell `board = vfiolab.lab_board(\"sim\", fresh=True)` first",
    "code-25": "no interrupt: this cell takes one per start; run the cell above to start the "
               "program again",
    "code-45": "no interrupt to wait for: this copy was waited for already (run the cell above to "
               "start it again)",
}


def test_every_cell_run_twice_gives_the_same_answer_as_once(tmp_path):
    """Each code cell, exercises included, runs twice in a row: the second run shows what the
    first did, or (the cells of RECOVERY) one line saying how to get back; never an error."""
    folder, nb = lab_copy(LAB, tmp_path)
    pairs = run_twice(nb, folder)
    assert errors(nb) == []
    checked = 0
    for gid, once, twice in pairs:
        if gid in RECOVERY:
            assert RECOVERY[gid] in text_of(twice), (gid, text_of(twice))
        else:
            assert text_of(twice) == text_of(once), gid
            checked += gid.startswith("ex")
    assert checked >= 12              # every answer and check cell of the six exercises


def test_check_cells_are_worth_the_public_points_their_headings_announce():
    """tests/test_lab_headings.py checks each heading against the checks (lab 02 is in its list);
    here: each exercise's check cell is worth, in nbgrader, the public points its heading names."""
    import re
    from vfiolab.grading.lab import Lab
    checks, _ = Lab(os.path.join(LABS, LAB)).load(hidden=True)
    nb = nbformat.read(os.path.join(LABS, LAB, f"{LAB}.ipynb"), as_version=4)
    announced = {}
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for n, public in re.findall(r"Exercise (\d): [^\n]*\(\d+ points: (\d+) from the public",
                                        cell.source):
                announced[f"ex{n}"] = int(public)
    cell_points = {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"].get("points")
                   for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")}
    exercises = sorted({c.exercise for c in checks})
    assert sorted(announced) == exercises == [f"ex{i}" for i in range(1, 7)]
    for ex in exercises:
        public = sum(c.points for c in checks if c.exercise == ex and not c.hidden)
        assert announced[ex] == cell_points[ex] == public, ex


def test_an_exercise_2_answer_does_not_win_exercise_6(tmp_path):
    """Linux's microcode for this PL330 has no barriers, so exercise 2's answer is already at the
    bus's speed on a plain copy. Exercise 6's rectangle is not won by it: one memcpy per row is
    correct but too big, the same loop with barriers is compact but too slow."""
    folder, nb = lab_copy(LAB, tmp_path)
    ids = [grade_id(c) for c in nb.cells]
    answer, check = ids.index("ex6-answer"), ids.index("ex6")
    nb.cells[answer].source = (
        "def rect_microcode(src, dst, width, rows, src_stride, dst_stride):\n"
        "    lines = []\n"
        "    for r in range(rows):\n"
        "        lines += copy_lines(src + r * src_stride, dst + r * dst_stride, width)\n"
        "    return assemble('\\n'.join(lines + [f'DMASEV E{EVENT}', 'DMAEND']))\n")
    barriers = nbformat.v4.new_code_cell(
        "def rect_microcode(src, dst, width, rows, src_stride, dst_stride):\n"
        "    body = ['DMALD', 'DMARMB', 'DMAST', 'DMAWMB']\n"
        "    (bursts, rest), tail = divmod(width // 8, 16), width % 8\n"
        "    row = ['DMAMOV CCR, SB16 SS64 DB16 DS64', f'DMALP LC1, {bursts}', *body, 'DMALPEND LC1',\n"
        "           f'DMAMOV CCR, SB{rest} SS64 DB{rest} DS64', *body,\n"
        "           f'DMAMOV CCR, SB{tail} SS8 DB{tail} DS8', *body,\n"
        "           f'DMAADDH SAR, {src_stride - width}', f'DMAADDH DAR, {dst_stride - width}']\n"
        "    lines = [f'DMAMOV SAR, {src:#x}', f'DMAMOV DAR, {dst:#x}']\n"
        "    while rows:\n"
        "        n = min(rows, 256)\n"
        "        lines += [f'DMALP LC0, {n}', *row, 'DMALPEND LC0']\n"
        "        rows -= n\n"
        "    return assemble('\\n'.join(lines + [f'DMASEV E{EVENT}', 'DMAEND']))\n")
    nb.cells = nb.cells[:check + 1] + [barriers, copy.deepcopy(nb.cells[check])]
    execute(nb, folder)
    per_row, with_barriers = text_of(nb.cells[check]), text_of(nb.cells[-1])
    assert "PASS ex6-rect" in per_row and "FAIL ex6-compact" in per_row, per_row
    assert "DMAADDH" in per_row
    assert "PASS ex6-rect" in with_barriers and "PASS ex6-compact" in with_barriers, with_barriers
    assert "FAIL ex6-bus-speed" in with_barriers and "Barriers" in with_barriers, with_barriers
