"""MSIs on the sim through the ITS and GICv2m models: the portable forging scenarios
(tests/scenarios.py, also run on the qemu board's real kernel), and what only the sim lets one
see: the ITS's command queue and tables, and its record of dropped writes."""
import pytest

import vfiolab

import scenarios


@pytest.fixture(params=["its", "v2m"])
def virt(request):
    with vfiolab.open_board("sim", gic=request.param, layout="virt",
                            allow_unsafe_interrupts=request.param == "v2m") as board:
        yield board


@pytest.mark.parametrize("scenario", scenarios.MSI_FORGING, ids=lambda f: f.__name__)
def test_msi_scenario(virt, scenario):
    scenario(virt, scenarios.edu(virt))


def its_queue(board):
    return board.interrupts.msi_chip.commands()


def test_the_its_runs_the_commands_linux_sends():
    with vfiolab.open_board("sim", gic="its", layout="virt") as b:
        boot = [("MAPC", {"icid": 0, "rdbase": 0, "valid": 1}), ("SYNC", {"rdbase": 0}),
                ("INVALL", {"icid": 0}), ("SYNC", {"rdbase": 0})]
        assert its_queue(b) == boot
        edu = scenarios.EduMsi(b, scenarios.edu(b))
        queue = its_queue(b)
        itt = queue[4][1]["itt"]
        assert queue[4:] == [("MAPD", {"device_id": 8, "size": 0, "itt": itt, "valid": 1}),
                             ("MAPTI", {"device_id": 8, "event_id": 0, "intid": 8192, "icid": 0}),
                             ("SYNC", {"rdbase": 0}), ("INV", {"device_id": 8, "event_id": 0}),
                             ("SYNC", {"rdbase": 0})]
        # The ITE is in the ITT in memory: valid, physical, LPI 8192, collection 0.
        assert b.interrupts.its.mem_read(itt, 12) == (8192 << 2 | 3).to_bytes(8, "little") + \
            (1023).to_bytes(4, "little")
        assert b.interrupts.msi_chip.mappings() == [(8, 0, 8192, 0, 0)]
        edu.close()
        assert b.interrupts.msi_chip.mappings() == []
        assert its_queue(b)[9:] == [("DISCARD", {"device_id": 8, "event_id": 0}), ("SYNC", {"rdbase": 0}),
                                    ("MAPD", {"device_id": 8, "size": 0, "itt": 0, "valid": 0})]
        assert "vfio-msi" not in b.sysfs_read("/proc/interrupts")


def test_a_forged_write_on_the_its_is_dropped_and_recorded():
    with vfiolab.open_board("sim", gic="its", layout="virt") as b:
        edu = scenarios.EduMsi(b, scenarios.edu(b))
        address, _ = scenarios.msi_message(b, scenarios.edu(b))
        b.interrupts.msi_chip.log.clear()
        edu.write_by_dma(address, 5)
        drops = [r for r in b.interrupts.msi_chip.log if r.kind == "dropped"]
        assert [(r.device_id, r.event_id, r.code) for r in drops] == [(8, 5, 4)]   # EventID beyond the ITT
        edu.close()


def test_proc_interrupts_is_formatted_as_linux_prints_it():
    with vfiolab.open_board("sim", gic="its", layout="virt") as b:
        edu = scenarios.EduMsi(b, scenarios.edu(b))
        edu.regs.write32(0x60, 1)
        assert edu.msis(0) == 1
        lines = b.sysfs_read("/proc/interrupts").splitlines()
        assert lines[0] == "           CPU0       "
        assert "  3:          1   ITS-MSI 16384 Edge      vfio-msi[0](0000:00:01.0)" in lines
        assert "  1:          0     GICv3 106 Edge      arm-smmu-v3-evtq" in lines
        assert lines[-2:] == ["IPI6:         0       CPU wake-up interrupts", "Err:          0"]
        edu.close()
    with vfiolab.open_board("sim", gic="v2m", layout="virt", allow_unsafe_interrupts=True) as b:
        edu = scenarios.EduMsi(b, scenarios.edu(b))
        lines = b.sysfs_read("/proc/interrupts").splitlines()
        assert "  3:          0       MSI 16384 Edge      vfio-msi[0](0000:00:01.0)" in lines
        assert "  1:          0     GICv2 106 Edge      arm-smmu-v3-evtq" in lines
        edu.close()


def test_the_queue_wraps_and_commands_shows_the_latest():
    from vfiolab.hw.gic import its_command
    with vfiolab.open_board("sim", gic="its", layout="virt") as b:
        chip = b.interrupts.msi_chip
        for i in range(2100):
            chip.send(its_command("SYNC", rdbase=0) if i % 2 else its_command("INVALL", icid=0))
        commands = chip.commands()
        assert len(commands) == 2048 and commands[-1] == ("SYNC", {"rdbase": 0})
        assert commands[-2] == ("INVALL", {"icid": 0})


def test_each_smmu_event_counts_on_the_event_queue_interrupt():
    with vfiolab.open_board("sim", gic="its", layout="virt") as b:
        port = b.model("0000:00:01.0").port
        before = scenarios.proc_interrupts(b)[scenarios.SMMU_EVTQ][0]
        port.dma_write(0x900000, b"x")                     # no domain yet: an SMMU event
        port.dma_read(0x900000, 4)
        assert scenarios.proc_interrupts(b)[scenarios.SMMU_EVTQ][0] == before + 2
