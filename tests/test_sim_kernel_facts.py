"""Kernel facts the sim's platform/amba/IOMMU model rests on, each as Linux has it (REFERENCE.md 13):

- of_device_make_bus_id (drivers/of/platform.c): names from reg translated through every parent's
  `ranges` (of_translate_address); a node without a translatable reg keeps name@unit;
- amba_match (drivers/amba/bus.c): drivers match the peripheral ID (masked) from their id_table,
  not compatible; the amba device attributes, resource line format and uevent;
- vfio-amba exposes one region (adev->res);
- arm-smmu stream IDs are 16 bits (arm_smmu_of_xlate: FIELD_PREP(ARM_SMMU_SMR_ID, ...)).
"""
import ctypes
import os

import pytest

import vfiolab
from vfiolab import platform as plat
from vfiolab import uapi as U
from vfiolab.board.sim import LAYOUTS, devicetree
from vfiolab.board.sim.topology import Topology, bus_id

import scenarios

HEAD = """/dts-v1/;
/ {
    #address-cells = <2>; #size-cells = <2>;
    interrupt-parent = <&gic>;
    gic: interrupt-controller@2f000000 {
        compatible = "arm,gic-v3"; #interrupt-cells = <3>; interrupt-controller;
        reg = <0x0 0x2f000000 0x0 0x10000>, <0x0 0x2f100000 0x0 0x200000>;
    };
    smmu: iommu@2b400000 {
        compatible = "arm,mmu-500", "arm,smmu-v2"; reg = <0x0 0x2b400000 0x0 0x10000>;
        #global-interrupts = <1>; interrupts = <0 40 4>, <0 41 4>; #iommu-cells = <1>;
    };
"""


def boot(tmp_path, body):
    path = tmp_path / "board.dts"
    path.write_text(HEAD + body + "\n};\n")
    return vfiolab.open_board("sim", dts=str(path))


def names(text):
    return [d.name for d in Topology(devicetree.parse(HEAD + text + "\n};\n")).devices]


# --- device names ---------------------------------------------------------------------------------
def test_names_translate_reg_through_every_parents_ranges():
    got = names("""
    motherboard {
        compatible = "simple-bus"; #address-cells = <1>; #size-cells = <1>;
        ranges = <0x0 0x0 0x1c000000 0x1000000>;
        uart@90000 { compatible = "arm,pl011", "arm,primecell"; reg = <0x90000 0x1000>; };
        iofpga@300000 {
            compatible = "simple-bus"; #address-cells = <1>; #size-cells = <1>;
            ranges = <0x0 0x300000 0x10000>;
            timer@2000 { compatible = "arm,sp804"; reg = <0x2000 0x1000>; };
        };
    };""")
    assert "1c090000.uart" in got            # the REFERENCE.md example: bus at 0x1c000000
    assert "1c302000.timer" in got           # two levels of ranges
    assert "90000.uart" not in got and "2000.timer" not in got


def test_a_node_without_translatable_reg_keeps_its_full_name():
    got = names("""
    soc@0 {
        compatible = "simple-bus"; #address-cells = <1>; #size-cells = <1>; ranges;
        firmware { compatible = "raspberrypi,bcm2835-firmware"; };
    };
    island {
        compatible = "simple-bus"; #address-cells = <1>; #size-cells = <1>;
        sensor@40 { compatible = "vendor,sensor"; reg = <0x40 0x10>; };
    };""")
    # soc@0 has no reg: its full name, with @unit; firmware below it: "<parent>:<name>".
    assert got[1:3] == ["soc@0", "soc@0:firmware"]
    # island has no `ranges`: sensor@40's reg cannot be translated (OF_BAD_ADDR), so the name is
    # built from node names, with the unit address kept.
    assert got[3:] == ["island", "island:sensor@40"]


def test_an_address_no_range_covers_is_not_translated():
    root = devicetree.parse(HEAD + """
    bus { compatible = "simple-bus"; #address-cells = <1>; #size-cells = <1>;
          ranges = <0x0 0x0 0x10000000 0x1000>;
          in@800 { reg = <0x800 0x10>; }; out@2000 { reg = <0x2000 0x10>; }; };
    };""")
    bus = root.child("bus")
    assert bus.child("in@800").translate(0x800) == 0x10000800
    assert bus.child("out@2000").translate(0x2000) is None
    assert bus_id(bus.child("out@2000")) == "bus:out@2000"


# --- amba: matched by peripheral ID ---------------------------------------------------------------
def test_amba_drivers_match_the_peripheral_id_not_compatible(tmp_path):
    with boot(tmp_path, """
    uart@1c090000 { compatible = "arm,pl011", "arm,primecell"; reg = <0x0 0x1c090000 0x0 0x1000>;
                    arm,primecell-periphid = <0x00041061>; };
    uart@1c0a0000 { compatible = "arm,pl011", "arm,primecell"; reg = <0x0 0x1c0a0000 0x0 0x1000>;
                    arm,primecell-periphid = <0x00f41011>; };
    dma@2c0a0000 { compatible = "arm,pl330", "arm,primecell"; reg = <0x0 0x2c0a0000 0x0 0x1000>;
                   arm,primecell-periphid = <0x00041999>; };
    uart@1c0b0000 { compatible = "arm,pl011", "arm,primecell"; reg = <0x0 0x1c0b0000 0x0 0x1000>; };
    """) as board:
        # compatible says PL011, the peripheral ID says PL061: the GPIO driver takes it.
        assert plat.driver_of(board, "1c090000.uart") == "pl061_gpio"
        # pl011's table entry is {0x00041011, mask 0x000fffff}: revision bits [23:20] are ignored.
        assert plat.driver_of(board, "1c0a0000.uart") == "uart-pl011"
        # a part number no driver lists: no driver, compatible notwithstanding.
        assert plat.driver_of(board, "2c0a0000.dma") is None
        # no DT override: the ID registers are read (the model's PL011 reads 0x00341011).
        assert plat.driver_of(board, "1c0b0000.uart") == "uart-pl011"
        assert board.sysfs_read("/sys/bus/amba/devices/1c0b0000.uart/id") == "00341011\n"


def test_amba_sysfs_is_the_kernels(tmp_path):
    board = vfiolab.open_board("sim")
    dma = "/sys/bus/amba/devices/2c0a0000.dma"
    files = board.listdir(dma)
    assert {"id", "resource", "driver_override", "uevent"} <= set(files)
    assert "modalias" not in files                          # amba_dev_attrs has none
    assert board.sysfs_read(f"{dma}/id") == "00241330\n"
    assert board.sysfs_read(f"{dma}/resource") == \
        "\t000000002c0a0000\t000000002c0a0fff\t0000000000000200\n"
    uevent = board.sysfs_read(f"{dma}/uevent").splitlines()
    assert uevent[-2:] == ["AMBA_ID=00241330", "MODALIAS=amba:d00241330"]
    assert "modalias" in board.listdir("/sys/bus/platform/devices/fff50000.ethernet")


def test_vfio_amba_exposes_exactly_one_region(tmp_path):
    with boot(tmp_path, """
    uart@1c090000 { compatible = "arm,pl011", "arm,primecell";
                    reg = <0x0 0x1c090000 0x0 0x1000>, <0x0 0x1c0a0000 0x0 0x1000>;
                    interrupts = <0 5 4>; iommus = <&smmu 0x7>; };
    """) as board:
        target = scenarios.Target("amba", "1c090000.uart", "vfio-amba")
        with scenarios.Session(board, target) as s:
            info = U.vfio_device_info()
            board.ioctl(s.device, U.VFIO_DEVICE_GET_INFO, info)
            assert info.flags & U.VFIO_DEVICE_FLAGS_AMBA
            assert (info.num_regions, info.num_irqs) == (1, 1)


# --- arm-smmu stream IDs --------------------------------------------------------------------------
def test_mmu500_stream_ids_fit_16_bits():
    topo = Topology(devicetree.load(LAYOUTS["fvp"]))
    streams = {d.name: d.stream for d in topo.devices if d.stream is not None}
    assert streams and all(s <= 0xFFFF for s in streams.values()), streams
    assert streams["0000:00:01.0"] == 0x1008


def test_a_stream_id_above_16_bits_is_cut_as_arm_smmu_of_xlate_does():
    topo = Topology(devicetree.parse(HEAD + """
    a@10000000 { compatible = "vendor,a"; reg = <0x0 0x10000000 0x0 0x1000>; iommus = <&smmu 0x10008>; };
    b@10001000 { compatible = "vendor,b"; reg = <0x0 0x10001000 0x0 0x1000>; iommus = <&smmu 0x8>; };
    };"""))
    a, b = topo.device("platform", "10000000.a"), topo.device("platform", "10001000.b")
    assert a.stream == b.stream == 0x8 and a.group is b.group


# --- group viability ------------------------------------------------------------------------------
def test_viability_counts_drivers_that_claim_dma_not_non_vfio_drivers():
    """iommu_group_dma_owner_claimed: a driver_managed_dma driver (pci-stub on Linux) leaves the
    group viable although it is no VFIO driver; a host driver that uses the DMA API does not."""
    from vfiolab.vfio import Container, Group
    board = vfiolab.open_board("sim")
    plat.bind_to_vfio(board, "1c090000.serial")
    with Group(board, 2) as group:
        assert not group.viable                              # pl061_gpio uses the DMA API
    board.drivers.driver("amba", "pl061_gpio").driver_managed_dma = True   # as pci-stub declares
    with Group(board, 2) as group, Container(board) as container:
        assert group.viable
        group.set_container(container)                       # and the kernel lets VFIO take it
        group.unset_container()
