"""One wrong answer per lab, and the hint its check must show in the page.

The browser test types `source` into the answer cell `answer` (after Run All with the right
answers), runs the cells from there through the check cell `check`, and reads `hint` in the page.
A lab missing here is still covered: its first exercise is run unanswered (the prompt as
released), and its check must show a failing hint.
"""

WRONG_ANSWERS = {
    "01-platform-bus": {
        "answer": "ex1-answer",
        "check": "ex1",
        # The device-tree node where the sysfs device name belongs: a classic first mistake.
        "source": 'gpio_dev = plat.of_node(board, plat.find_by_compatible(board, "arm,pl061")[0])\n'
                  'primecells = plat.find_by_compatible(board, "arm,primecell")\n'
                  "print(gpio_dev, primecells)",
        "hint": "that is the device-tree node; give the device's name",
    },
    "02-vfio-pl330": {
        "answer": "ex5-answer",
        "check": "ex5",
        # One DMASTZ short: the last byte of the area keeps its 0xFF.
        "source": "def fill_microcode(dst, length):\n"
                  '    lines = [f"DMAMOV DAR, {dst:#x}", "DMAMOV CCR, DB1 DS8"]\n'
                  '    lines += loop_lines(length - 1, ["DMASTZ"])\n'
                  '    return assemble("\\n".join(lines + [f"DMASEV E{EVENT}", "DMAEND"]))',
        "hint": "first difference at byte 1002 (0x3ea): observed 0xff, expected 0x00",
    },
    "03-xgmac-irqfd": {
        "answer": "ex1-answer",
        "check": "ex1",
        # The transmitter stopped but the receiver forgotten: the MAC keeps taking frames.
        "source": "def calxeda_reset(regs):\n"
                  "    regs.write32(X.DMA_INTR_ENA, 0)\n"
                  "    regs.write32(X.DMA_CONTROL, regs.read32(X.DMA_CONTROL) & ~(X.DMA_CONTROL_ST | X.DMA_CONTROL_SR))\n"
                  "    regs.write32(X.CONTROL, regs.read32(X.CONTROL) & ~X.CONTROL_TE)",
        "hint": "CONTROL is 0x1004 after the reset: TE (0x8) and RE (0x4) must be clear",
    },
    "04-msi-its": {
        "answer": "ex6-answer",
        "check": "ex6",
        # The ITS taken for a GICv2m: the data read as the LPI to raise, not as an EventID.
        "source": "def its_predict(mappings, device_id, value):\n"
                  "    return value if any(lpi == value for _, _, lpi, _, _ in mappings) else None",
        "hint": "gave None, but the ITS delivered LPI 8192: the data is only an EventID",
    },
}
