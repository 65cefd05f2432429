"""Public checks of Lab 01 (learners receive this file): observers, then checks.

Everything is judged on board state: sysfs, driver links, IOMMU groups. Functions you write are
also tried on fresh sim boards, so they must work on any board and any device, not only on yours.
"""
import os

import vfiolab
from vfiolab import platform as plat
from vfiolab.grading import Fail, check, expect, expect_equal, observe, real_board

PREDICT_DTS = "predict.dts"
# Node paths under /axi: the first two have public checks, the rest hidden ones.
PREDICT_NODES = ["dma-controller@fd500000", "lpd/ethernet@e0000", "watchdog@fd4d0000",
                 "lpd/serial@10000", "sram@fffc0000"]
# The driver Linux binds at boot, by what the device is (DT compatible, or PCI vendor:device).
HOST_DRIVER = {"arm,pl330": "dma-pl330", "arm,pl011": "uart-pl011", "arm,pl061": "pl061_gpio",
               "calxeda,hb-xgmac": "calxedaxgmac", "1234:11e8": None}


def _sim():
    return vfiolab.open_board("sim")


def _attempt(function, *args):
    """{"value": ...} or {"error": "..."}: what a learner's function did."""
    try:
        return {"value": function(*args)}
    except NotImplementedError:
        return {"error": "NotImplementedError: it is not written yet"}
    except Exception as e:  # noqa: BLE001 - any failure becomes a hint
        return {"error": f"{type(e).__name__}: {e}"}


def _as_list(value):
    return sorted(value) if isinstance(value, (list, tuple, set)) else value


# --- observers ------------------------------------------------------------------------------------
@observe("gpio_dev")
def observe_gpio(ns):
    board = real_board(ns)
    return {"answer": ns["gpio_dev"], "truth": plat.find_by_compatible(board, "arm,pl061")}


@observe("primecells")
def observe_primecells(ns):
    board = real_board(ns)
    return {"answer": _as_list(ns["primecells"]), "truth": plat.find_by_compatible(board, "arm,primecell")}


@observe("predicted")
def observe_predicted(ns):
    predicted = ns["predicted"]
    if not isinstance(predicted, dict):
        raise TypeError(f"predicted is a {type(predicted).__name__}, not a dict")
    if not os.path.exists(PREDICT_DTS):
        raise FileNotFoundError(f"{PREDICT_DTS} is not in {os.getcwd()}: run the notebook from its lab folder")
    with vfiolab.open_board("sim", dts=PREDICT_DTS) as sim:      # Linux's verdict on the snippet
        truth = {node: plat.device_for_node(sim, f"/axi/{node}") for node in PREDICT_NODES}
    answer = {node: (list(v) if isinstance(v, (tuple, list)) else v) for node, v in predicted.items()}
    return {"answer": answer, "truth": {n: (list(v) if v else None) for n, v in truth.items()}}


@observe("dma_dev")
def observe_dma_dev(ns):
    board = real_board(ns)
    dev = ns["dma_dev"]
    bus = plat.bus_of(board, dev)
    info = plat.describe(board, dev)
    return {"device": dev, "bus": bus, "driver": info["driver"], "override": info["driver_override"],
            "what": info.get("pci_id") or next((c for c in info["compatible"] if c in HOST_DRIVER), None)}


@observe("host_driver")
def observe_host_driver(ns):
    board = real_board(ns)
    host = ns["host_driver"]
    bus = plat.bus_of(board, ns["dma_dev"])
    return {"host_driver": host,
            "registered": host in board.listdir(f"/sys/bus/{bus}/drivers") if isinstance(host, str) else None}


@observe("give_to_vfio")
def observe_give_to_vfio(ns):
    """The learner's give_to_vfio() on a fresh sim board: a platform device, and an unbound PCI one."""
    give = ns["give_to_vfio"]
    out = {}
    with _sim() as sim:
        for dev in ("fff50000.ethernet", "0000:00:02.0"):
            result = _attempt(give, sim, dev)
            result["driver"] = plat.driver_of(sim, dev)
            result["override"] = plat.driver_override(sim, dev)
            out[dev] = result
    return out


@observe("groups")
def observe_groups(ns):
    board = real_board(ns)
    group = ns["shared_group"]
    return {"shared_group": group, "members": _as_list(ns["members"]),
            "truth": plat.group_devices(board, group) if group is not None else []}


@observe("dma_group")
def observe_dma_group(ns):
    board = real_board(ns)
    return {"answer": ns["dma_group"], "truth": plat.iommu_group(board, ns["dma_dev"])}


@observe("blockers")
def observe_blockers(ns):
    """The learner's blockers() on fresh sim boards, in the states the lab walks through."""
    blockers = ns["blockers"]
    out = {}
    with _sim() as sim:
        out["untouched"] = _attempt(blockers, sim, 2)
        out["pl330 group"] = _attempt(blockers, sim, 0)
        plat.bind_to_vfio(sim, "1c090000.serial")
        out["serial on vfio"] = _attempt(blockers, sim, 2)
        sim.sysfs_write("/sys/bus/amba/devices/1c1d0000.gpio/driver/unbind", "1c1d0000.gpio")
        out["gpio unbound"] = _attempt(blockers, sim, 2)
    for state in out.values():
        if "value" in state:
            state["value"] = _as_list(state["value"])
    return out


@observe("shared_state")
def observe_shared_state(ns):
    """The shared group on the learner's board: drivers, overrides, and the kernel's own verdict."""
    board = real_board(ns)
    group = ns["shared_group"]
    if group is None:
        return {"group": None}
    members = {}
    for dev in plat.group_devices(board, group):
        bus = plat.bus_of(board, dev)
        members[dev] = {"driver": plat.driver_of(board, dev),
                        "override": board.sysfs_read(f"/sys/bus/{bus}/devices/{dev}/driver_override").strip()}
    kernel = None
    if str(group) in board.listdir("/dev/vfio"):
        from vfiolab.vfio import Group
        try:
            with Group(board, group) as g:
                kernel = g.viable
        except OSError as e:
            kernel = f"{type(e).__name__}: {e}"
    return {"group": group, "members": members, "kernel_viable": kernel}


# --- checks ---------------------------------------------------------------------------------------
def _value(result, what):
    if "error" in result:
        raise Fail(f"{what} raised {result['error']}")
    return result["value"]


@check("ex1-gpio", points=1)
def found_gpio(seen):
    """gpio_dev is the sysfs name of the device compatible with "arm,pl061"."""
    s = seen["gpio_dev"]
    answer = s["answer"]
    expect(isinstance(answer, str), f"gpio_dev is {answer!r}: give one device name, a str like the "
           "names in /sys/bus/amba/devices")
    if answer in s["truth"]:
        return
    if "@" in answer or answer.startswith("/"):
        raise Fail(f"gpio_dev is {answer!r}: that is the device-tree node; give the device's name, as "
                   "/sys/bus/<bus>/devices lists it")
    raise Fail(f"gpio_dev is {answer!r}, but that device's of_node/compatible does not list \"arm,pl061\"")


@check("ex2-dma-and-ethernet", points=2)
def predicted_two(seen):
    """predicted names the PL330 and the GEM ethernet node's devices, bus and name."""
    s = seen["predicted"]
    for node in PREDICT_NODES[:2]:
        expect(node in s["answer"], f"predicted has no entry for {node!r}")
        got, want = s["answer"][node], s["truth"][node]
        if got != want:
            raise Fail(f"predicted[{node!r}] is {tuple(got) if isinstance(got, list) else got!r}; "
                       "the kernel disagrees: check the bus (what decides amba or platform?) and the "
                       "name (the CPU address of the first reg entry, through every parent bus's "
                       "ranges, in hex; a dot; the node name without @...)")


@check("ex3-bound", points=2)
def dma_dev_on_vfio(seen):
    """dma_dev is bound to its bus's VFIO driver, with driver_override set to it."""
    s = seen["dma_dev"]
    want = plat.VFIO_DRIVER[s["bus"]]
    expect_equal(s["driver"], want, f"the driver of {s['device']} (on the {s['bus']} bus)")
    expect_equal(s["override"], want, f"{s['device']}/driver_override (so a reprobe keeps it on VFIO)")


@check("ex3-host-driver", points=1)
def host_driver_kept(seen):
    """host_driver names the driver dma_dev had before, and that driver is still there to take it back."""
    s, h = seen["dma_dev"], seen["host_driver"]
    want = HOST_DRIVER.get(s["what"], h["host_driver"])
    expect_equal(h["host_driver"], want, "host_driver (what give_to_vfio returned for dma_dev)")
    if want is not None:
        expect(h["registered"], f"{want} is no longer registered in /sys/bus/{s['bus']}/drivers")


@check("ex4-members", points=1)
def group_members(seen):
    """members lists every device of shared_group, read from sysfs."""
    s = seen["groups"]
    expect(isinstance(s["members"], list), f"members is {s['members']!r}: give a list of device names")
    if s["members"] != s["truth"]:
        raise Fail(f"members is {s['members']!r}, but /sys/kernel/iommu_groups/{s['shared_group']}/devices "
                   f"holds {len(s['truth'])} device(s), and not these")


@check("ex5-blockers", points=1)
def blockers_named(seen):
    """blockers(board, group) names the devices a host driver holds, as the group changes."""
    s = seen["blockers"]
    expect_equal(_value(s["untouched"], "blockers(sim, 2)"), ["1c090000.serial", "1c1d0000.gpio"],
                 "blockers(sim, 2) on a freshly booted sim board")
    expect_equal(_value(s["serial on vfio"], "blockers(sim, 2)"), ["1c1d0000.gpio"],
                 "blockers(sim, 2) once the UART is on vfio-amba")


@check("ex5-viable", points=2)
def shared_group_viable(seen):
    """shared_group is viable: each device on a VFIO driver with driver_override set; the kernel agrees."""
    s = seen["shared_state"]
    expect(s["group"] is not None, "shared_group is None: no IOMMU group on this board yet")
    for dev, m in s["members"].items():
        if not (m["driver"] and plat.is_vfio_driver(m["driver"])):
            raise Fail(f"{dev} is held by {m['driver'] or 'no driver'}: give it to VFIO too")
        expect_equal(m["override"], m["driver"], f"{dev}/driver_override")
    expect(s["kernel_viable"] is True, f"VFIO_GROUP_GET_STATUS on /dev/vfio/{s['group']} does not say "
           f"VIABLE (got {s['kernel_viable']!r})")
