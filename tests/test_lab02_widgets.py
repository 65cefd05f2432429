"""Lab 02's widgets are thin views: what they show is what the engine, the memory and the board hold."""
import vfiolab
from vfiolab.hw.pl330 import PL330, memcpy_program
from vfiolab.widgets.iommu import IommuView, mappings_of
from vfiolab.widgets.memory import MemoryDiff
from vfiolab.widgets.pl330_panel import PL330Panel


def test_panel_steps_the_engine_and_marks_the_pc():
    dma = PL330(memory_size=1 << 24, events=8)
    program = memcpy_program(0x10000, 0x20000, 4096)
    dma.mem_write(0x1000, program + bytes(64))
    dma.mem_write(0x10000, bytes(range(256)) * 16)
    panel = PL330Panel(dma)
    panel.show_program(program + bytes(64), 0x1000)              # trailing zeros are not listed
    assert panel.programs[0][2] == program
    panel.start(0, 0x1000)
    assert dma.cycles == 0 and "PC of ch0" in panel.html.value
    panel.step(100)
    assert dma.cycles == 100 and "PC of ch0" in panel.html.value and "work left" in panel.html.value
    memory = MemoryDiff(lambda: dma.mem_read(0x10000, 4096), lambda: dma.mem_read(0x20000, 4096), 4096)
    panel.link(memory)
    assert "differ" in memory.html.value
    panel.run()
    assert dma.thread(0).state_name == "stopped" and "IRQ raised" not in panel.html.value  # no INTEN
    assert memory.text() == "all 4096 bytes match"
    panel.reset()
    assert panel.text().startswith("manager: stopped")


def test_panel_shows_faults_and_the_iommu_view_the_mappings_and_faults():
    from vfiolab import platform, vfio
    with vfiolab.open_board("sim") as board:
        platform.bind_to_vfio(board, "2c0a0000.dma")
        container = vfio.Container(board)
        group = vfio.Group.of_device(board, "2c0a0000.dma")
        group.set_container(container)
        container.set_iommu()
        buf = board.alloc(0x2000)
        container.map_dma(buf, 0x10000, 0x1000, write=False)
        view = IommuView(board, labels={0x10000: "microcode"})
        assert mappings_of(board, "2c0a0000.dma") == [(0x10000, 0x1000, 1)]
        assert "microcode" in view.html.value and "No IOMMU faults" in view.html.value
        device = group.device("2c0a0000.dma")
        regs = device.region(0).mmap()
        panel = PL330Panel.for_board(board)
        program = memcpy_program(0x10000, 0x40000000, 64)
        buf[:len(program)] = program
        from vfiolab.hw.pl330 import debug_instruction
        inst0, inst1 = debug_instruction(bytes([0xA0, 0]) + (0x10000).to_bytes(4, "little"))
        regs.write32(0xD08, inst0)
        regs.write32(0xD0C, inst1)
        regs.write32(0xD04, 0)
        panel.run()
        view.refresh()
        assert "data write error" in panel.html.value and "HIGH" in panel.html.value
        assert "0x40000000" in view.html.value and "translation" in view.html.value
        device.close()


def test_a_held_panel_watches_a_copy_the_driver_started():
    from vfiolab import platform, uapi, vfio
    from vfiolab.drivers import DmaRegion
    from vfiolab.drivers.pl330 import PL330Driver
    with vfiolab.open_board("sim") as board:
        platform.bind_to_vfio(board, "2c0a0000.dma")
        with vfio.Container(board) as c, vfio.Group.of_device(board, "2c0a0000.dma") as g:
            g.set_container(c)
            c.set_iommu(uapi.VFIO_TYPE1v2_IOMMU)
            code, src, dst = board.alloc(0x1000), board.alloc(0x1000), board.alloc(0x1000)
            for buf, iova in ((code, 0x10000), (src, 0x20000), (dst, 0x30000)):
                c.map_dma(buf, iova, 0x1000)
            memoryview(src)[:] = bytes(range(256)) * 16
            with g.device("2c0a0000.dma") as dev:
                driver = PL330Driver(dev)
                driver.init(DmaRegion(code, 0x10000, 0x1000))
                panel = PL330Panel.for_board(board, hold=True)
                driver.memcpy_start(0x20000, 0x30000, 0x1000)
                board.poll([driver.irq.eventfd], 0)                 # a board call: nothing runs
                panel.show_program(bytes(code), 0x10000)
                assert bytes(dst) == bytes(0x1000) and "PC of ch0" in panel.html.value
                assert panel.engine.thread(0).state_name != "stopped"
                panel.run()
                driver.memcpy_wait()
                assert bytes(dst) == bytes(src)
                panel.release()
                driver.memcpy_start(0x20000, 0x30000, 0x1000)       # runs on its own again
                driver.memcpy_wait()
                driver.remove()


def _widgets(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _widgets(child)


def test_panel_status_comes_from_the_threads_not_from_the_last_run():
    """A channel started after a run that ended idle is executing: the panel must not say idle."""
    dma = PL330(memory_size=1 << 24, events=8)
    program = memcpy_program(0x10000, 0x20000, 4096)
    dma.mem_write(0x1000, program)
    panel = PL330Panel(dma)
    panel.start(0, 0x1000)
    panel.run()
    assert dma.idle and "idle: every thread is stopped or faulting" in panel.html.value
    panel.start(0, 0x1000)                  # executing, and nothing has run it yet
    assert dma.idle and dma.thread(0).state_name == "executing"
    assert "has work left" in panel.html.value and "idle" not in panel.html.value
    waiter = PL330(memory_size=1 << 24, events=8)
    waiter.mem_write(0x1000, bytes([0x36, 0x08, 0x00]))              # DMAWFE E1; DMAEND
    wpanel = PL330Panel(waiter)
    wpanel.start(0, 0x1000)
    wpanel.run()                            # DMAWFE E1: waits for an event nobody sends
    assert "waiting: 0 waits for an event or a peripheral" in wpanel.html.value


def test_every_button_of_the_panel_has_a_tooltip():
    import ipywidgets as w
    panel = PL330Panel(PL330(memory_size=1 << 20))
    buttons = [x for x in _widgets(panel.widget) if isinstance(x, (w.Button, w.ToggleButton))]
    assert {b.description for b in buttons} == {"Step", "Play", "Run to end", "Reset"}
    assert all(b.tooltip for b in buttons)
    assert not any(isinstance(x, w.Play) for x in _widgets(panel.widget))   # its buttons have none
    boxes = [x for x in _widgets(panel.widget) if isinstance(x, w.BoundedIntText)]
    assert boxes and all(x.tooltip for x in boxes)


def test_play_steps_until_nothing_is_left_and_still_keeps_the_moment():
    import asyncio
    dma = PL330(memory_size=1 << 24, events=8)
    program = memcpy_program(0x10000, 0x20000, 4096)
    dma.mem_write(0x1000, program)
    panel = PL330Panel(dma, step_cycles=100)
    panel.start(0, 0x1000)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        panel.play.value = True             # one Step now, the next ones on the event loop
        assert dma.cycles == 100 and panel.play.icon == "pause"
        still = panel.still()
        loop.run_until_complete(asyncio.sleep(0.2))
        assert dma.cycles == 200
        while panel.play.value:
            loop.run_until_complete(asyncio.sleep(0.16))
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    assert dma.thread(0).state_name == "stopped" and panel.play.icon == "play"
    assert "Still picture, at 100 cycles" in still.data and "0x00001" in still.data
