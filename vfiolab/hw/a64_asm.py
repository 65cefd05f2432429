"""An assembler for the A64 subset the sim's interpreter runs (vfiolab/csrc/aarch64.h), in GNU as
syntax, so the same source assembles with binutils (tests/test_aarch64_asm.py checks every form).

One instruction per line; `//` and `;` start comments; `name:` defines a label; `.word v[, v]`,
`.quad v`, `.balign n`, `.space n` and `.equ name, value` are the directives. Registers x0-x30, w0-w30, sp,
wsp, xzr, wzr; immediates are `#value` (`#` optional), decimal, hex or a name from `.equ`.

    movz/movk/movn x0, #0x1234[, lsl #16]   mov x0, #imm   mov x0, x1   mov sp, x0   mov x0, sp
    add/adds/sub/subs x0, x1, #imm[, lsl #12]   add x0, x1, x2[, lsl|lsr|asr #n]   cmp/cmn/neg
    and/orr/eor/ands x0, x1, #bitmask   and/orr/eor/ands/bic/orn/eon/bics x0, x1, x2[, shift]   tst
    b/bl label   b.eq ... b.al label   cbz/cbnz x0, label   br/blr x0   ret [x0]   eret
    ldr/str/ldrb/strb/ldrh/strh w0, [x1[, #imm]]   [x1, #imm]!   [x1], #imm   ldur/stur (unscaled)
    mrs x0, vbar_el1    msr icc_pmr_el1, x0    msr daifset|daifclr|spsel, #imm
    isb   dsb sy   dmb sy   wfi   wfe   nop   yield

assemble(text, base=0) -> bytes (little-endian words); labels resolve relative to base.
"""
import re
import struct

__all__ = ["assemble", "AsmError", "SYSREGS"]


class AsmError(ValueError):
    """Bad assembler input; .line is the 1-based line number."""

    def __init__(self, line, message):
        super().__init__(f"line {line}: {message}")
        self.line = line


def _sysreg(op0, op1, crn, crm, op2):
    return (op0 << 14) | (op1 << 11) | (crn << 7) | (crm << 3) | op2


# The system registers the interpreter knows (aarch64.c's sysreg_access and icc_reg).
SYSREGS = {
    "vbar_el1": _sysreg(3, 0, 12, 0, 0), "esr_el1": _sysreg(3, 0, 5, 2, 0),
    "far_el1": _sysreg(3, 0, 6, 0, 0), "elr_el1": _sysreg(3, 0, 4, 0, 1),
    "spsr_el1": _sysreg(3, 0, 4, 0, 0), "sp_el0": _sysreg(3, 0, 4, 1, 0),
    "tpidr_el1": _sysreg(3, 0, 13, 0, 4), "daif": _sysreg(3, 3, 4, 2, 1),
    "nzcv": _sysreg(3, 3, 4, 2, 0), "currentel": _sysreg(3, 0, 4, 2, 2),
    "mpidr_el1": _sysreg(3, 0, 0, 0, 5),
    "icc_iar1_el1": _sysreg(3, 0, 12, 12, 0), "icc_eoir1_el1": _sysreg(3, 0, 12, 12, 1),
    "icc_hppir1_el1": _sysreg(3, 0, 12, 12, 2), "icc_bpr1_el1": _sysreg(3, 0, 12, 12, 3),
    "icc_ctlr_el1": _sysreg(3, 0, 12, 12, 4), "icc_sre_el1": _sysreg(3, 0, 12, 12, 5),
    "icc_igrpen1_el1": _sysreg(3, 0, 12, 12, 7), "icc_dir_el1": _sysreg(3, 0, 12, 11, 1),
    "icc_rpr_el1": _sysreg(3, 0, 12, 11, 3), "icc_pmr_el1": _sysreg(3, 0, 4, 6, 0),
}
CONDITIONS = {name: i for i, name in enumerate(
    ["eq", "ne", "cs", "cc", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt", "gt", "le", "al", "nv"])}
CONDITIONS.update(hs=2, lo=3)
SHIFTS = {"lsl": 0, "lsr": 1, "asr": 2, "ror": 3}
HINTS = {"nop": 0, "yield": 1, "wfe": 2, "wfi": 3, "sev": 4, "sevl": 5}
BARRIER_OPTIONS = {"sy": 15, "st": 14, "ld": 13, "ish": 11, "ishst": 10, "ishld": 9, "nsh": 7,
                   "nshst": 6, "nshld": 5, "osh": 3, "oshst": 2, "oshld": 1}
LOGICAL = {"and": (0, 0), "orr": (1, 0), "eor": (2, 0), "ands": (3, 0),
           "bic": (0, 1), "orn": (1, 1), "eon": (2, 1), "bics": (3, 1)}
LOADS_STORES = {  # name: (size log2, load, scaled-form allowed)
    "ldr": (None, 1, True), "str": (None, 0, True), "ldrb": (0, 1, True), "strb": (0, 0, True),
    "ldrh": (1, 1, True), "strh": (1, 0, True), "ldur": (None, 1, False), "stur": (None, 0, False),
    "ldurb": (0, 1, False), "sturb": (0, 0, False), "ldurh": (1, 1, False), "sturh": (1, 0, False),
}


def _bitmask_table():
    """Every encodable logical immediate: (width, value) -> (N, immr, imms) (DecodeBitMasks)."""
    table = {}
    for size in (2, 4, 8, 16, 32, 64):
        for ones in range(1, size):
            for rotate in range(size):
                element = (1 << ones) - 1
                element = ((element >> rotate) | (element << (size - rotate))) & ((1 << size) - 1)
                value = 0
                for i in range(0, 64, size):
                    value |= element << i
                n = 1 if size == 64 else 0
                imms = ((~(size - 1) << 1) & 0x3F) | (ones - 1) if size < 64 else ones - 1
                fields = (n, rotate, imms)
                table.setdefault((64, value), fields)
                if size <= 32:
                    table.setdefault((32, value & 0xFFFFFFFF), fields)
    return table


_BITMASKS = None


def _encode_bitmask(value, width):
    global _BITMASKS
    if _BITMASKS is None:
        _BITMASKS = _bitmask_table()
    return _BITMASKS.get((width, value & ((1 << width) - 1)))


class _Operands:
    def __init__(self, text, line, symbols):
        self.line, self.symbols = line, symbols
        self.items = self._split(text)

    @staticmethod
    def _split(text):
        out, depth, current = [], 0, ""
        for ch in text:
            if ch == "[":
                depth += 1
            elif ch == "]":
                depth -= 1
            if ch == "," and depth == 0:
                out.append(current.strip())
                current = ""
            else:
                current += ch
        if current.strip():
            out.append(current.strip())
        return out


def _register(text, line, allow_sp=False, allow_zr=True):
    """(number, is_64bit) for x0..x30/w0..w30, sp/wsp (31, if allowed), xzr/wzr (31)."""
    t = text.strip().lower()
    if t in ("sp", "wsp"):
        if not allow_sp:
            raise AsmError(line, f"{text}: sp is not allowed here")
        return 31, t == "sp"
    if t in ("xzr", "wzr"):
        if not allow_zr:
            raise AsmError(line, f"{text}: the zero register is not allowed here")
        return 31, t == "xzr"
    m = re.fullmatch(r"([xw])(\d+)", t)
    if not m or int(m.group(2)) > 30:
        raise AsmError(line, f"{text!r} is not a register (x0-x30, w0-w30, sp, xzr)")
    return int(m.group(2)), m.group(1) == "x"


def _value(text, line, symbols):
    t = text.strip()
    if t.startswith("#"):
        t = t[1:].strip()
    negative = t.startswith("-")
    if negative:
        t = t[1:].strip()
    if t in symbols:
        v = symbols[t]
    else:
        try:
            v = int(t, 0)
        except ValueError:
            raise AsmError(line, f"{text!r} is not a number or a known name") from None
    return -v if negative else v


def _shift(text, line, symbols):
    m = re.fullmatch(r"(lsl|lsr|asr|ror)\s+(.+)", text.strip().lower())
    if not m:
        raise AsmError(line, f"{text!r}: expected a shift such as 'lsl #12'")
    return SHIFTS[m.group(1)], _value(m.group(2), line, symbols)


def _fits_signed(value, bits):
    return -(1 << (bits - 1)) <= value < (1 << (bits - 1))


class _Assembler:
    def __init__(self, text, base):
        self.text, self.base = text, base

    def run(self):
        lines = self._lines()
        labels, symbols, address = {}, {}, self.base
        for number, label, op, args in lines:        # pass 1: addresses
            if label:
                if label in labels:
                    raise AsmError(number, f"label {label!r} defined twice")
                labels[label] = address
            if op == ".equ":
                name, value = [a.strip() for a in args.split(",", 1)]
                symbols[name] = _value(value, number, symbols)
            elif op:
                address += self._size(number, op, args, address, symbols)
        out, address = bytearray(), self.base
        for number, _label, op, args in lines:        # pass 2: encode
            if not op or op == ".equ":
                continue
            data = self._encode(number, op, args, address, labels, symbols)
            out += data
            address += len(data)
        return bytes(out)

    def _lines(self):
        out = []
        for number, raw in enumerate(self.text.splitlines(), 1):
            line = re.split(r"//|;", raw, 1)[0].strip()
            label = None
            m = re.match(r"([A-Za-z_.$][\w.$]*):\s*(.*)", line)
            if m:
                label, line = m.group(1), m.group(2)
            op, _, args = line.partition(" ") if line else ("", "", "")
            out.append((number, label, op.lower(), args.strip()))
        return out

    def _size(self, number, op, args, address, symbols):
        if op == ".word":
            return 4 * len(args.split(","))
        if op == ".quad":
            return 8 * len(args.split(","))
        if op == ".balign":
            align = _value(args, number, symbols)
            if align <= 0 or align & (align - 1):
                raise AsmError(number, ".balign needs a power of two")
            return (-address) % align
        if op == ".space":
            size = _value(args, number, symbols)
            if size < 0:
                raise AsmError(number, ".space needs a size >= 0")
            return size
        if op.startswith("."):
            raise AsmError(number, f"unknown directive {op}")
        return 4

    def _encode(self, number, op, args, address, labels, symbols):
        if op == ".word":
            return b"".join(struct.pack("<I", _value(a, number, symbols) & 0xFFFFFFFF) for a in args.split(","))
        if op == ".quad":
            return b"".join(struct.pack("<Q", _value(a, number, symbols) & (2**64 - 1)) for a in args.split(","))
        if op == ".balign":      # padded with NOPs, as GNU as pads code
            size = self._size(number, op, args, address, symbols)
            if address % 4 == 0 and size % 4 == 0:
                return struct.pack("<I", 0xD503201F) * (size // 4)
            return b"\0" * size
        if op == ".space":
            return b"\0" * self._size(number, op, args, address, symbols)
        word = _Instruction(number, op, _Operands(args, number, symbols).items, address, labels, symbols).encode()
        return struct.pack("<I", word)


class _Instruction:
    def __init__(self, line, op, operands, address, labels, symbols):
        self.line, self.op, self.ops = line, op, operands
        self.address, self.labels, self.symbols = address, labels, symbols

    def error(self, message):
        return AsmError(self.line, f"{self.op}: {message}")

    def need(self, *counts):
        if len(self.ops) not in counts:
            raise self.error(f"takes {' or '.join(map(str, counts))} operands, not {len(self.ops)}")

    def reg(self, i, **kw):
        return _register(self.ops[i], self.line, **kw)

    def imm(self, text):
        return _value(text, self.line, self.symbols)

    def target(self, text, bits):
        t = text.strip()
        if t == ".":
            dest = self.address                 # `b .`: this instruction
        elif t in self.labels:
            dest = self.labels[t]
        else:
            try:
                dest = self.imm(t)
            except AsmError:
                raise self.error(f"unknown label {t!r}") from None
        offset = dest - self.address
        if offset % 4 or not _fits_signed(offset // 4, bits):
            raise self.error(f"branch target {t} is out of range or unaligned")
        return (offset // 4) & ((1 << bits) - 1)

    def encode(self):
        op = self.op
        if op.startswith("b.") and op[2:] in CONDITIONS:
            self.need(1)
            return 0x54000000 | self.target(self.ops[0], 19) << 5 | CONDITIONS[op[2:]]
        method = getattr(self, "op_" + op, None)
        if method is None:
            if op in LOGICAL:
                return self.logical()
            if op in LOADS_STORES:
                return self.load_store()
            if op in HINTS:
                self.need(0)
                return 0xD503201F | HINTS[op] << 5
            raise self.error("not an instruction the interpreter knows")
        return method()

    # --- moves and arithmetic ----------------------------------------------------------------
    def move_wide(self, opc):
        self.need(2, 3)
        rd, sf = self.reg(0)
        imm = self.imm(self.ops[1])
        hw = 0
        if len(self.ops) == 3:
            kind, amount = _shift(self.ops[2], self.line, self.symbols)
            if kind != 0 or amount % 16 or amount >= (64 if sf else 32):
                raise self.error("the shift must be lsl #0/16/32/48 (#0/16 for w registers)")
            hw = amount // 16
        if not 0 <= imm <= 0xFFFF:
            raise self.error(f"immediate {imm:#x} does not fit 16 bits")
        return sf << 31 | opc << 29 | 0x12800000 | hw << 21 | imm << 5 | rd

    def op_movn(self):
        return self.move_wide(0)

    def op_movz(self):
        return self.move_wide(2)

    def op_movk(self):
        return self.move_wide(3)

    def op_mov(self):
        self.need(2)
        dst, src = self.ops[0].strip().lower(), self.ops[1].strip().lower()
        if dst in ("sp", "wsp") or src in ("sp", "wsp"):
            self.ops = [self.ops[0], self.ops[1], "#0"]
            return self.add_sub_imm(0, 0)
        rd, sf = self.reg(0)
        if not src.startswith("#") and not re.fullmatch(r"-?(0x[0-9a-f]+|\d+)", src) and src not in self.symbols:
            rm, _ = self.reg(1)
            return sf << 31 | 0x2A0003E0 | rm << 16 | rd           # orr rd, zr, rm
        width = 64 if sf else 32
        value = self.imm(src) & ((1 << width) - 1)
        for hw in range(width // 16):                              # movz
            if value & ~(0xFFFF << (16 * hw)) == 0:
                return sf << 31 | 0x52800000 | hw << 21 | (value >> (16 * hw)) << 5 | rd
        inverted = ~value & ((1 << width) - 1)
        for hw in range(width // 16):                              # movn
            if inverted & ~(0xFFFF << (16 * hw)) == 0:
                return sf << 31 | 0x12800000 | hw << 21 | (inverted >> (16 * hw)) << 5 | rd
        fields = _encode_bitmask(value, width)                     # orr rd, zr, #bitmask
        if fields:
            n, immr, imms = fields
            return sf << 31 | 0x320003E0 | n << 22 | immr << 16 | imms << 10 | rd
        raise self.error(f"{value:#x} needs movz + movk (one mov cannot load it)")

    def is_register(self, text):
        t = text.strip().lower()
        return bool(re.fullmatch(r"[xw]\d+|[xw]zr|w?sp", t))

    def add_sub_imm(self, sub, setflags):
        rd, sf = _register(self.ops[0], self.line, allow_sp=not setflags, allow_zr=bool(setflags))
        rn, sfn = _register(self.ops[1], self.line, allow_sp=True, allow_zr=False)
        if sf != sfn:
            raise self.error("mixes x and w registers")
        imm = self.imm(self.ops[2])
        shift = 0
        if len(self.ops) == 4:
            kind, amount = _shift(self.ops[3], self.line, self.symbols)
            if kind != 0 or amount not in (0, 12):
                raise self.error("the immediate's shift must be lsl #0 or lsl #12")
            shift = amount == 12
        if imm < 0:
            imm, sub = -imm, 1 - sub
        if imm > 0xFFF:
            if imm & 0xFFF or imm >> 12 > 0xFFF or shift:
                raise self.error(f"immediate {imm:#x} is not 12 bits (optionally shifted by 12)")
            imm, shift = imm >> 12, 1
        return sf << 31 | sub << 30 | setflags << 29 | 0x11000000 | shift << 22 | imm << 10 | rn << 5 | rd

    def add_sub(self, sub, setflags):
        self.need(3, 4)
        if not self.is_register(self.ops[2]):
            return self.add_sub_imm(sub, setflags)
        names = [o.strip().lower() for o in self.ops[:2]]
        if "sp" in names or "wsp" in names:
            raise self.error("sp with a register operand needs the extended-register form, which "
                             "the interpreter does not have")
        rd, sf = self.reg(0)
        rn, _ = self.reg(1)
        rm, sfm = self.reg(2)
        if sfm != sf:
            raise self.error("mixes x and w registers")
        kind, amount = (0, 0) if len(self.ops) == 3 else _shift(self.ops[3], self.line, self.symbols)
        if kind == 3 or not 0 <= amount < (64 if sf else 32):
            raise self.error("shift must be lsl/lsr/asr #0..63 (#0..31 for w)")
        return sf << 31 | sub << 30 | setflags << 29 | 0x0B000000 | kind << 22 | rm << 16 | amount << 10 | rn << 5 | rd

    def op_add(self):
        return self.add_sub(0, 0)

    def op_adds(self):
        return self.add_sub(0, 1)

    def op_sub(self):
        return self.add_sub(1, 0)

    def op_subs(self):
        return self.add_sub(1, 1)

    def op_cmp(self):
        self.need(2, 3)
        zr = "xzr" if self.reg(0, allow_sp=True)[1] else "wzr"
        self.ops = [zr] + self.ops
        return self.add_sub(1, 1)

    def op_cmn(self):
        self.need(2, 3)
        zr = "xzr" if self.reg(0, allow_sp=True)[1] else "wzr"
        self.ops = [zr] + self.ops
        return self.add_sub(0, 1)

    def op_neg(self):
        self.need(2, 3)
        zr = "xzr" if self.reg(0)[1] else "wzr"
        self.ops = [self.ops[0], zr] + self.ops[1:]
        return self.add_sub(1, 0)

    def logical(self):
        opc, invert = LOGICAL[self.op]
        self.need(3, 4)
        if not self.is_register(self.ops[2]):
            if invert or len(self.ops) != 3:
                raise self.error("takes a register operand (or use and/orr/eor/ands with a bitmask)")
            rd, sf = _register(self.ops[0], self.line, allow_sp=opc != 3, allow_zr=opc == 3)
            rn, _ = self.reg(1)
            fields = _encode_bitmask(self.imm(self.ops[2]), 64 if sf else 32)
            if fields is None:
                raise self.error(f"{self.ops[2]} is not a logical (bitmask) immediate")
            n, immr, imms = fields
            return sf << 31 | opc << 29 | 0x12000000 | n << 22 | immr << 16 | imms << 10 | rn << 5 | rd
        rd, sf = self.reg(0)
        rn, _ = self.reg(1)
        rm, sfm = self.reg(2)
        if sfm != sf:
            raise self.error("mixes x and w registers")
        kind, amount = (0, 0) if len(self.ops) == 3 else _shift(self.ops[3], self.line, self.symbols)
        if not 0 <= amount < (64 if sf else 32):
            raise self.error("shift amount out of range")
        return sf << 31 | opc << 29 | 0x0A000000 | kind << 22 | invert << 21 | rm << 16 | amount << 10 | rn << 5 | rd

    def op_tst(self):
        self.need(2, 3)
        zr = "xzr" if self.reg(0)[1] else "wzr"
        self.op, self.ops = "ands", [zr] + self.ops
        return self.logical()

    # --- branches ----------------------------------------------------------------------------
    def op_b(self):
        self.need(1)
        return 0x14000000 | self.target(self.ops[0], 26)

    def op_bl(self):
        self.need(1)
        return 0x94000000 | self.target(self.ops[0], 26)

    def compare_branch(self, nonzero):
        self.need(2)
        rt, sf = self.reg(0)
        return sf << 31 | 0x34000000 | nonzero << 24 | self.target(self.ops[1], 19) << 5 | rt

    def op_cbz(self):
        return self.compare_branch(0)

    def op_cbnz(self):
        return self.compare_branch(1)

    def branch_register(self, opc, default=None):
        if not self.ops and default is not None:
            return 0xD61F0000 | opc << 21 | default << 5
        self.need(1)
        rn, sf = self.reg(0)
        if not sf:
            raise self.error("needs an x register")
        return 0xD61F0000 | opc << 21 | rn << 5

    def op_br(self):
        return self.branch_register(0)

    def op_blr(self):
        return self.branch_register(1)

    def op_ret(self):
        return self.branch_register(2, default=30)

    def op_eret(self):
        self.need(0)
        return 0xD69F03E0

    # --- loads and stores --------------------------------------------------------------------
    def load_store(self):
        size, load, scaled_ok = LOADS_STORES[self.op]
        self.need(2, 3)
        rt, sf = self.reg(0)
        if size is None:
            size = 3 if sf else 2
        elif sf:
            raise self.error("byte and halfword forms take a w register")
        mem = self.ops[1].strip()
        post = None
        m = re.fullmatch(r"\[\s*([^,\]]+)\s*(?:,\s*([^\]]+))?\]\s*(!?)", mem)
        if not m:
            raise self.error(f"{mem!r}: expected [xn], [xn, #imm], [xn, #imm]! or [xn], #imm")
        rn, rn64 = _register(m.group(1), self.line, allow_sp=True, allow_zr=False)
        if not rn64:
            raise self.error("the base must be an x register or sp")
        offset = self.imm(m.group(2)) if m.group(2) else 0
        pre = m.group(3) == "!"
        if len(self.ops) == 3:
            if m.group(2) or pre:
                raise self.error("post-index takes [xn], #imm")
            post = self.imm(self.ops[2])
        base = size << 30 | (1 if load else 0) << 22 | rn << 5 | rt
        if pre or post is not None:
            if not scaled_ok:
                raise self.error("ldur/stur have no writeback forms")
            value = offset if pre else post
            if not _fits_signed(value, 9):
                raise self.error("a writeback offset is -256..255")
            return 0x38000000 | base | (value & 0x1FF) << 12 | (3 if pre else 1) << 10
        if scaled_ok and offset >= 0 and offset % (1 << size) == 0 and offset >> size <= 0xFFF:
            return 0x39000000 | base | (offset >> size) << 10
        if not _fits_signed(offset, 9):
            raise self.error(f"offset {offset} fits neither the scaled 12-bit nor the 9-bit form")
        return 0x38000000 | base | (offset & 0x1FF) << 12

    # --- system ------------------------------------------------------------------------------
    def sysreg(self, text):
        name = text.strip().lower()
        if name not in SYSREGS:
            raise self.error(f"unknown system register {text!r} (the interpreter knows: "
                             f"{', '.join(sorted(SYSREGS))})")
        return SYSREGS[name]

    def op_mrs(self):
        self.need(2)
        rt, sf = self.reg(0)
        if not sf:
            raise self.error("needs an x register")
        return 0xD5300000 | self.sysreg(self.ops[1]) << 5 | rt

    def op_msr(self):
        self.need(2)
        name = self.ops[0].strip().lower()
        fields = {"daifset": (3, 6), "daifclr": (3, 7), "spsel": (0, 5)}
        if name in fields:
            op1, op2 = fields[name]
            imm = self.imm(self.ops[1])
            if not 0 <= imm <= 15:
                raise self.error("the immediate is 0..15")
            return 0xD500401F | op1 << 16 | imm << 8 | op2 << 5
        rt, sf = self.reg(1)
        if not sf:
            raise self.error("needs an x register")
        return 0xD5100000 | self.sysreg(self.ops[0]) << 5 | rt

    def barrier(self, op2, default="sy"):
        option = self.ops[0].strip().lower() if self.ops else default
        if option.startswith("#"):
            crm = self.imm(option)
        elif option in BARRIER_OPTIONS:
            crm = BARRIER_OPTIONS[option]
        else:
            raise self.error(f"unknown barrier option {option!r}")
        return 0xD503301F | crm << 8 | op2 << 5

    def op_isb(self):
        return self.barrier(6)

    def op_dsb(self):
        return self.barrier(4)

    def op_dmb(self):
        return self.barrier(5)

    def op_clrex(self):
        return self.barrier(2, default="#15")


def assemble(text, base=0):
    """The bytes of `text` placed at address `base`."""
    if not isinstance(text, str):
        raise TypeError(f"assemble takes the source as a str, not {type(text).__name__}")
    return _Assembler(text, base).run()
