"""The sim board's VFIO: interrupts, IOMMU faults, DMA through the SMMU, MSI, resets, misuse."""
import ctypes
import errno
import mmap
import os
import struct

import pytest

import vfiolab
from vfiolab import uapi as U

import scenarios
from scenarios import IOVA, Session, dma_map, expect_errno

RW = U.VFIO_DMA_MAP_FLAG_READ | U.VFIO_DMA_MAP_FLAG_WRITE


@pytest.fixture
def board():
    with vfiolab.open_board("sim") as b:
        yield b


def irq_set(flags, index, count=1):
    return U.vfio_irq_set(flags=flags, index=index, start=0, count=count)


def counter(board, efd):
    return struct.unpack("<Q", board.read(efd, 8))[0]


# --- level IRQs: automask until unmask ---------------------------------------------------------
def test_level_irq_automasks_until_unmasked(board):
    target = scenarios.pl330(board)
    with Session(board, target) as s:
        efd = s._keep(board.eventfd())
        board.ioctl(s.device, U.VFIO_DEVICE_SET_IRQS, U.irq_set_eventfds(1, [efd]))
        port = board.model(target.name).port
        port.set_irq(1, True)
        assert board.poll([efd], 0) == [efd] and counter(board, efd) == 1
        # Still high, masked: nothing more, even on another edge.
        port.set_irq(1, False)
        port.set_irq(1, True)
        assert board.poll([efd], 0) == []
        # Unmask with the line still high: a level interrupt fires again at once.
        board.ioctl(s.device, U.VFIO_DEVICE_SET_IRQS, irq_set(U.VFIO_IRQ_SET_DATA_NONE |
                                                              U.VFIO_IRQ_SET_ACTION_UNMASK, 1))
        assert counter(board, efd) == 1
        # Lowered, then unmasked: quiet until the next rising edge.
        port.set_irq(1, False)
        assert board.vfio_irq_masked(target.name, 1)
        board.ioctl(s.device, U.VFIO_DEVICE_SET_IRQS, irq_set(U.VFIO_IRQ_SET_DATA_NONE |
                                                              U.VFIO_IRQ_SET_ACTION_UNMASK, 1))
        assert board.poll([efd], 0) == [] and not board.vfio_irq_masked(target.name, 1)
        port.set_irq(1, True)
        assert counter(board, efd) == 1 and board.vfio_irq_masked(target.name, 1)
        with pytest.raises(IndexError, match="not 9"):
            board.vfio_irq_masked(target.name, 9)
    with pytest.raises(LookupError, match="not open through vfio-platform"):
        board.vfio_irq_masked(target.name, 1)


def test_unmask_through_an_eventfd_like_a_kvm_resamplefd(board):
    target = scenarios.pl330(board)
    with Session(board, target) as s:
        trigger, unmask = s._keep(board.eventfd()), s._keep(board.eventfd())
        board.ioctl(s.device, U.VFIO_DEVICE_SET_IRQS, U.irq_set_eventfds(0, [trigger]))
        board.ioctl(s.device, U.VFIO_DEVICE_SET_IRQS, U.irq_set_eventfds(
            0, [unmask], flags=U.VFIO_IRQ_SET_DATA_EVENTFD | U.VFIO_IRQ_SET_ACTION_UNMASK))
        port = board.model(target.name).port
        port.set_irq(0, True)
        assert counter(board, trigger) == 1
        os.eventfd_write(unmask, 1)                 # the guest's EOI, as KVM signals it
        assert board.poll([trigger], 0) == [trigger]   # line still high: fired again


def test_masked_before_trigger_stays_masked(board):
    target = scenarios.pl330(board)
    with Session(board, target) as s:
        efd = s._keep(board.eventfd())
        board.ioctl(s.device, U.VFIO_DEVICE_SET_IRQS, irq_set(U.VFIO_IRQ_SET_DATA_NONE |
                                                              U.VFIO_IRQ_SET_ACTION_MASK, 2))
        board.ioctl(s.device, U.VFIO_DEVICE_SET_IRQS, U.irq_set_eventfds(2, [efd]))
        board.model(target.name).port.set_irq(2, True)
        assert board.poll([efd], 0) == []
        board.ioctl(s.device, U.VFIO_DEVICE_SET_IRQS, U.irq_set_bools(2, [True],
                    flags=U.VFIO_IRQ_SET_DATA_BOOL | U.VFIO_IRQ_SET_ACTION_UNMASK))
        assert board.poll([efd], 0) == [efd]


def test_platform_irq_start_and_count_rules(board):
    target = scenarios.pl330(board)
    with Session(board, target) as s:
        efd = s._keep(board.eventfd())
        # vfio_set_irqs_validate_and_prepare checks start against the number of IRQ indexes, so
        # start 1 passes it; vfio_platform_set_irq_trigger then wants start 0 count 1: EINVAL.
        expect_errno(errno.EINVAL, board.ioctl, s.device, U.VFIO_DEVICE_SET_IRQS,
                     U.irq_set_eventfds(0, [efd], start=1))
        expect_errno(errno.EINVAL, board.ioctl, s.device, U.VFIO_DEVICE_SET_IRQS,
                     irq_set(U.VFIO_IRQ_SET_DATA_NONE | U.VFIO_IRQ_SET_ACTION_MASK, 0, count=2))


# --- the PL330 engine through the SMMU ----------------------------------------------------------
def start_channel(regs, channel, pc):
    from vfiolab.hw.pl330 import debug_instruction
    # DMAGO (secure: CR3 gives the non-secure world no events) through the debug interface.
    inst0, inst1 = debug_instruction(bytes([0xA0, channel]) + pc.to_bytes(4, "little"))
    assert regs.read32(0xD00) & 1 == 0
    regs.write32(0xD08, inst0)
    regs.write32(0xD0C, inst1)
    regs.write32(0xD04, 0)


def test_pl330_memcpy_through_the_smmu_raises_its_event_irq(board):
    from vfiolab.hw.pl330 import memcpy_program
    target = scenarios.pl330(board)
    with Session(board, target) as s:
        regs = board.mmap(s.device, 0x1000, 0)
        buf = board.alloc(0x10000)
        dma_map(board, s.container, buf.vaddr, IOVA, 0x10000)
        src, dst, n = IOVA + 0x1000, IOVA + 0x8000, 0x4000
        buf[0x1000:0x1000 + n] = bytes(i * 7 & 0xFF for i in range(n))
        program = memcpy_program(src, dst, n, event=0)
        buf[0:len(program)] = program
        efd = s._keep(board.eventfd())
        board.ioctl(s.device, U.VFIO_DEVICE_SET_IRQS, U.irq_set_eventfds(1, [efd]))   # event IRQ 0
        regs.write32(0x020, 1)                                                       # INTEN
        start_channel(regs, 0, IOVA)
        assert board.poll([efd], 1000) == [efd]
        assert bytes(buf[0x8000:0x8000 + n]) == bytes(buf[0x1000:0x1000 + n])
        assert board.iommu_faults() == []
        regs.write32(0x02C, 1)                                                       # INTCLR


def test_pl330_dma_to_an_unmapped_iova_is_an_iommu_fault(board):
    from vfiolab.hw.pl330 import memcpy_program
    target = scenarios.pl330(board)
    with Session(board, target) as s:
        regs = board.mmap(s.device, 0x1000, 0)
        buf = board.alloc(0x2000)
        dma_map(board, s.container, buf.vaddr, IOVA, 0x2000)
        program = memcpy_program(IOVA + 0x1000, 0x40000000, 64, event=0)
        buf[0:len(program)] = program
        abort = s._keep(board.eventfd())
        board.ioctl(s.device, U.VFIO_DEVICE_SET_IRQS, U.irq_set_eventfds(0, [abort]))
        start_channel(regs, 0, IOVA)
        assert board.poll([abort], 1000) == [abort]
        faults = board.iommu_faults()
        assert faults and faults[0].iova == 0x40000000 and faults[0].access == "write"
        assert faults[0].device == target.name and faults[0].reason == "translation"
        assert regs.read32(0x040) & (1 << 17)          # FTR0: data write error


def test_read_only_mapping_faults_on_write(board):
    target = scenarios.pl330(board)
    with Session(board, target) as s:
        buf = board.alloc(0x1000)
        dma_map(board, s.container, buf.vaddr, IOVA, 0x1000, flags=U.VFIO_DMA_MAP_FLAG_READ)
        port = board.model(target.name).port
        assert port.dma_read(IOVA, 4) == b"\0\0\0\0"
        assert not port.dma_write(IOVA, b"x")
        assert board.iommu_faults()[-1].reason == "permission"
        board.clear_iommu_faults()
        assert board.iommu_faults() == []


def test_no_container_means_no_translation(board):
    port = board.model("2c0a0000.dma").port
    assert port.dma_read(0x1000, 4) is None
    assert board.iommu_faults()[0].reason == "no domain"


# --- the xgmac and its reset module -------------------------------------------------------------
def test_xgmac_reset_handler(board):
    target = scenarios.Target("platform", "fff50000.ethernet", "vfio-platform")
    with Session(board, target) as s:
        info = U.vfio_device_info()
        board.ioctl(s.device, U.VFIO_DEVICE_GET_INFO, info)
        assert info.flags == U.VFIO_DEVICE_FLAGS_PLATFORM | U.VFIO_DEVICE_FLAGS_RESET
        assert (info.num_regions, info.num_irqs) == (1, 2)
        regs = board.mmap(s.device, 0x1000, 0)
        assert regs.read32(0x020) == 0x1012
        regs.write32(0x000, 0x100C)                 # TE | RE | loopback
        regs.write32(0xF18, 0x2002)                 # ST | SR
        regs.write32(0xF1C, 0x1)                    # DMA_INTR_ENA
        regs.write32(0xF10, 0xABC000)               # TX_BASE
        board.ioctl(s.device, U.VFIO_DEVICE_RESET)
        assert (regs.read32(0x000), regs.read32(0xF18), regs.read32(0xF1C)) == (0x1000, 0, 0)
        assert regs.read32(0xF10) == 0xABC000       # no soft reset: descriptor bases untouched


def test_reset_without_a_handler_is_einval(board):
    with Session(board, scenarios.pl330(board)) as s:
        # vfio_platform_call_reset: "no reset function found!"
        expect_errno(errno.EINVAL, board.ioctl, s.device, U.VFIO_DEVICE_RESET)


def test_xgmac_irq_follows_status_and_enable(board):
    target = scenarios.Target("platform", "fff50000.ethernet", "vfio-platform")
    with Session(board, target) as s:
        efd = s._keep(board.eventfd())
        board.ioctl(s.device, U.VFIO_DEVICE_SET_IRQS, U.irq_set_eventfds(0, [efd]))
        regs = board.mmap(s.device, 0x1000, 0)
        regs.write32(0xF1C, 1 << 1)                          # TPS enabled
        regs.write32(0xF18, 0x2000)                          # ST (TE off: nothing is fetched)
        regs.write32(0xF18, 0)                               # stopping the TX DMA raises TPS
        assert counter(board, efd) == 1
        regs.write32(0xF14, 1 << 1)                          # write 1 to clear: line drops
        board.ioctl(s.device, U.VFIO_DEVICE_SET_IRQS, irq_set(U.VFIO_IRQ_SET_DATA_NONE |
                                                              U.VFIO_IRQ_SET_ACTION_UNMASK, 0))
        assert board.poll([efd], 0) == []


# --- MSI isolation: ITS versus GICv2m -----------------------------------------------------------
def test_v2m_refuses_type1_without_allow_unsafe_interrupts():
    with vfiolab.open_board("sim", gic="v2m") as b:
        with Session(b, scenarios.pl330(b), iommu=None) as s:
            b.ioctl(s.group, U.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(s.container))
            # vfio_iommu_type1_attach_group: no interrupt remapping.
            expect_errno(errno.EPERM, b.ioctl, s.container, U.VFIO_SET_IOMMU, U.VFIO_TYPE1v2_IOMMU)
            assert "allow_unsafe_interrupts" in b.dmesg()
    with vfiolab.open_board("sim", gic="v2m", allow_unsafe_interrupts=True) as b:
        with Session(b, scenarios.pl330(b)):
            pass


def edu_dma(board, bar0, msi, src, dst, count, to_ram):
    bar0.write64(0x80, src)
    bar0.write64(0x88, dst)
    bar0.write64(0x90, count)
    bar0.write64(0x98, 1 | (2 if to_ram else 0) | 4)
    assert board.poll([msi], 1000) == [msi]
    board.read(msi, 8)
    bar0.write32(0x64, bar0.read32(0x24))


@pytest.mark.parametrize("gic", ["its", "v2m"])
def test_edu_dma_round_trip_with_msi(gic):
    with vfiolab.open_board("sim", gic=gic, layout="virt", allow_unsafe_interrupts=True) as b:
        target = scenarios.edu(b)
        with Session(b, target) as s:
            bar = U.vfio_region_info(index=0)
            b.ioctl(s.device, U.VFIO_DEVICE_GET_REGION_INFO, bar)
            bar0 = b.mmap(s.device, bar.size, bar.offset)
            assert bar0.read32(0) == 0x010000ED
            bar0.write32(0x04, 0x12345678)
            assert bar0.read32(0x04) == 0x12345678 ^ 0xFFFFFFFF
            bar0.write32(0x08, 10)
            assert bar0.read32(0x08) == 3628800
            config = U.region_offset(U.VFIO_PCI_CONFIG_REGION_INDEX)
            assert b.read(s.device, 4, config) == bytes.fromhex("3412e811")
            command = int.from_bytes(b.read(s.device, 2, config + 4), "little")
            b.write(s.device, (command | 0x6).to_bytes(2, "little"), config + 4)
            msi = s._keep(b.eventfd())
            b.ioctl(s.device, U.VFIO_DEVICE_SET_IRQS, U.irq_set_eventfds(U.VFIO_PCI_MSI_IRQ_INDEX, [msi]))
            buf = b.alloc(0x2000)
            dma_map(b, s.container, buf.vaddr, IOVA, 0x2000)
            buf[0:4000] = bytes(i * 13 & 0xFF for i in range(4000))
            edu_dma(b, bar0, msi, IOVA, 0x40000, 4000, to_ram=False)
            edu_dma(b, bar0, msi, 0x40000, IOVA + 0x1000, 4000, to_ram=True)
            assert bytes(buf[0x1000:0x1000 + 4000]) == bytes(buf[0:4000])
            assert b.iommu_faults() == []


def test_edu_without_bus_master_does_no_dma():
    with vfiolab.open_board("sim", layout="virt") as b:
        with Session(b, scenarios.edu(b)) as s:
            bar0 = b.mmap(s.device, 0x100000, 0)
            buf = b.alloc(0x1000)
            dma_map(b, s.container, buf.vaddr, IOVA, 0x1000)
            bar0.write64(0x80, 0x40000)
            bar0.write64(0x88, IOVA)
            bar0.write64(0x90, 16)
            bar0.write64(0x98, 1 | 2)
            assert b.model(s.target.name).errors == ["DMA with bus mastering disabled"]


def test_pci_device_info_and_regions():
    with vfiolab.open_board("sim", layout="virt") as b:
        with Session(b, scenarios.edu(b)) as s:
            info = U.vfio_device_info()
            b.ioctl(s.device, U.VFIO_DEVICE_GET_INFO, info)
            assert (info.flags, info.num_regions, info.num_irqs) == (U.VFIO_DEVICE_FLAGS_PCI, 9, 5)
            bar1 = U.vfio_region_info(index=1)
            b.ioctl(s.device, U.VFIO_DEVICE_GET_REGION_INFO, bar1)
            assert (bar1.size, bar1.flags) == (0, 0)
            cfg = U.vfio_region_info(index=U.VFIO_PCI_CONFIG_REGION_INDEX)
            b.ioctl(s.device, U.VFIO_DEVICE_GET_REGION_INFO, cfg)
            assert cfg.size == 256 and cfg.offset == 7 << 40
            expect_errno(errno.EINVAL, b.ioctl, s.device, U.VFIO_DEVICE_GET_REGION_INFO,
                         U.vfio_region_info(index=U.VFIO_PCI_VGA_REGION_INDEX))
            expect_errno(errno.EINVAL, b.ioctl, s.device, U.VFIO_DEVICE_GET_IRQ_INFO,
                         U.vfio_irq_info(index=U.VFIO_PCI_ERR_IRQ_INDEX))
            msi = U.vfio_irq_info(index=U.VFIO_PCI_MSI_IRQ_INDEX)
            b.ioctl(s.device, U.VFIO_DEVICE_GET_IRQ_INFO, msi)
            assert (msi.flags, msi.count) == (U.VFIO_IRQ_INFO_EVENTFD | U.VFIO_IRQ_INFO_NORESIZE, 1)
            # vfio_config_do_rw: past the end of config space.
            expect_errno(errno.EFAULT, b.read, s.device, 8, (7 << 40) + 252)
            # MAP_PRIVATE: vfio_pci_core_mmap wants VM_SHARED.
            expect_errno(errno.EINVAL, b.mmap, s.device, 0x1000, 0, flags=mmap.MAP_PRIVATE)
            expect_errno(errno.EBADF, b.ioctl, 999, U.VFIO_GET_API_VERSION)


# --- the rest of the contract --------------------------------------------------------------------
def test_mapping_accesses_are_checked(board):
    with Session(board, scenarios.pl330(board)) as s:
        regs = board.mmap(s.device, 0x1000, 0)
        with pytest.raises(ValueError):
            regs.read32(0x1000)
        with pytest.raises(ValueError):
            regs.read32(0x2)
        with pytest.raises(ValueError):
            regs.write8(0, 0x100)
        with pytest.raises(TypeError):
            regs.write32(0, "1")
        regs.close()
        with pytest.raises(ValueError):
            regs.read32(0)


def test_mmap_of_private_or_misaligned(board):
    with Session(board, scenarios.pl330(board)) as s:
        expect_errno(errno.EINVAL, board.mmap, s.device, 0x1000, 0, flags=mmap.MAP_PRIVATE)
        expect_errno(errno.EINVAL, board.mmap, s.device, 0, 0)
        expect_errno(errno.ENODEV, board.mmap, s.container, 0x1000, 0)
        assert len(board.mmap(s.device, 0x100, 0)) == 0x1000     # rounded up to a page


def test_map_dma_needs_board_memory_and_keeps_it_alive(board):
    with Session(board, scenarios.pl330(board), device=False) as s:
        buf = board.alloc(0x1000)
        own = ctypes.create_string_buffer(0x2000)
        expect_errno(errno.EFAULT, dma_map, board, s.container, ctypes.addressof(own) & ~0xFFF, IOVA, 0x1000)
        dma_map(board, s.container, buf.vaddr, IOVA, 0x1000)
        with pytest.raises(BufferError):
            buf.close()                     # pinned by the mapping
        scenarios.dma_unmap(board, s.container, IOVA, 0x1000)
        buf.close()


def test_group_reopen_after_close_and_device_fd_keeps_group(board):
    target = scenarios.pl330(board)
    s = Session(board, target)
    board.close(s.group)
    s.fds.remove(s.group)
    # The device fd holds the group: it is still open (EBUSY), and the device still works.
    expect_errno(errno.EBUSY, board.open, f"/dev/vfio/{s.group_id}", os.O_RDWR)
    info = U.vfio_device_info()
    board.ioctl(s.device, U.VFIO_DEVICE_GET_INFO, info)
    s.close()
    board.close(board.open(f"/dev/vfio/{s.group_id}", os.O_RDWR))


def test_unbinding_an_open_vfio_device_is_refused(board):
    target = scenarios.pl330(board)
    with Session(board, target):
        expect_errno(errno.EBUSY, board.sysfs_write, f"{target.sysfs}/driver/unbind", target.name)
    board.sysfs_write(f"{target.sysfs}/driver/unbind", target.name)
    assert "0" not in board.listdir("/dev/vfio")


def test_type_errors(board):
    with pytest.raises(TypeError):
        board.ioctl("3", U.VFIO_GET_API_VERSION)
    with pytest.raises(TypeError):
        board.ioctl(3, "VFIO_GET_API_VERSION")
    with pytest.raises(TypeError):
        board.ioctl(3, U.VFIO_GET_API_VERSION, True)
    with pytest.raises(TypeError):
        board.read(3, "4")
    with pytest.raises(TypeError):
        board.write(3, "text")
    with pytest.raises(TypeError):
        board.open(b"/dev/vfio/vfio", os.O_RDWR)
    with pytest.raises(TypeError):
        board.alloc("4096")
    with Session(board, scenarios.pl330(board)) as s:
        # A pointer-taking ioctl given an int: the int would be a user address (EFAULT).
        expect_errno(errno.EFAULT, board.ioctl, s.device, U.VFIO_DEVICE_GET_INFO, 0)
        expect_errno(errno.EFAULT, board.ioctl, s.container, U.VFIO_IOMMU_GET_INFO, 0)


def test_read_only_arguments_are_not_written_back(board):
    with Session(board, scenarios.pl330(board)) as s:
        raw = bytes(U.vfio_device_info())
        assert board.ioctl(s.device, U.VFIO_DEVICE_GET_INFO, raw) == 0
        assert raw == bytes(U.vfio_device_info())


def test_eventfds_are_real(board):
    import select
    efd = board.eventfd()
    os.eventfd_write(efd, 3)
    assert select.select([efd], [], [], 0)[0] == [efd]
    assert counter(board, efd) == 3
    board.close(efd)
    expect_errno(errno.EBADF, board.poll, [efd], 0)


def open_edu(board, name):
    target = scenarios.Target("pci", name, "vfio-pci")
    s = Session(board, target)
    config = U.region_offset(U.VFIO_PCI_CONFIG_REGION_INDEX)
    board.write(s.device, (0x6).to_bytes(2, "little"), config + 4)       # memory + bus master
    s.msi = s._keep(board.eventfd())
    board.ioctl(s.device, U.VFIO_DEVICE_SET_IRQS, U.irq_set_eventfds(U.VFIO_PCI_MSI_IRQ_INDEX, [s.msi]))
    s.bar0 = board.mmap(s.device, 0x100000, 0)
    return s


@pytest.mark.parametrize("gic", ["its", "v2m"])
def test_a_dma_write_to_the_doorbell_is_an_msi(gic):
    """edu A DMA-writes edu B's MSI data to the doorbell IOVA: with GICv2m that raises B's
    interrupt (the data is the SPI); with the ITS it can only raise A's own (DeviceID is A's)."""
    with vfiolab.open_board("sim", gic=gic, allow_unsafe_interrupts=True) as b:
        a, victim = open_edu(b, "0000:00:01.0"), open_edu(b, "0000:00:02.0")
        doorbell_iova, victim_data = b.pci.msi_message(b.device("0000:00:02.0"), 0)
        assert doorbell_iova >> 20 == 0x80                       # inside the MSI window
        buf = b.alloc(0x1000)
        dma_map(b, a.container, buf.vaddr, IOVA, 0x1000)
        buf[0:4] = victim_data.to_bytes(4, "little")
        for src, dst, cmd in ((IOVA, 0x40000, 1), (0x40000, doorbell_iova, 1 | 2)):
            a.bar0.write64(0x80, src)
            a.bar0.write64(0x88, dst)
            a.bar0.write64(0x90, 4)
            a.bar0.write64(0x98, cmd)
        ready = b.poll([a.msi, victim.msi], 0)
        assert ready == ([victim.msi] if gic == "v2m" else [a.msi])
        assert b.iommu_faults() == []
        victim.close()
        a.close()


def test_msi_without_a_mapped_doorbell_faults():
    with vfiolab.open_board("sim", layout="virt") as b:
        s = open_edu(b, "0000:00:01.0")
        # Tear the doorbell mapping out of the domain behind VFIO's back: the MSI write faults.
        iommu = s.board.vfio.groups[int(s.group_id)].container.iommu
        iommu.domain.unmap(0x8000000, 0x100000)
        s.bar0.write32(0x60, 1)                                  # edu: raise an interrupt
        assert b.poll([s.msi], 0) == []
        assert b.iommu_faults()[-1].iova == 0x8000040 and b.iommu_faults()[-1].access == "write"
        s.close()


def test_faults_are_logged_as_the_smmu_driver_prints_them():
    from vfiolab.board.qemu import smmu_events
    with vfiolab.open_board("sim", layout="virt") as b:
        port = b.model("0000:00:01.0").port
        port.dma_write(0x900000, b"x")
        assert "arm-smmu-v3 9050000.smmuv3: event 0x04 received:" in b.dmesg()   # no domain yet
        b.clear_iommu_faults()
        with Session(b, scenarios.edu(b)):
            port.dma_write(0x900000, b"x")
            port.dma_read(0x900000, 4)
            logged = smmu_events.parse(b.dmesg())[-2:]
            assert [(f.stream, f.device, f.iova, f.access, f.reason) for f in logged] == \
                [(f.stream, f.device, f.iova, f.access, f.reason) for f in b.iommu_faults()] == \
                [(8, "0000:00:01.0", 0x900000, "write", "translation"),
                 (8, "0000:00:01.0", 0x900000, "read", "translation")]
    with vfiolab.open_board("sim") as b:
        b.model("2c0a0000.dma").port.dma_read(0x1000, 4)
        assert "arm-smmu 2b400000.iommu: Unhandled context fault: fsr=0x2, iova=0x00001000" in b.dmesg()


def test_a_held_device_waits_for_its_widget_and_mappings_are_listed():
    """board.hold() pauses a model's clock (widgets step it); iommu_mappings() lists a container's DMA."""
    import vfiolab
    from vfiolab import platform, uapi, vfio
    from vfiolab.drivers import DmaRegion
    from vfiolab.drivers.pl330 import PL330Driver
    with vfiolab.open_board("sim") as board:
        platform.bind_to_vfio(board, "2c0a0000.dma")
        assert board.iommu_mappings("2c0a0000.dma") == []
        with vfio.Container(board) as c, vfio.Group.of_device(board, "2c0a0000.dma") as g:
            g.set_container(c)
            c.set_iommu(uapi.VFIO_TYPE1v2_IOMMU)
            code, src, dst = board.alloc(0x1000), board.alloc(0x1000), board.alloc(0x1000)
            c.map_dma(code, 0x10000, 0x1000, write=False)
            c.map_dma(src, 0x20000, 0x1000, write=False)
            c.map_dma(dst, 0x30000, 0x1000)
            assert [m[:2] for m in board.iommu_mappings("2c0a0000.dma")] == \
                [(0x10000, 0x1000), (0x20000, 0x1000), (0x30000, 0x1000)]
            memoryview(src)[:] = b"\xa5" * 0x1000
            with g.device("2c0a0000.dma") as dev:
                driver = PL330Driver(dev)
                driver.init(DmaRegion(code, 0x10000, 0x1000))
                board.hold("2c0a0000.dma")
                driver.memcpy_start(0x20000, 0x30000, 0x1000)
                assert board.poll([driver.irq.eventfd], 0) == [] and bytes(dst) == bytes(0x1000)
                board.model("2c0a0000.dma").engine.run()       # what the panel's Run does
                driver.memcpy_wait()
                assert bytes(dst) == bytes(src)
                board.hold("2c0a0000.dma", False)
                driver.remove()
