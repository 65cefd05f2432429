"""Hidden checks of Lab 01: the instructor's only; `vfiolab release` leaves this file out."""
from checks import PREDICT_NODES  # checks.py is importable as "checks" from here
from vfiolab.grading import Fail, check, expect, expect_equal


def _value(result, what):
    if "error" in result:
        raise Fail(f"{what} raised {result['error']}")
    return result["value"]


@check("ex1-every-primecell", points=1, hidden=True)
def every_primecell(seen):
    """primecells holds every device compatible with "arm,primecell", and nothing else."""
    s = seen["primecells"]
    expect(isinstance(s["answer"], list), f"primecells is {s['answer']!r}, not a list of names")
    expect_equal(s["answer"], sorted(s["truth"]), "sorted(primecells)")


@check("ex2-no-device-and-two-regs", points=2, hidden=True)
def predicted_rest(seen):
    """predicted is right for the two-reg watchdog, the disabled UART and the node without compatible."""
    s = seen["predicted"]
    for node in PREDICT_NODES[2:]:
        expect(node in s["answer"], f"predicted has no entry for {node!r}")
        expect_equal(s["answer"][node], s["truth"][node], f"predicted[{node!r}]")


@check("ex3-any-bus", points=1, hidden=True)
def give_platform_device(seen):
    """give_to_vfio moves a platform device (xgmac) to vfio-platform and returns its host driver."""
    s = seen["give_to_vfio"]["fff50000.ethernet"]
    expect_equal(_value(s, "give_to_vfio(sim, 'fff50000.ethernet')"), "calxedaxgmac",
                 "what give_to_vfio returned for the xgmac")
    expect_equal(s["driver"], "vfio-platform", "the xgmac's driver afterwards")
    expect_equal(s["override"], "vfio-platform", "the xgmac's driver_override afterwards")


@check("ex3-unbound-device", points=1, hidden=True)
def give_unbound_device(seen):
    """give_to_vfio takes a device no driver holds (nothing to unbind) and returns None."""
    s = seen["give_to_vfio"]["0000:00:02.0"]
    expect_equal(_value(s, "give_to_vfio(sim, '0000:00:02.0')"), None, "what it returned for an unbound edu")
    expect_equal(s["driver"], "vfio-pci", "the edu's driver afterwards")


@check("ex4-dma-group", points=1, hidden=True)
def dma_group(seen):
    """dma_group is the IOMMU group number of dma_dev, as an int."""
    s = seen["dma_group"]
    expect(isinstance(s["answer"], int), f"dma_group is {s['answer']!r}, not an int")
    expect_equal(s["answer"], s["truth"], "dma_group")


@check("ex5-unbound-and-single", points=1, hidden=True)
def blockers_edge_cases(seen):
    """A device with no driver does not block; the PL330's group is blocked by dma-pl330 alone."""
    s = seen["blockers"]
    expect_equal(_value(s["gpio unbound"], "blockers(sim, 2)"), [],
                 "blockers(sim, 2) with the UART on vfio-amba and the GPIO unbound")
    expect_equal(_value(s["pl330 group"], "blockers(sim, 0)"), ["2c0a0000.dma"], "blockers(sim, 0)")
