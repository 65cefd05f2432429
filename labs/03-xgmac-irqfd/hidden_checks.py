"""Lab 03's hidden checks: the instructor's only (vfiolab release leaves this file out)."""
from checks import (CONTROL_BITS, ICFGR_CASES, LOOPBACK_FRAMES, OSF, RESET_CASES, bind_hint,
                    icfgr_hint, irqfd_hint, loopback_hint, reset_hint)
from vfiolab.grading import check, expect, expect_equal

BUS_MODE = 0xF00


@check("ex1-leaves-the-rest", points=2, hidden=True)
def reset_leaves_the_rest(seen):
    """The reset keeps loopback, OSF, the descriptor bases and the MAC address, and never soft-resets."""
    for r, (name, control, dma_control, _) in zip(seen["reset"], RESET_CASES):
        hint = reset_hint(r)
        expect(hint is None, hint)
        expect_equal(r["control"] & CONTROL_BITS, control & CONTROL_BITS,
                     f"CONTROL's loopback bit after resetting the {name} xgmac")
        expect_equal(r["dma_control"] & OSF, dma_control & OSF,
                     f"DMA_CONTROL's OSF bit after resetting the {name} xgmac")
        expect(not any(offset == BUS_MODE and value & 1 for offset, value in r["writes"]),
               "the reset wrote DMA_BUS_MODE's soft-reset bit: Linux's module does not (it would "
               "clear every register, the descriptor bases and the MAC address too)")
        expect((r["rx_base"], r["tx_base"]) == (0x1000, 0x3000) and r["address_kept"],
               f"resetting the {name} xgmac changed the descriptor bases or the MAC address")


@check("ex1-any-state", points=1, hidden=True)
def reset_any_state(seen):
    """The reset stops the xgmac whatever it was doing (receiving only, or idle)."""
    for r in seen["reset"][1:]:
        hint = reset_hint(r)
        expect(hint is None, hint)
        expect(r["intr_ena"] == 0 and not r["dma_control"] & 0x2002 and not r["control"] & 0xC,
               f"the {r['case']} xgmac is not stopped after your reset")
        expect(not r["frame_taken"], f"the {r['case']} xgmac still takes frames after your reset")


@check("ex2-no-reset-flag", points=1, hidden=True)
def no_reset_flag(seen):
    """bind_without_reset returns VFIO's real device flags: PLATFORM, no RESET."""
    case = seen["bind"][0]
    hint = bind_hint(case)
    expect(hint is None, hint)
    expect_equal(case["flags"], 0x4, "the flags VFIO reports (VFIO_DEVICE_FLAGS_PLATFORM alone)")
    expect(case["returned"] == [case["flags"]], f"bind_without_reset returned {case['returned']}, "
           f"not the device's flags 0x{case['flags']:x}")


@check("ex2-twice-and-6.18", points=1, hidden=True)
def twice_and_618(seen):
    """bind_without_reset works called twice on one board, and on 6.18."""
    for case in seen["bind"][1:]:
        hint = bind_hint(case)
        expect(hint is None, hint)
        expect(all(r == 0x4 for r in case["returned"]), f"on {case['kernel']} bind_without_reset "
               f"returned {case['returned']}")


@check("ex3-every-length", points=2, hidden=True)
def every_length(seen):
    """loopback carries 60- to 1514-byte frames, around the ring and back."""
    runs = seen["loopback"]
    expect(len(runs) == len(LOOPBACK_FRAMES), "loopback stopped working part way through our frames")
    for r in runs:
        hint = loopback_hint(r)
        expect(hint is None, hint)


@check("ex3-descriptors-back", points=1, hidden=True)
def descriptors_back(seen):
    """Every RX descriptor the device used is handed back (OWN clear) with length + FCS."""
    for r in seen["loopback"]:
        hint = loopback_hint(r)
        expect(hint is None, hint)
        expect(not r["rx_own"], f"after the {r['length']}-byte frame its RX descriptor is "
               "still device-owned")
        expect_equal(r["rx_length"], r["length"] + 4, "the RX descriptor's frame length")


@check("ex4-every-frame", points=1, hidden=True)
def every_frame(seen):
    """With the unmask eventfd, no frame of ours is lost to a masked line."""
    for r in seen["loopback"]:
        hint = loopback_hint(r)
        expect(hint is None, hint)
        expect(not r["masked"], f"VFIO masks the line after the {r['length']}-byte frame")


@check("ex5-three-rounds", points=2, hidden=True)
def three_rounds(seen):
    """Three interrupts in a row reach the guest, each unmasked by its EOI, none read by user space."""
    rounds = seen["irqfd"]
    expect(len(rounds) == 3, "the interrupts stopped reaching the guest")
    for n, r in enumerate(rounds, 1):
        hint = irqfd_hint(r)
        expect(hint is None, f"round {n}: {hint}")
        expect(not r["trigger_unread"], f"round {n}: a count waits on the trigger eventfd")


@check("ex6-other-interrupts", points=2, hidden=True)
def other_interrupts(seen):
    """level_icfgr is right for every SPI of the register, and changes nothing else."""
    for i in range(1, len(ICFGR_CASES)):
        hint = icfgr_hint(seen, i)
        expect(hint is None, hint)


@check("ex6-register-in-the-guest", points=1, hidden=True)
def register_in_the_guest(seen):
    """The guest's distributor holds exactly the value level_icfgr gave (read through KVM)."""
    run = seen["icfgr"]["run"]
    expect(run is not None, "no value to try")
    expect_equal(run[-1]["icfgr2"], seen["icfgr"]["values"][0], "GICD_ICFGR2 in the vGIC")
