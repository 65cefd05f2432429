"""Lab 04: a plausible wrong answer to each exercise (not a blank one: tests/test_grading_labs.py
has those) loses its points, public and hidden, and the failing check says what is wrong and what to
do. One notebook run: Run All with the solutions, then for each exercise its wrong answer and a
cell that judges that exercise with every check, hidden ones included, as the grader would.
Also: the PL330 from lab 02 forges an MSI on the fvp board (v2m: edu's interrupt; ITS: dropped)."""
import json
import os

import nbformat
import pytest

from lab_runs import LABS, errors, execute, lab_copy, text_of

LAB = "04-msi-its"

JUDGE = """import json
from vfiolab.grading.checks import judge
from vfiolab.grading.lab import Lab
from vfiolab.grading.observations import LazySeen
_checks, _observers = Lab(".").load(hidden=True)
print(json.dumps([[r.id, r.points, r.earned, r.message] for r in
                  judge([c for c in _checks if c.exercise in {exercises!r}], LazySeen(_observers, globals()))]))
"""


def _ex5_with(old, new):
    """Exercise 5's solution with one line of table_entry changed."""
    nb = nbformat.read(os.path.join(LABS, LAB, f"{LAB}.ipynb"), as_version=4)
    source = next(c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "ex5-answer")
    assert source.count(old) == 1
    return source.replace(old, new)


# exercise: (the wrong answer, {check id: a phrase its hint must have}); every check named must
# fail, and the exercise must lose points.
WRONG = {
    "ex1": ("def msi_hole(ranges):\n"
            "    for (_, last), (first, _) in zip(ranges, ranges[1:]):\n"
            "        if first > last + 1:\n"
            "            return (last, first)\n"
            "    return None\n",
            {"ex1-hole": "msi_hole(the board's IOVA ranges) gave (0x7ffffff, 0x8100000), the hole is "
                         "(0x8000000, 0x80fffff): those are the last IOVA of one range and the first "
                         "of the next",
             "ex1-other-layouts": "gave (0x3fffffff, 0x40100000), the hole is (0x40000000, 0x400fffff)"}),
    "ex1-doorbell": ("DOORBELL_IOVA = 0x08080000 + 0x10040\n",
                     {"ex1-doorbell": "DOORBELL_IOVA is 0x8090040, edu was programmed with 0x8000040: "
                                      "that is the doorbell's physical address"}),
    "ex1-pair": ("DOORBELL_IOVA = msi_message(its_board, EDU)\n",
                 {"ex1-doorbell": "DOORBELL_IOVA is (0x8000040, 0x0): msi_message returns (address, "
                                  "data); DOORBELL_IOVA is the address alone"}),
    "ex2": ("def v2m_spi(msi_typer, data):\n"
            "    first, count = msi_typer >> 16 & 0x3FF, msi_typer & 0x3FF\n"
            "    return data - first if first <= data < first + count else None\n",
            {"ex2-decode": "v2m_spi(0x00500040, 80) gave 0: MSI_TYPER is base SPI in bits [25:16]",
             "ex2-other-frames": "the data is the SPI itself"}),
    "ex3": ("def forge(edu, doorbell, spi):\n"
            "    edu.page[0:4] = spi.to_bytes(4, 'big')\n"
            "    edu.dma(IOVA, E.BUFFER, 4, to_ram=False)\n"
            "    edu.dma(E.BUFFER, doorbell, 4, to_ram=True)\n",
            {"ex3-smmu-fires": "moved by 0 after forge(edu, doorbell, 106), one write of its SPI moves "
                               "it by 1: v2m raises the SPI whose number is the 32-bit little-endian value",
             "ex3-own-spi": "(edu's count, the SMMU's count) after forging edu's own SPI"}),
    "ex3-fault": ("def forge(edu, doorbell, spi):\n"
                  "    edu.page[0:4] = spi.to_bytes(4, 'little')\n"
                  "    edu.dma(IOVA, E.BUFFER, 4, to_ram=False)\n"
                  "    edu.dma(E.BUFFER, doorbell + 0x1000, 4, to_ram=True)\n",
                  {"ex3-smmu-fires": "made edu's DMA fault (write at IOVA 0x8001040): the counts "
                                     "moved for the SMMU's fault, not for a doorbell write"}),
    "ex4": ("def attach(board, name):\n"
            "    platform.bind_to_vfio(board, name)\n"
            "    container = vfio.Container(board)\n"
            "    group = vfio.Group.of_device(board, name)\n"
            "    try:\n"
            "        group.set_container(container)\n"
            "        return 0\n"
            "    except vfio.VfioError as e:\n"
            "        return e.errno\n"
            "    finally:\n"
            "        group.close()\n"
            "        container.close()\n\n\n"
            "def attach_allowed(isolated_msi, allow_unsafe):\n"
            "    return isolated_msi and allow_unsafe\n",
            {"ex4-eperm-on-v2m": "attach on GICv2m with allow_unsafe_interrupts=N returned 0, the "
                                 "kernel's answer is EPERM: attach must open a container and the group, "
                                 "set the container, then set_iommu(VFIO_TYPE1v2_IOMMU)",
             "ex4-unsafe-and-rule": "No interrupt remapping support' line in dmesg"}),
    "ex5": (_ex5_with("    base = baser & ((1 << 48) - page)\n", "    base = baser & ((1 << 48) - 1)\n"),
            {"ex5-device-table": "the entry is at 0x42590040 (the sim's device table: flat, 64K pages, "
                                 "8-byte entries): Entry_Size is bits [52:48] + 1 bytes",
             "ex5-translate": "translate(read, BASER0, BASER1, 8, 0) gave None, want (8192, 0, 0)",
             "ex5-other-tables": "the table's address bits [47:12]"}),
    "ex6": ("def its_predict(mappings, device_id, value):\n"
            "    return value if any(lpi == value for _, _, lpi, _, _ in mappings) else None\n",
            {"ex6-own-and-other": "its_predict(mappings, edu's DeviceID, 0) gave None, but the ITS "
                                  "delivered LPI 8192: the data is only an EventID",
             "ex6-every-forged-write": "gave None, but the ITS delivered LPI 8192"}),
}


@pytest.fixture(scope="module")
def judged(tmp_path_factory):
    folder, nb = lab_copy(LAB, tmp_path_factory.mktemp("lab04"))
    exercises = sorted({key.split("-")[0] for key in WRONG})
    nb.cells.append(nbformat.v4.new_code_cell(JUDGE.format(exercises=set(exercises))))
    for key, (source, _) in WRONG.items():
        nb.cells += [nbformat.v4.new_code_cell(source),
                     nbformat.v4.new_code_cell(JUDGE.format(exercises={key.split("-")[0]}))]
    execute(nb, str(folder), timeout=300)
    assert errors(nb) == []
    out = [json.loads(text_of(c)) for c in nb.cells[-1 - 2 * len(WRONG)::2]]
    shown = "\n".join(text_of(c) for c in nb.cells[:-1 - 2 * len(WRONG)] if c.cell_type == "code")
    return out[0], dict(zip(WRONG, out[1:])), shown


def test_run_all_walks_the_device_table_and_forges_with_the_pl330(judged):
    shown = judged[2]
    # exercise 5: GITS_BASER0 -> edu's DTE -> its ITT -> the ITE -> the collection's CPU
    assert "GITS_BASER0 0xb907000042590607: type 1, 8-byte entries, flat" in shown
    assert ("DeviceID 8: DTE at 0x42590040 = 0x10990801: ITT 0x42642000, 1 EventID bit(s) "
            "(MAPD: ITT 0x42642000, size 0)") in shown
    assert ("translate(read, baser0, baser1, 8, 0) -> (LPI, ICID, CPU) (8192, 0, 0) ; the ITS's own "
            "walk: [(8, 0, 8192, 0, 0)]") in shown
    # the PL330 (no MSI of its own) shares edu's domain: on v2m it raises edu's interrupt...
    assert "doorbell pages in the PL330's domain: ['IOVA 0x8000000 -> 0x2c1c0000']" in shown
    assert ("the PL330 writes 224 to 0x8000040: vfio-msi[0](0000:00:01.0) +1, edu's eventfd "
            "fired: True") in shown
    # ...on the ITS its writes carry its own DeviceID, which has no DTE: all dropped
    for value in (0, 1, 8192):
        assert (f"the PL330 writes {value:5}: edu's eventfd fired: False; the ITS saw DeviceID 0x100, "
                f"EventID {value}: dropped (device not mapped (no MAPD))") in shown


def test_the_solution_gets_every_point_hidden_ones_included(judged):
    solution = judged[0]
    assert [(i, m) for i, points, earned, m in solution if earned != points] == []
    assert sum(points for _, points, _, _ in solution) == 30


@pytest.mark.parametrize("key", list(WRONG))
def test_a_plausible_wrong_answer_loses_the_points_and_says_why(judged, key):
    results = {i: (points, earned, message) for i, points, earned, message in judged[1][key]}
    assert sum(e for _, e, _ in results.values()) < sum(p for p, _, _ in results.values())
    for check_id, phrase in WRONG[key][1].items():
        points, earned, message = results[check_id]
        assert earned == 0, (check_id, message)
        assert phrase in message, (check_id, message)
