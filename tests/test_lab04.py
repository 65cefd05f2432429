"""Lab 04 (MSI on ARM, GICv2m and the ITS): the notebook runs top to bottom on the sim in under
10 s of cells with the evidence each section is about in its outputs; every cell run twice gives the
same answer. Grading (solution full marks, learner version zero with hints) is
tests/test_grading_labs.py's, for every lab through `vfiolab grade`."""
from emulation import limit_note, scaled
from lab_runs import errors, lab_copy, needs_qemu, run_all, run_twice, text_of

LAB = "04-msi-its"


def test_solution_runs_on_the_sim_in_under_10_s(tmp_path):
    _, out, took = run_all(LAB, tmp_path)
    assert took < scaled(10), f"Run All took {took:.1f} s of cells, {limit_note(10)}"
    # 1: the reserved MSI window is the hole in IOVA_RANGE; the doorbell at its start + 0x40
    assert "reserved_regions: 0x0000000008000000 0x00000000080fffff msi" in out
    assert "IOVA ranges: [('0x0', '0x7ffffff'), ('0x8100000', '0xffffffffffff')]" in out
    assert "hole: ('0x8000000', '0x80fffff') ; doorbell at 0x8000040 = window + 0x40" in out
    # 2: v2m's data is the SPI; edu's DMA raises the SMMU's SPI; EPERM without the parameter
    assert "MSI_TYPER 0x00500040; edu's MSI: address 0x8000040, data 80" in out
    assert "edu's data raises SPI 80 ; 20 raises None" in out
    assert "arm-smmu-v3-evtq               GICv2   106: +1" in out
    assert "vfio-msi[0](0000:00:01.0)        MSI 16384: +0" in out
    assert "allow_unsafe_interrupts = N ; attach: EPERM" in out
    assert "No interrupt remapping support." in out
    # 3: the ITS's queue, ITT and forged writes
    assert "GITS_CREADR 0x120, GITS_CWRITER 0x120" in out
    assert "MAPTI   {'device_id': 8, 'event_id': 0, 'intid': 8192, 'icid': 0}" in out
    assert "EventID 0 -> (8192, 0)" in out
    assert "edu writes     0: predicted 8192, edu's eventfd fired: True" in out
    for value in (1, 106, 8192):
        assert f"edu writes {value:5}: predicted None, edu's eventfd fired: False" in out
    assert "qemu section skipped: set RUN_QEMU = True" in out
    assert "total: 17/17" in out


def test_every_cell_run_twice_gives_the_same_answer_as_once(tmp_path):
    folder, nb = lab_copy(LAB, tmp_path)
    pairs = run_twice(nb, folder)
    assert errors(nb) == []
    checked = 0
    for gid, once, twice in pairs:
        assert text_of(twice) == text_of(once), gid
        checked += gid.startswith("ex")
    assert checked == 12              # every answer and check cell of the six exercises


@needs_qemu(LAB)
def test_the_qemu_section_runs_on_the_real_kernel(tmp_path):
    """VFIOLAB_BOARD=qemu: sections 1-3 stay on the sim; section 4 boots the real 6.1 with a
    GICv2m, then with an ITS: EPERM, the forged SMMU interrupt on v2m, nothing on the ITS."""
    _, out, _ = run_all(LAB, tmp_path, board="qemu", timeout=600)
    print(out[out.index("qemu board, GIC v2m"):])
    assert "qemu board, GIC v2m: attach without allow_unsafe_interrupts: EPERM" in out
    assert "edu forges the SMMU's SPI (106): SMMU +1, edu +0 (eventfd 0)" in out
    assert "edu forges edu's own data (80): SMMU +0, edu +1 (eventfd 1)" in out
    assert "qemu board, GIC its: attach without allow_unsafe_interrupts: 0" in out
    assert "edu forges the SMMU's SPI (106): SMMU +0, edu +0 (eventfd 0)" in out
    # QEMU 7.2: a plain DMA write reaches its ITS with DeviceID 0, so not even edu's own event fires
    assert "edu forges edu's own data (0): SMMU +0, edu +0 (eventfd 0)" in out
