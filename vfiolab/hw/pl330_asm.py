"""PL330 (DMA-330) microcode: an assembler and a disassembler with the TRM's mnemonics.

Syntax, one instruction per line; `;`, `#` and `//` start comments; `name:` defines a label; a
leading address (`0x00000010:`, as the disassembler prints) is accepted and ignored.

    DMAMOV CCR, SB16 SS64 SAI DB16 DS64 DAI      fields default to SB1 SS8 SAI SP0 SC0 ... ES8
    DMAMOV SAR, 0x1000        DMAMOV DAR, label   DMAMOV CCR, 0x00804201 (a raw value)
    DMALP 16                  DMALP LC1, 256      the counter is chosen when left out
    DMALD / DMALDS / DMALDB   DMAST / DMASTS / DMASTB   DMASTZ
    DMALPEND                  ends the innermost open loop (or: DMALPEND LC0, label|address)
    DMALPFE ... DMALPEND      a loop that runs until the peripheral's last request
    DMALDPS P0  DMALDPB P0  DMASTPS P0  DMASTPB P0  DMAFLUSHP P0  DMAWFP P0, single|burst|periph
    DMASEV E0   DMAWFE E0[, invalid]   DMAADDH SAR, 64   DMAADNH DAR, -64
    DMAGO C0, 0x1000[, ns]    DMAEND  DMAKILL  DMANOP  DMARMB  DMAWMB
    .byte 0x06, 0x2a          raw bytes (the disassembler prints these for undefined encodings)

assemble(text, base=0) -> bytes; disassemble(code, base=0) -> text, one line per instruction with
its address; assemble(disassemble(x)) == x for every byte string x.
"""
import re

__all__ = ["assemble", "disassemble", "AsmError", "ccr_value", "ccr_text", "instruction_length"]


class AsmError(ValueError):
    """Bad assembler input; .line is the 1-based line number."""

    def __init__(self, line, message):
        super().__init__(f"line {line}: {message}")
        self.line = line


ONE_BYTE = {"DMAEND": 0x00, "DMAKILL": 0x01, "DMALD": 0x04, "DMALDS": 0x05, "DMALDB": 0x07,
            "DMAST": 0x08, "DMASTS": 0x09, "DMASTB": 0x0B, "DMASTZ": 0x0C, "DMARMB": 0x12,
            "DMAWMB": 0x13, "DMANOP": 0x18}
ONE_BYTE_NAME = {v: k for k, v in ONE_BYTE.items()}
PERIPH_OPS = {"DMALDPS": 0x25, "DMALDPB": 0x27, "DMASTPS": 0x29, "DMASTPB": 0x2B,
              "DMAFLUSHP": 0x35}
PERIPH_NAME = {v: k for k, v in PERIPH_OPS.items()}
WFP_KIND = {"single": 0x30, "periph": 0x31, "burst": 0x32}
WFP_NAME = {v: k for k, v in WFP_KIND.items()}

# CCR fields: (token prefix, shift, bits, value -> token text, token text -> value)
SIZES = [8, 16, 32, 64, 128, 256, 512, 1024]


def _ccr_fields():
    return [
        ("SA", 0, 1), ("SS", 1, 3), ("SB", 4, 4), ("SP", 8, 3), ("SC", 11, 3),
        ("DA", 14, 1), ("DS", 15, 3), ("DB", 18, 4), ("DP", 22, 3), ("DC", 25, 3), ("ES", 28, 3),
    ]


CCR_DEFAULT = {"SA": 1, "SS": 0, "SB": 0, "SP": 0, "SC": 0, "DA": 1, "DS": 0, "DB": 0, "DP": 0,
               "DC": 0, "ES": 0}


def ccr_text(value):
    """CCR as tokens (SB16 SS64 SAI ...), or hex when a reserved bit is set."""
    if value & 0x80000000:
        return f"0x{value:08x}"
    parts = []
    for name, shift, bits in _ccr_fields():
        field = (value >> shift) & ((1 << bits) - 1)
        if name in ("SA", "DA"):
            parts.append(name + ("I" if field else "F"))
        elif name in ("SS", "DS", "ES"):
            parts.append(f"{name}{SIZES[field]}")
        elif name in ("SB", "DB"):
            parts.append(f"{name}{field + 1}")
        else:
            parts.append(f"{name}{field}")
    return " ".join(parts)


def ccr_value(text, line=0):
    """Parse CCR tokens (any order, defaults for the rest) into the register value."""
    fields = dict(CCR_DEFAULT)
    for token in text.replace(",", " ").split():
        t = token.upper()
        m = re.fullmatch(r"(SA|DA)([IF])", t)
        if m:
            fields[m.group(1)] = m.group(2) == "I"
            continue
        m = re.fullmatch(r"(SS|DS|ES|SB|DB|SP|DP|SC|DC)(\d+)", t)
        if not m:
            raise AsmError(line, f"bad CCR field {token!r}")
        name, n = m.group(1), int(m.group(2))
        if name in ("SS", "DS", "ES"):
            if n not in SIZES:
                raise AsmError(line, f"{token}: sizes are 8, 16, 32, ... 1024 bits")
            fields[name] = SIZES.index(n)
        elif name in ("SB", "DB"):
            if not 1 <= n <= 16:
                raise AsmError(line, f"{token}: burst length is 1..16")
            fields[name] = n - 1
        else:
            if not 0 <= n <= 7:
                raise AsmError(line, f"{token}: 0..7")
            fields[name] = n
    value = 0
    for name, shift, bits in _ccr_fields():
        value |= int(fields[name]) << shift
    return value


def instruction_length(op):
    """Bytes in the instruction whose first byte is op; 0 when the encoding is undefined."""
    if op in ONE_BYTE_NAME:
        return 1
    if op in (0x20, 0x22, 0x34, 0x36) or op in PERIPH_NAME or op in WFP_NAME:
        return 2
    if op & 0xE8 == 0x28 and op & 3 != 2:
        return 2   # DMALPEND
    if op in (0x54, 0x56, 0x5C, 0x5E):
        return 3
    if op in (0xA0, 0xA2, 0xBC):
        return 6
    return 0


# ---------------------------------------------------------------- disassembler

def _decode(code, i, addr):
    """Text of the instruction at code[i], and its length; None when not a valid encoding."""
    op = code[i]
    n = instruction_length(op)
    if not n or i + n > len(code):
        return None
    b = code[i:i + n]
    if n == 1:
        return ONE_BYTE_NAME[op], 1
    if op in (0x20, 0x22):
        return f"DMALP LC{(op >> 1) & 1}, {b[1] + 1}", 2
    if op in PERIPH_NAME or op in WFP_NAME:
        if b[1] & 7:
            return None
        if op in WFP_NAME:
            return f"DMAWFP P{b[1] >> 3}, {WFP_NAME[op]}", 2
        return f"{PERIPH_NAME[op]} P{b[1] >> 3}", 2
    if op == 0x34:
        return (f"DMASEV E{b[1] >> 3}", 2) if not b[1] & 7 else None
    if op == 0x36:
        if b[1] & 5:
            return None
        return f"DMAWFE E{b[1] >> 3}" + (", invalid" if b[1] & 2 else ""), 2
    if n == 2:   # DMALPEND
        cond = {0: "", 1: "S", 3: "B"}[op & 3]
        forever = "" if op & 0x10 else " FE"
        return f"DMALPEND{cond}{forever} LC{(op >> 2) & 1}, 0x{(addr - b[1]) & 0xFFFFFFFF:08x}", 2
    if n == 3:
        imm = b[1] | b[2] << 8
        reg = "DAR" if op & 2 else "SAR"
        if op & 8:
            return f"DMAADNH {reg}, {imm - 0x10000}", 3
        return f"DMAADDH {reg}, {imm}", 3
    imm = int.from_bytes(b[2:6], "little")
    if op == 0xBC:
        if b[1] > 2:
            return None
        reg = ("SAR", "CCR", "DAR")[b[1]]
        if reg == "CCR":
            return f"DMAMOV CCR, {ccr_text(imm)}", 6
        return f"DMAMOV {reg}, 0x{imm:08x}", 6
    if b[1] >> 3:
        return None
    return f"DMAGO C{b[1]}, 0x{imm:08x}" + (", ns" if op & 2 else ""), 6


def disassemble(code, base=0):
    """Microcode bytes as text, one instruction per line with its address."""
    code = bytes(code)
    lines, i = [], 0
    while i < len(code):
        addr = (base + i) & 0xFFFFFFFF
        decoded = _decode(code, i, addr)
        if decoded is None:
            text, n = f".byte 0x{code[i]:02x}", 1
        else:
            text, n = decoded
        lines.append(f"0x{addr:08x}: {text}")
        i += n
    return "\n".join(lines) + ("\n" if lines else "")


# ---------------------------------------------------------------- assembler

_LABEL = re.compile(r"[A-Za-z_.][A-Za-z0-9_.]*$")


def _strip(line):
    for marker in (";", "//", "#"):
        cut = line.find(marker)
        if cut >= 0:
            line = line[:cut]
    return line.strip()


class _Line:
    def __init__(self, number, mnemonic, operands):
        self.number, self.mnemonic, self.operands = number, mnemonic, operands
        self.addr = 0


def _split_operands(text):
    return [p.strip() for p in text.split(",")] if text.strip() else []


def _parse(text):
    """Lines into (labels by name -> index into items, items)."""
    items, labels = [], {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = _strip(raw)
        while line:
            m = re.match(r"(0x[0-9A-Fa-f]+|\d+)\s*:\s*", line)   # an address prefix
            if m:
                line = line[m.end():]
                continue
            m = re.match(r"([A-Za-z_.][A-Za-z0-9_.]*)\s*:(?!:)\s*", line)
            if m:
                name = m.group(1)
                if name in labels:
                    raise AsmError(number, f"label {name!r} defined twice")
                labels[name] = len(items)
                line = line[m.end():]
                continue
            break
        if not line:
            continue
        mnemonic, _, rest = line.partition(" ")
        items.append(_Line(number, mnemonic.upper(), rest.strip()))
    return labels, items


def _number(text, line, labels_addr=None, lo=None, hi=None, what="value"):
    t = text.strip()
    if labels_addr is not None and _LABEL.match(t) and not re.fullmatch(r"-?\d.*", t):
        if t not in labels_addr:
            raise AsmError(line, f"unknown label {t!r}")
        value = labels_addr[t]
    else:
        try:
            value = int(t, 0)
        except ValueError:
            raise AsmError(line, f"bad {what} {text!r}") from None
    if lo is not None and not lo <= value <= hi:
        raise AsmError(line, f"{what} {value} out of range {lo}..{hi}")
    return value


def _indexed(text, prefix, line, limit, what):
    t = text.strip().upper()
    if t.startswith(prefix):
        t = t[len(prefix):]
    try:
        n = int(t, 0)
    except ValueError:
        raise AsmError(line, f"bad {what} {text!r} (expected {prefix}<n>)") from None
    if not 0 <= n < limit:
        raise AsmError(line, f"{what} {n} out of range 0..{limit - 1}")
    return n


def _size(item):
    m, ops = item.mnemonic, item.operands
    if m in ONE_BYTE:
        return 1
    if m in ("DMALPFE",):
        return 0
    if m == ".BYTE":
        return len(_split_operands(ops))
    if m in ("DMALP", "DMASEV", "DMAWFE", "DMAWFP") or m in PERIPH_OPS or m.startswith("DMALPEND"):
        return 2
    if m in ("DMAADDH", "DMAADNH"):
        return 3
    if m in ("DMAMOV", "DMAGO"):
        return 6
    raise AsmError(item.number, f"unknown instruction {m!r}")


def assemble(text, base=0):
    """TRM-syntax PL330 microcode into bytes (labels and DMAGO/DMAMOV targets are absolute)."""
    labels, items = _parse(text)
    addr = base
    for item in items:
        item.addr = addr
        addr += _size(item)
    label_addr = {name: (items[i].addr if i < len(items) else addr) for name, i in labels.items()}
    out = bytearray()
    loops = []   # open DMALP / DMALPFE: (counter, start address, forever, line, implicit)
    for item in items:
        out += _encode(item, label_addr, loops)
    # A loop written the short way must be closed; "DMALP LC0, n" on its own is a valid
    # program (the disassembler prints any DMALP that way).
    for _, _, _, line, implicit in loops:
        if implicit:
            raise AsmError(line, "DMALP without DMALPEND")
    return bytes(out)


def _encode(item, label_addr, loops):
    m, line, ops = item.mnemonic, item.number, _split_operands(item.operands)

    def want(n):
        if len(ops) not in (n if isinstance(n, tuple) else (n,)):
            raise AsmError(line, f"{m} takes {n} operand(s), got {len(ops)}")

    if m in ONE_BYTE:
        want(0)
        return bytes([ONE_BYTE[m]])
    if m == ".BYTE":
        return bytes(_number(o, line, lo=0, hi=255, what="byte") for o in ops)
    if m == "DMALP":
        want((1, 2))
        if len(ops) == 2:
            lc = _indexed(ops[0], "LC", line, 2, "loop counter")
        else:
            used = {c for c, _, _, _, _ in loops if c is not None}
            free = [c for c in (0, 1) if c not in used]
            if not free:
                raise AsmError(line, "both loop counters are in use")
            lc = free[0]
        count = _number(ops[-1], line, lo=1, hi=256, what="loop count")
        loops.append((lc, item.addr + 2, False, line, len(ops) == 1))
        return bytes([0x20 | lc << 1, count - 1])
    if m == "DMALPFE":
        want(0)
        loops.append((None, item.addr, True, line, True))
        return b""
    if m.startswith("DMALPEND"):
        cond = m[len("DMALPEND"):]
        if cond not in ("", "S", "B"):
            raise AsmError(line, f"unknown instruction {m!r}")
        forever = False
        if ops and ops[0].upper().startswith("FE"):
            forever = True
            rest = ops[0][2:].strip()
            ops = ([rest] if rest else []) + ops[1:]
        lc = target = None
        for o in ops:
            if o.strip().upper() in ("LC0", "LC1"):
                lc = int(o.strip()[2])
            elif target is None:
                target = _number(o, line, label_addr, what="loop target")
            else:
                raise AsmError(line, f"unexpected operand {o!r}")
        if target is None:
            if not loops:
                raise AsmError(line, "DMALPEND without an open DMALP")
            open_lc, target, open_forever, _, _ = loops.pop()
            forever = forever or open_forever
            if lc is None and open_lc is not None:
                lc = open_lc
        if lc is None:   # a DMALPFE's counter bit means nothing; LC1 avoids the DMASTP encodings
            lc = 1 if forever and cond else 0
        jump = (item.addr - target) & 0xFFFFFFFF
        if not 0 <= jump <= 255:
            raise AsmError(line, f"loop target is {jump} bytes back; DMALPEND reaches 0..255")
        op = 0x28 | (0 if forever else 0x10) | (lc or 0) << 2 | {"": 0, "S": 1, "B": 3}[cond]
        if op in (0x29, 0x2B):
            raise AsmError(line, "DMALPEND FE LC0 with a condition encodes as DMASTP: use LC1")
        return bytes([op, jump])
    if m in PERIPH_OPS:
        want(1)
        return bytes([PERIPH_OPS[m], _indexed(ops[0], "P", line, 32, "peripheral") << 3])
    if m == "DMAWFP":
        want(2)
        kind = ops[1].strip().lower()
        if kind not in WFP_KIND:
            raise AsmError(line, "DMAWFP's second operand is single, burst or periph")
        return bytes([WFP_KIND[kind], _indexed(ops[0], "P", line, 32, "peripheral") << 3])
    if m == "DMASEV":
        want(1)
        return bytes([0x34, _indexed(ops[0], "E", line, 32, "event") << 3])
    if m == "DMAWFE":
        want((1, 2))
        inv = 0
        if len(ops) == 2:
            if ops[1].strip().lower() != "invalid":
                raise AsmError(line, "DMAWFE's optional second operand is 'invalid'")
            inv = 2
        return bytes([0x36, _indexed(ops[0], "E", line, 32, "event") << 3 | inv])
    if m in ("DMAADDH", "DMAADNH"):
        want(2)
        reg = ops[0].strip().upper()
        if reg not in ("SAR", "DAR"):
            raise AsmError(line, f"{m} works on SAR or DAR")
        if m == "DMAADDH":
            imm = _number(ops[1], line, lo=0, hi=0xFFFF, what="immediate")
        else:
            imm = _number(ops[1], line, lo=-0x10000, hi=-1, what="negative immediate") & 0xFFFF
        op = (0x54 if m == "DMAADDH" else 0x5C) | (2 if reg == "DAR" else 0)
        return bytes([op, imm & 0xFF, imm >> 8])
    if m == "DMAMOV":
        if len(ops) < 2:
            raise AsmError(line, "DMAMOV takes a register (SAR, CCR, DAR) and a value")
        reg = ops[0].strip().upper()
        value_text = ",".join(ops[1:])
        if reg == "CCR":
            if re.fullmatch(r"\s*(0x[0-9A-Fa-f]+|\d+)\s*", value_text):
                value = _number(value_text, line, lo=0, hi=0xFFFFFFFF, what="CCR value")
            else:
                value = ccr_value(value_text, line)
        elif reg in ("SAR", "DAR"):
            want(2)
            value = _number(ops[1], line, label_addr, lo=0, hi=0xFFFFFFFF, what="address")
        else:
            raise AsmError(line, f"DMAMOV register is SAR, CCR or DAR, not {ops[0]!r}")
        return bytes([0xBC, ("SAR", "CCR", "DAR").index(reg)]) + value.to_bytes(4, "little")
    if m == "DMAGO":
        want((2, 3))
        ns = 0
        if len(ops) == 3:
            if ops[2].strip().lower() != "ns":
                raise AsmError(line, "DMAGO's optional third operand is 'ns'")
            ns = 2
        chan = _indexed(ops[0], "C", line, 8, "channel")
        pc = _number(ops[1], line, label_addr, lo=0, hi=0xFFFFFFFF, what="address")
        return bytes([0xA0 | ns, chan]) + pc.to_bytes(4, "little")
    raise AsmError(line, f"unknown instruction {m!r}")
