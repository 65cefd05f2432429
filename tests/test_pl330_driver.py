"""vfiolab.drivers.pl330.PL330Driver: the microcode it writes follows the device's revision, as
Linux's does, and its memcpy_start/memcpy_wait keep the contract its docstring states."""
import vfiolab
from vfiolab import platform, uapi, vfio
from vfiolab.drivers import DmaRegion
from vfiolab.drivers.pl330 import PL330Driver
from vfiolab.hw.pl330 import disassemble

PL330 = "2c0a0000.dma"


def test_memcpy_start_writes_barrier_free_microcode_for_a_revision_2_pl330():
    with vfiolab.open_board("sim") as board:
        platform.bind_to_vfio(board, PL330)
        with vfio.Container(board) as c, vfio.Group.of_device(board, PL330) as g:
            g.set_container(c)
            c.set_iommu(uapi.VFIO_TYPE1v2_IOMMU)
            code, mem = board.alloc(0x1000), board.alloc(0x20000)
            c.map_dma(code, 0x10000, 0x1000, write=False)
            c.map_dma(mem, 0x100000, 0x20000)
            memoryview(mem)[:0x10000] = bytes(range(256)) * 256
            with g.device(PL330) as dev:
                driver = PL330Driver(dev)
                assert driver.probe() and driver.periph_id == 0x00241330
                driver.init(DmaRegion(code, 0x10000, 0x1000))
                driver.memcpy_start(0x100000, 0x110000, 0x10000, count=2)
                driver.memcpy_wait()
                assert bytes(mem[0x10000:]) == bytes(mem[:0x10000])
                text = disassemble(bytes(code[:200]))
                assert text.count("DMALD") >= 2 and "DMARMB" not in text and "DMAWMB" not in text
                assert text.count("DMASEV") == 1          # one interrupt for all `count` copies
                driver.remove()


def test_memcpy_wait_waits_for_the_last_bursts_after_the_interrupt():
    """Barrier-free microcode raises its event once the last DMAST is issued; its bursts are
    still queued (Completing). memcpy_wait does not call the copy done before the channel stops."""
    import pytest
    from vfiolab.drivers import DmaError
    with vfiolab.open_board("sim") as board:
        platform.bind_to_vfio(board, PL330)
        with vfio.Container(board) as c, vfio.Group.of_device(board, PL330) as g:
            g.set_container(c)
            c.set_iommu(uapi.VFIO_TYPE1v2_IOMMU)
            code, mem = board.alloc(0x1000), board.alloc(0x2000)
            c.map_dma(code, 0x10000, 0x1000, write=False)
            c.map_dma(mem, 0x100000, 0x2000)
            memoryview(mem)[:0x1000] = bytes(range(256)) * 16
            with g.device(PL330) as dev:
                driver = PL330Driver(dev)
                driver.init(DmaRegion(code, 0x10000, 0x1000))
                board.hold(PL330)                    # only we run the engine
                engine = board.model(PL330).engine
                driver.memcpy_start(0x100000, 0x101000, 0x1000)
                engine.run(max_cycles=300)
                assert engine.thread(0).state_name == "completing" and engine.irq_lines & 1
                assert bytes(mem[0x1000:]) != bytes(mem[:0x1000])     # not all written yet
                with pytest.raises(DmaError, match="still completing"):
                    driver.memcpy_wait()
                engine.run()
                driver.memcpy_wait()                 # the interrupt is still there to take
                assert bytes(mem[0x1000:]) == bytes(mem[:0x1000])
                assert not engine.irq_lines and not board.vfio_irq_masked(PL330, 1)
                board.hold(PL330, False)
                driver.remove()
