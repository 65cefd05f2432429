"""Lab 04's widgets are thin views, driven here as a learner drives them: edu through vfio-pci with
MSI enabled, its DMA engine forging writes to the doorbell. The ITS view shows the registers, the
commands the kernel sent and the tables as the ITS holds them, and follows a write through them as
the ITS does; the v2m view shows the frame, its SPIs' owners and the forged write; the interrupt
view highlights the line that moved (the SMMU's, not edu's); the IOMMU view lists the doorbell."""
import time

import pytest

import vfiolab
from vfiolab import platform, uapi, vfio
from vfiolab.drivers import edu as E
from vfiolab.drivers.edu import EduDriver
from vfiolab.hw.gic import DROP_REASONS, GITS_CREADR, GITS_CWRITER, its_command
from vfiolab.widgets.interrupts import InterruptView, owner_of, parse_proc_interrupts
from vfiolab.widgets.iommu import IommuView
from vfiolab.widgets.its_view import ItsView, commands, device_table, where_it_lands
from vfiolab.widgets.v2m_view import V2mView, msi_capability

EDU, EDU2 = "0000:00:01.0", "0000:00:03.0"
PAGE_IOVA = 0x100000
SMMU_EVTQ = "arm-smmu-v3-evtq"


class Edu:
    """edu through VFIO, MSI on an eventfd, one page of RAM at PAGE_IOVA (as lab 04 sets it up)."""

    def __init__(self, board, name=EDU, msi=True):
        self.board, self.name = board, name
        platform.bind_to_vfio(board, name)
        self.container = vfio.Container(board)
        self.group = vfio.Group.of_device(board, name)
        self.group.set_container(self.container)
        self.container.set_iommu(uapi.VFIO_TYPE1v2_IOMMU)
        self.device = self.group.device(name)
        self.page = board.alloc(0x1000)
        self.container.map_dma(self.page, PAGE_IOVA, 0x1000)
        self.driver = EduDriver(self.device)
        if msi:
            self.driver.init()

    def dma(self, src, dst, count, to_ram):
        regs = self.driver.bar
        regs.write64(E.DMA_SRC, src)
        regs.write64(E.DMA_DST, dst)
        regs.write64(E.DMA_COUNT, count)
        regs.write64(E.DMA_CMD, E.CMD_START | (E.CMD_TO_RAM if to_ram else 0))
        deadline = time.monotonic() + 5
        while regs.read64(E.DMA_CMD) & E.CMD_START:
            assert time.monotonic() < deadline, "edu's DMA did not finish"

    def forge(self, doorbell, value):
        """edu's own DMA writes `value` to `doorbell` (RAM -> edu's buffer -> doorbell)."""
        self.page[0:4] = value.to_bytes(4, "little")
        self.dma(PAGE_IOVA, E.BUFFER, 4, to_ram=False)
        self.dma(E.BUFFER, doorbell, 4, to_ram=True)


@pytest.fixture
def its_board():
    with vfiolab.open_board("sim", gic="its", layout="virt") as board:
        yield board


@pytest.fixture
def v2m_board():
    with vfiolab.open_board("sim", gic="v2m", layout="virt", allow_unsafe_interrupts=True) as board:
        yield board


def test_iommu_view_lists_the_doorbell_page_once_msis_are_enabled(its_board):
    edu = Edu(its_board, msi=False)
    view = IommuView(its_board, EDU, labels={PAGE_IOVA: "our page"})
    assert "MSI doorbell" not in view.html.value                 # MSIs not enabled yet
    assert "0x8000000 - 0x80fffff msi" in view.html.value         # the reserved window, from sysfs
    edu.driver.init()                                             # MSI on an eventfd
    view.refresh()
    doorbell_page = its_board.interrupts.msi_chip.doorbell & ~0xFFF
    assert doorbell_page == 0x8090000                             # GITS_TRANSLATER's page on virt
    assert view.text().splitlines() == [
        "0x100000+0x1000 RW our page",
        f"0x8000000+0x1000 RW MSI doorbell -> {doorbell_page:#x}",
        "reserved 0x8000000-0x80fffff msi"]
    assert "MSI doorbell</b> &rarr; GIC page 0x8090000" in view.html.value
    address, enabled = msi_capability(its_board, EDU)[1], msi_capability(its_board, EDU)[0]
    assert enabled and address & ~0xFFF == 0x8000000              # the device writes to that IOVA page


def test_its_view_shows_the_registers_commands_and_tables_the_its_holds(its_board):
    Edu(its_board)
    its, chip = its_board.interrupts.its, its_board.interrupts.msi_chip
    view = ItsView(its_board, device=EDU, live=False)
    assert "vfiolab-its" in view.widget._dom_classes and view.refresh_button.tooltip
    creadr, cwriter = its.readq(GITS_CREADR), its.readq(GITS_CWRITER)
    assert (creadr, cwriter) == (0x120, 0x120)
    assert view.text().splitlines()[0] == f"CREADR 0x{creadr:x} CWRITER 0x{cwriter:x}"
    assert f"CREADR 0x{creadr:x}, CWRITER 0x{cwriter:x}" in view.html.value
    # The decoded queue is what the kernel sent: boot's MAPC/INVALL, then edu's MAPD, MAPTI, INV.
    assert commands(its) == chip.commands()
    assert [name for name, _ in commands(its)] == ["MAPC", "SYNC", "INVALL", "SYNC", "MAPD", "MAPTI",
                                                   "SYNC", "INV", "SYNC"]
    mapd = dict(commands(its))["MAPD"]
    assert (mapd["device_id"], mapd["valid"]) == (8, 1)
    assert "MAPTI DeviceID 8 EventID 0 -> LPI 8192, collection 0" in view.text()
    assert "MAPD DeviceID 8: ITT at 0x%x, 2 EventIDs (size 0)" % mapd["itt"] in view.text()
    # The tables: edu's DTE (its ITT is MAPD's), CPU 0's collection; the ITT lists EventID 0.
    assert device_table(its) == [(8, mapd["itt"], 2)]
    assert [(d, e, lpi, icid, cpu) for d, e, lpi, icid, cpu in chip.mappings()] == [(8, 0, 8192, 0, 0)]
    assert "CTE 0: redistributor 0" in view.text()
    assert view.itt_device.value == 8 and "ITT of DeviceID 8 (0000:00:01.0)" in view.itt_html.value
    assert "<td style" in view.itt_html.value and ">8192<" in view.itt_html.value
    # Where a write lands: edu's own event, then a DeviceID the device table does not hold.
    assert view.text().splitlines()[-1] == "DeviceID 8 writes 0: LPI 8192 at redistributor 0"
    assert "lands on LPI 8192 at redistributor 0" in view.landing_html.value
    view.device_id.value = 0x10                                   # a typed DeviceID redraws the path
    assert "dropped: no device table entry for DeviceID 16" in view.landing_html.value


def test_its_view_redraws_only_on_refresh_and_then_shows_the_new_device(its_board):
    Edu(its_board)
    view = ItsView(its_board, device=EDU, live=False)
    drawn = view.html.value
    platform.bind_to_vfio(its_board, "0000:00:03.1")           # 00:03.0's IOMMU group-mate
    Edu(its_board, EDU2)                          # a second edu: its MSI brings MAPD, MAPTI, INV
    assert view.html.value == drawn
    assert view.refresh()
    its = its_board.interrupts.its
    assert f"CWRITER 0x{its.readq(GITS_CWRITER):x}" in view.html.value
    assert its.readq(GITS_CWRITER) == 0x120 + 5 * 32
    assert ">24 (0000:00:03.0)<" in view.html.value              # 00:03.0: requester ID 0x18
    assert "MAPTI DeviceID 24 EventID 0 -> LPI 8193, collection 0" in view.text()
    assert [o[1] for o in view.itt_device.options] == [8, 24] and view.itt_device.value == 8
    view.itt_device.value = 24
    assert "ITT of DeviceID 24 (0000:00:03.0)" in view.itt_html.value and ">8193<" in view.itt_html.value
    assert not view.refresh()                                           # nothing changed since


# Which drop each of the C ITS's reasons is, in the view's words.
DROP_WORDS = {2: "beyond the device table", 3: "no device table entry", 4: "beyond DeviceID",
              5: "no ITT entry", 6: "is not mapped (no MAPC)"}


def test_where_it_lands_agrees_with_what_the_its_does(its_board):
    """The view's walk through the tables predicts every write the way the ITS model resolves it:
    the same LPI, or a drop for the same reason."""
    Edu(its_board)
    chip, its = its_board.interrupts.msi_chip, its_board.interrupts.its
    # EventID 1 of edu mapped to a collection nobody mapped, and a disabled LPI's event.
    chip.send(its_command("MAPTI", device_id=8, event_id=1, intid=8300, icid=7),
              its_command("SYNC", rdbase=0))
    cases = [(8, 0), (8, 1), (8, 2), (8, 106), (8, 8192), (0, 0), (0x10, 0), (0xFFFF, 3),
             (0x10000, 0), (0xFFFFFFFF, 0)]
    for device_id, value in cases:
        landing = where_it_lands(its, device_id, value)
        its.take_records()
        lpi = its.deliver(value, device_id)
        records = [r for r in its.take_records() if r.kind == "dropped"]
        assert landing.lpi == lpi, (device_id, value, landing, lpi)
        if lpi is None:
            reason = records[-1].code
            assert DROP_WORDS[reason] in landing.dropped, (device_id, value, DROP_REASONS[reason], landing)
        else:
            its.set_lpi_pending(0, lpi, False)
    assert where_it_lands(its, 8, 0).steps[-1][1].startswith("LPI 8192: priority 0xa0, enabled")
    with_collection_unmapped = where_it_lands(its, 8, 1)
    assert with_collection_unmapped.dropped == "collection 7 is not mapped (no MAPC)"


def test_v2m_and_interrupt_views_after_forged_writes(v2m_board):
    edu = Edu(v2m_board)
    doorbell, data = msi_capability(v2m_board, EDU)[1:3]
    assert (doorbell, data) == (0x8000040, 80)
    frame, irqs = V2mView(v2m_board, live=False), InterruptView(v2m_board, live=False)
    assert "vfiolab-v2m" in frame.widget._dom_classes and "vfiolab-interrupts" in irqs.widget._dom_classes
    assert frame.text().splitlines()[:4] == [
        "MSI_TYPER 0x00500040: SPIs 80..143", f"SPI 80: {EDU} (MSI vector 0)",
        "SPI 106: the SMMUv3 (host driver) (wired line)", "SPI 109: the SMMUv3 (host driver) (wired line)"]
    assert "No write has reached MSI_SETSPI_NS yet." in frame.html.value
    assert "nothing moved since the board booted" in irqs.html.value and "vfiolab-moved" not in irqs.html.value

    edu.forge(doorbell, 106)                       # the SMMU's event-queue SPI
    assert "No write has reached" in frame.html.value          # nothing redraws by itself
    frame.refresh()
    irqs.refresh()
    assert frame.text().splitlines()[-1] == f"write 106 by {EDU} -> SPI 106"
    assert "SPI 106: the SMMUv3 (host driver)'s" in frame.html.value and "(not the writer's)" in frame.html.value
    assert "the frame cannot tell" in frame.html.value
    assert irqs.moved() == {SMMU_EVTQ: 1}
    edu_line = next(r for r in irqs.rows if r["handler"] == f"vfio-msi[0]({EDU})")
    assert edu_line["delta"] == 0 and edu_line["owner"] == EDU
    assert irqs.html.value.count("vfiolab-moved") == 1
    moved_row = irqs.html.value.split("vfiolab-moved")[1].split("</tr>")[0]
    assert SMMU_EVTQ in moved_row and EDU not in moved_row
    assert "moved since the previous reading: the SMMUv3 (host driver) +1" in irqs.html.value

    edu.forge(doorbell, data)                      # edu's own SPI
    irqs.refresh()
    assert irqs.moved() == {f"vfio-msi[0]({EDU})": 1}
    edu.forge(doorbell, 200)                       # outside the frame: ignored
    irqs.refresh()
    frame.refresh()
    assert irqs.moved() == {} and "nothing moved since the previous reading" in irqs.html.value
    assert frame.text().splitlines()[-1] == f"write 200 by {EDU} -> ignored"
    assert "ignored: INTID 200 is outside SPIs 80..143" in frame.html.value


def test_an_interrupt_view_made_after_the_forgery_shows_it_since_boot(v2m_board):
    edu = Edu(v2m_board)
    edu.forge(msi_capability(v2m_board, EDU)[1], 106)
    irqs = InterruptView(v2m_board, live=False)
    assert irqs.moved() == {SMMU_EVTQ: 1} and "moved since the board booted" in irqs.html.value
    assert irqs.html.value.count("vfiolab-moved") == 1 and ">since boot<" in irqs.html.value
    irqs.refresh()
    assert irqs.moved() == {} and ">since last<" in irqs.html.value


def test_a_live_interrupt_view_keeps_the_last_movement_until_the_next(v2m_board):
    edu = Edu(v2m_board)
    doorbell = msi_capability(v2m_board, EDU)[1]
    irqs = InterruptView(v2m_board, live=False)
    edu.forge(doorbell, 106)
    irqs.refresh(force=False)                      # what runs after each cell: a count moved
    assert irqs.moved() == {SMMU_EVTQ: 1}
    irqs.refresh(force=False)                      # a cell that moved nothing: the picture stays
    assert irqs.moved() == {SMMU_EVTQ: 1} and irqs.readings == 2
    irqs.refresh()                                 # Refresh: nothing moved since the last reading
    assert irqs.moved() == {} and irqs.readings == 3


def test_parse_proc_interrupts_of_a_real_two_cpu_kernel():
    text = ("           CPU0       CPU1       \n"
            " 11:       2345       1234     GICv3  27 Level     arch_timer\n"
            " 13:          7          0     GICv3  33 Level     uart-pl011\n"
            " 14:          1          0     GICv3 106 Edge      arm-smmu-v3-evtq\n"
            " 51:          3          0   ITS-MSI 16384 Edge      vfio-msi[0](0000:00:01.0)\n"
            "IPI0:       100        200       Rescheduling interrupts\n"
            "Err:          0\n")
    rows = parse_proc_interrupts(text)
    assert [(r["irq"], r["counts"], r["chip"], r["hwirq"], r["type"], r["handler"]) for r in rows] == [
        (11, [2345, 1234], "GICv3", 27, "Level", "arch_timer"),
        (13, [7, 0], "GICv3", 33, "Level", "uart-pl011"),
        (14, [1, 0], "GICv3", 106, "Edge", SMMU_EVTQ),
        (51, [3, 0], "ITS-MSI", 16384, "Edge", "vfio-msi[0](0000:00:01.0)")]
    assert owner_of("vfio-msi[0](0000:00:01.0)") == "0000:00:01.0"
    assert owner_of("vfio-irq[37](fff50000.ethernet)") == "fff50000.ethernet"
    assert owner_of(SMMU_EVTQ) == "the SMMUv3 (host driver)" and owner_of("arch_timer") == "arch_timer"


def test_a_misspelt_device_is_a_clear_lookup_error(its_board):
    with pytest.raises(LookupError, match=r"no PCI device '0000:00:01\.1' .*0000:00:01\.0 \(DeviceID 8\)"):
        ItsView(its_board, device="0000:00:01.1", live=False)


def test_views_of_a_board_without_that_controller_say_so(its_board, v2m_board):
    assert "No GICv2m frame to show: this board's MSI controller is not a GICv2m frame" in \
        V2mView(its_board, live=False).html.value
    view = ItsView(v2m_board, live=False)
    assert "No ITS to show: this board's GIC has no ITS" in view.html.value and view.text() == "no ITS"
    assert view.landing_html.value == "" and view.itt_device.options == ()


def test_commands_the_its_has_not_run_are_shown_queued(its_board):
    """With the ITS disabled it runs nothing: a command the kernel queued stays between CREADR and
    CWRITER, drawn as queued, and every write is dropped."""
    from vfiolab.hw.gic import GITS_CTLR
    chip, its = its_board.interrupts.msi_chip, its_board.interrupts.its
    view = ItsView(its_board, live=False)
    its.writel(GITS_CTLR, 0)
    its.mem_write(chip.queue + chip.next_command,
                  its_command("MAPD", device_id=5, size=1, itt=0x42700000, valid=1))
    its.writeq(GITS_CWRITER, chip.next_command + 32)
    view.refresh()
    assert view.text().splitlines()[0] == "CREADR 0x80 CWRITER 0xa0"
    assert "1 command(s) queued, not run yet" in view.html.value
    assert "<td style" in view.html.value and ">queued<" in view.html.value
    assert "MAPD DeviceID 5: ITT at 0x42700000, 4 EventIDs (size 1)" in view.text()
    assert device_table(its) == []                      # the MAPD never ran
    assert where_it_lands(its, 0, 0).dropped == "the ITS is disabled (GITS_CTLR.Enabled is 0)"
