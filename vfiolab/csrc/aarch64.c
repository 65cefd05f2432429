/* The AArch64 interpreter: see aarch64.h. Encodings are the Arm ARM's (DDI 0487, C4 "A64
 * instruction set encoding"); every word outside the subset stops with an exit, never a crash. */
#include "aarch64.h"

#include <stdlib.h>
#include <string.h>

#define NSLOTS 32
#define PSR_N (1ull << 31)
#define PSR_Z (1ull << 30)
#define PSR_C (1ull << 29)
#define PSR_V (1ull << 28)
#define PSR_DAIF 0x3C0ull
#define PSR_I (1ull << 7)
#define PSR_MODE 0x1Full
#define MODE_EL1T 0x4
#define MODE_EL1H 0x5
#define KVM_RESET_PSTATE 0x3C5ull      /* PSR_MODE_EL1h | D | A | I | F (kvm_reset_vcpu) */
#define KVM_MPIDR 0x80000000ull        /* vCPU 0: affinity 0, RES1 bit 31 */
#define GICD_SIZE 0x10000ull
#define GICR_SIZE 0x20000ull

struct slot { uint64_t gpa, size; uint8_t *host; };

struct pending_mmio { int active, load; uint32_t rt, len, sf; uint64_t data; };

struct vfl_a64 {
    uint64_t x[31];
    uint64_t sp_el0, sp_el1, pc, pstate;
    uint64_t elr, spsr, vbar, esr, far, tpidr;
    uint64_t steps;
    struct slot slots[NSLOTS];
    struct vfl_vgic3 *gic;
    uint64_t dist_base, redist_base;
    struct pending_mmio mmio;
};

struct vfl_a64 *vfl_a64_new(void)
{
    struct vfl_a64 *cpu = calloc(1, sizeof(*cpu));
    if (cpu)
        vfl_a64_reset(cpu);
    return cpu;
}

void vfl_a64_free(struct vfl_a64 *cpu) { free(cpu); }

void vfl_a64_reset(struct vfl_a64 *cpu)
{
    memset(cpu->x, 0, sizeof(cpu->x));
    cpu->sp_el0 = cpu->sp_el1 = cpu->pc = 0;
    cpu->elr = cpu->spsr = cpu->vbar = cpu->esr = cpu->far = cpu->tpidr = 0;
    cpu->pstate = KVM_RESET_PSTATE;
    cpu->steps = 0;
    memset(&cpu->mmio, 0, sizeof(cpu->mmio));
}

int vfl_a64_set_ram(struct vfl_a64 *cpu, uint32_t slot, uint64_t gpa, uint64_t size, uint8_t *host)
{
    if (slot >= NSLOTS || (size && (!host || gpa + size < gpa)))
        return -1;
    cpu->slots[slot] = (struct slot){gpa, size, size ? host : NULL};
    return 0;
}

void vfl_a64_attach_vgic(struct vfl_a64 *cpu, struct vfl_vgic3 *gic, uint64_t dist_base, uint64_t redist_base)
{
    cpu->gic = gic;
    cpu->dist_base = dist_base;
    cpu->redist_base = redist_base;
}

static uint64_t *sp_ref(struct vfl_a64 *cpu) { return (cpu->pstate & 1) ? &cpu->sp_el1 : &cpu->sp_el0; }

static uint64_t *reg_ref(struct vfl_a64 *cpu, uint32_t reg)
{
    if (reg < 31) return &cpu->x[reg];
    switch (reg) {
    case VFL_A64_SP_EL0: return &cpu->sp_el0;
    case VFL_A64_PC: return &cpu->pc;
    case VFL_A64_PSTATE: return &cpu->pstate;
    case VFL_A64_SP_EL1: return &cpu->sp_el1;
    case VFL_A64_ELR_EL1: return &cpu->elr;
    case VFL_A64_SPSR_EL1: return &cpu->spsr;
    case VFL_A64_VBAR_EL1: return &cpu->vbar;
    case VFL_A64_ESR_EL1: return &cpu->esr;
    case VFL_A64_FAR_EL1: return &cpu->far;
    case VFL_A64_TPIDR_EL1: return &cpu->tpidr;
    }
    return NULL;
}

uint64_t vfl_a64_get_reg(struct vfl_a64 *cpu, uint32_t reg)
{
    uint64_t *r = reg_ref(cpu, reg);
    return r ? *r : 0;
}

int vfl_a64_set_reg(struct vfl_a64 *cpu, uint32_t reg, uint64_t value)
{
    uint64_t *r = reg_ref(cpu, reg);
    if (!r)
        return -1;
    *r = value;
    return 0;
}

void vfl_a64_set_mmio_data(struct vfl_a64 *cpu, uint64_t data) { cpu->mmio.data = data; }

uint64_t vfl_a64_steps(struct vfl_a64 *cpu) { return cpu->steps; }

/* --- registers as instructions name them: 31 is XZR or SP depending on the form ------------- */
static uint64_t xr(struct vfl_a64 *cpu, uint32_t n) { return n == 31 ? 0 : cpu->x[n]; }
static uint64_t xr_sp(struct vfl_a64 *cpu, uint32_t n) { return n == 31 ? *sp_ref(cpu) : cpu->x[n]; }
static void set_xr(struct vfl_a64 *cpu, uint32_t n, uint64_t v, int sf)
{
    if (n != 31) cpu->x[n] = sf ? v : (uint32_t)v;
}
static void set_xr_sp(struct vfl_a64 *cpu, uint32_t n, uint64_t v, int sf)
{
    if (!sf) v = (uint32_t)v;
    if (n == 31) *sp_ref(cpu) = v; else cpu->x[n] = v;
}

/* --- memory ---------------------------------------------------------------------------------- */
static uint8_t *ram(struct vfl_a64 *cpu, uint64_t addr, uint64_t len)
{
    for (int i = 0; i < NSLOTS; i++) {
        const struct slot *s = &cpu->slots[i];
        if (s->size && addr >= s->gpa && addr - s->gpa <= s->size - len && len <= s->size)
            return s->host + (addr - s->gpa);
    }
    return NULL;
}

static uint64_t load_le(const uint8_t *p, uint32_t len)
{
    uint64_t v = 0;
    for (uint32_t i = 0; i < len; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void store_le(uint8_t *p, uint32_t len, uint64_t v)
{
    for (uint32_t i = 0; i < len; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* An access the vGIC's frames answer in the kernel (KVM's vgic io devices): 1 if handled. */
static int vgic_mmio(struct vfl_a64 *cpu, uint64_t addr, uint32_t len, int write, uint64_t *value)
{
    if (!cpu->gic)
        return 0;
    if (addr - cpu->dist_base < GICD_SIZE) {
        if (write) vfl_vgic3_dist_write(cpu->gic, addr - cpu->dist_base, len, *value);
        else *value = vfl_vgic3_dist_read(cpu->gic, addr - cpu->dist_base, len);
        return 1;
    }
    if (addr - cpu->redist_base < GICR_SIZE) {
        if (write) vfl_vgic3_redist_write(cpu->gic, addr - cpu->redist_base, len, *value);
        else *value = vfl_vgic3_redist_read(cpu->gic, addr - cpu->redist_base, len);
        return 1;
    }
    return 0;
}

/* --- arithmetic -------------------------------------------------------------------------------- */
static uint64_t add_with_flags(struct vfl_a64 *cpu, uint64_t a, uint64_t b, int carry, int sf, int setflags)
{
    uint64_t result;
    uint64_t n, z, c, v;
    if (sf) {
        result = a + b + (uint64_t)carry;
        n = result >> 63;
        z = result == 0;
        c = (result < a) || (carry && result == a);
        v = ((~(a ^ b) & (a ^ result)) >> 63) & 1;
    } else {
        uint32_t a32 = (uint32_t)a, b32 = (uint32_t)b;
        uint64_t wide = (uint64_t)a32 + b32 + (uint64_t)carry;
        uint32_t r32 = (uint32_t)wide;
        result = r32;
        n = r32 >> 31;
        z = r32 == 0;
        c = wide >> 32;
        v = ((~(a32 ^ b32) & (a32 ^ r32)) >> 31) & 1;
    }
    if (setflags)
        cpu->pstate = (cpu->pstate & ~(PSR_N | PSR_Z | PSR_C | PSR_V)) | (n << 31) | (z << 30) | (c << 29) | (v << 28);
    return result;
}

static void logic_flags(struct vfl_a64 *cpu, uint64_t result, int sf)
{
    uint64_t n = sf ? result >> 63 : (result >> 31) & 1;
    uint64_t z = sf ? result == 0 : (uint32_t)result == 0;
    cpu->pstate = (cpu->pstate & ~(PSR_N | PSR_Z | PSR_C | PSR_V)) | (n << 31) | (z << 30);
}

static uint64_t shift_reg(uint64_t value, uint32_t type, uint32_t amount, int sf)
{
    uint32_t width = sf ? 64 : 32;
    if (!sf) value = (uint32_t)value;
    if (amount == 0) return value;
    switch (type) {
    case 0: value <<= amount; break;                                   /* LSL */
    case 1: value >>= amount; break;                                   /* LSR */
    case 2: value = sf ? (uint64_t)((int64_t)value >> amount)          /* ASR */
                       : (uint64_t)(uint32_t)((int32_t)(uint32_t)value >> amount); break;
    case 3: value = (value >> amount) | (value << (width - amount)); break;   /* ROR */
    }
    return sf ? value : (uint32_t)value;
}

/* DecodeBitMasks (the Arm ARM's pseudocode) for logical immediates: -1 when reserved. */
static int decode_bit_masks(int sf, uint32_t n, uint32_t imms, uint32_t immr, uint64_t *mask)
{
    uint32_t combined = (n << 6) | (~imms & 0x3F);
    int len = -1;
    for (int i = 6; i >= 0; i--)
        if (combined & (1u << i)) { len = i; break; }
    if (len < 1 || (!sf && n))
        return -1;
    uint32_t esize = 1u << len, levels = esize - 1;
    uint32_t s = imms & levels, r = immr & levels;
    if (s == levels)
        return -1;
    uint64_t emask = esize == 64 ? ~0ull : (1ull << esize) - 1;
    uint64_t welem = (1ull << (s + 1)) - 1;                        /* s + 1 <= 63 here */
    uint64_t elem = r ? ((welem >> r) | (welem << (esize - r))) & emask : welem;
    uint64_t out = 0;
    for (uint32_t i = 0; i < 64; i += esize) out |= elem << i;
    *mask = sf ? out : (uint32_t)out;
    return 0;
}

static int condition_holds(uint64_t pstate, uint32_t cond)
{
    int n = (pstate >> 31) & 1, z = (pstate >> 30) & 1, c = (pstate >> 29) & 1, v = (pstate >> 28) & 1;
    int result;
    switch (cond >> 1) {
    case 0: result = z; break;                  /* EQ */
    case 1: result = c; break;                  /* CS */
    case 2: result = n; break;                  /* MI */
    case 3: result = v; break;                  /* VS */
    case 4: result = c && !z; break;            /* HI */
    case 5: result = n == v; break;             /* GE */
    case 6: result = n == v && !z; break;       /* GT */
    default: return 1;                          /* AL (and NV, which is AL too) */
    }
    return (cond & 1) ? !result : result;
}

static int64_t sign_extend(uint64_t value, int bits)
{
    uint64_t m = 1ull << (bits - 1);
    value &= (1ull << bits) - 1;
    return (int64_t)((value ^ m) - m);
}

/* --- system registers -------------------------------------------------------------------------- */
#define SYSREG(op0, op1, crn, crm, op2) (((op0) << 14) | ((op1) << 11) | ((crn) << 7) | ((crm) << 3) | (op2))

static int icc_reg(uint32_t key)
{
    switch (key) {
    case SYSREG(3, 0, 12, 12, 0): return VFL_ICC_IAR1;
    case SYSREG(3, 0, 12, 12, 1): return VFL_ICC_EOIR1;
    case SYSREG(3, 0, 12, 12, 2): return VFL_ICC_HPPIR1;
    case SYSREG(3, 0, 12, 12, 3): return VFL_ICC_BPR1;
    case SYSREG(3, 0, 12, 12, 4): return VFL_ICC_CTLR;
    case SYSREG(3, 0, 12, 12, 5): return VFL_ICC_SRE;
    case SYSREG(3, 0, 12, 12, 7): return VFL_ICC_IGRPEN1;
    case SYSREG(3, 0, 12, 11, 1): return VFL_ICC_DIR;
    case SYSREG(3, 0, 12, 11, 3): return VFL_ICC_RPR;
    case SYSREG(3, 0, 4, 6, 0): return VFL_ICC_PMR;
    }
    return -1;
}

/* 0 on success, -1 for UNDEFINED. */
static int sysreg_access(struct vfl_a64 *cpu, uint32_t key, int read, uint64_t *value)
{
    int icc = icc_reg(key);
    if (icc >= 0) {
        if (!cpu->gic)
            return -1;
        return read ? vfl_vgic3_icc_read(cpu->gic, icc, value) : vfl_vgic3_icc_write(cpu->gic, icc, *value);
    }
    uint64_t *r = NULL;
    switch (key) {
    case SYSREG(3, 0, 12, 0, 0): r = &cpu->vbar; break;
    case SYSREG(3, 0, 5, 2, 0): r = &cpu->esr; break;
    case SYSREG(3, 0, 6, 0, 0): r = &cpu->far; break;
    case SYSREG(3, 0, 4, 0, 1): r = &cpu->elr; break;
    case SYSREG(3, 0, 4, 0, 0): r = &cpu->spsr; break;
    case SYSREG(3, 0, 13, 0, 4): r = &cpu->tpidr; break;
    case SYSREG(3, 0, 4, 1, 0):                                  /* SP_EL0: UNDEFINED while selected */
        if (!(cpu->pstate & 1)) return -1;
        r = &cpu->sp_el0;
        break;
    case SYSREG(3, 3, 4, 2, 1):                                  /* DAIF */
        if (read) *value = cpu->pstate & PSR_DAIF;
        else cpu->pstate = (cpu->pstate & ~PSR_DAIF) | (*value & PSR_DAIF);
        return 0;
    case SYSREG(3, 3, 4, 2, 0):                                  /* NZCV */
        if (read) *value = cpu->pstate & 0xF0000000ull;
        else cpu->pstate = (cpu->pstate & ~0xF0000000ull) | (*value & 0xF0000000ull);
        return 0;
    case SYSREG(3, 0, 4, 2, 2):                                  /* CurrentEL */
        if (!read) return -1;
        *value = cpu->pstate & 0xC;
        return 0;
    case SYSREG(3, 0, 0, 0, 5):                                  /* MPIDR_EL1 */
        if (!read) return -1;
        *value = KVM_MPIDR;
        return 0;
    default:
        return -1;
    }
    if (read) *value = *r;
    else *r = *value;
    return 0;
}

/* --- exceptions -------------------------------------------------------------------------------- */
static void take_irq(struct vfl_a64 *cpu)
{
    uint64_t offset = (cpu->pstate & 1) ? 0x280 : 0x080;   /* current EL with SP_ELx / SP_EL0 */
    cpu->spsr = cpu->pstate;
    cpu->elr = cpu->pc;
    cpu->pstate = (cpu->pstate & 0xF0000000ull) | PSR_DAIF | MODE_EL1H;
    cpu->pc = cpu->vbar + offset;
}

/* --- one instruction --------------------------------------------------------------------------- */
enum step { STEP_OK, STEP_EXIT };

static enum step undef(struct vfl_a64_exit *exit, uint64_t pc, uint32_t insn)
{
    exit->reason = VFL_A64_EXIT_UNDEF;
    exit->pc = pc;
    exit->insn = insn;
    return STEP_EXIT;
}

/* A load or store of `len` bytes at addr (Rt, zero-extended to the register's width on a load). */
static enum step load_store(struct vfl_a64 *cpu, uint32_t insn, uint64_t addr, uint32_t len, int load,
                            uint32_t rt, int writeback, struct vfl_a64_exit *exit)
{
    int sf = len == 8;
    uint8_t *p = ram(cpu, addr, len);
    uint64_t value = load ? 0 : xr(cpu, rt);
    if (len < 8 && !load) value &= (1ull << (8 * len)) - 1;
    if (p) {
        if (load) set_xr(cpu, rt, load_le(p, len), 1);
        else store_le(p, len, value);
        return STEP_OK;
    }
    if (vgic_mmio(cpu, addr, len, !load, &value)) {
        if (load) set_xr(cpu, rt, len < 8 ? value & ((1ull << (8 * len)) - 1) : value, 1);
        return STEP_OK;
    }
    exit->pc = cpu->pc;
    exit->insn = insn;
    exit->addr = addr;
    exit->len = len;
    exit->is_write = !load;
    exit->data = load ? 0 : value;
    if (writeback) {
        exit->reason = VFL_A64_EXIT_NISV;
        return STEP_EXIT;
    }
    exit->reason = VFL_A64_EXIT_MMIO;
    cpu->mmio = (struct pending_mmio){1, load, rt, len, (uint32_t)sf, 0};
    return STEP_EXIT;
}

static enum step execute(struct vfl_a64 *cpu, uint32_t insn, struct vfl_a64_exit *exit)
{
    uint64_t pc = cpu->pc, next = pc + 4;
    int sf = insn >> 31;
    uint32_t rd = insn & 31, rn = (insn >> 5) & 31, rm = (insn >> 16) & 31;

    if ((insn & 0x1F800000) == 0x12800000) {                    /* MOVN / MOVZ / MOVK */
        uint32_t opc = (insn >> 29) & 3, hw = (insn >> 21) & 3;
        uint64_t imm = (uint64_t)((insn >> 5) & 0xFFFF) << (16 * hw);
        if (opc == 1 || (!sf && hw > 1)) return undef(exit, pc, insn);
        if (opc == 0) set_xr(cpu, rd, ~imm, sf);
        else if (opc == 2) set_xr(cpu, rd, imm, sf);
        else set_xr(cpu, rd, (xr(cpu, rd) & ~(0xFFFFull << (16 * hw))) | imm, sf);
    } else if ((insn & 0x1F800000) == 0x11000000) {             /* ADD/SUB (immediate) */
        int sub = (insn >> 30) & 1, s = (insn >> 29) & 1;
        uint64_t imm = (insn >> 10) & 0xFFF;
        if ((insn >> 22) & 1) imm <<= 12;
        uint64_t a = xr_sp(cpu, rn);
        uint64_t r = sub ? add_with_flags(cpu, a, ~imm, 1, sf, s) : add_with_flags(cpu, a, imm, 0, sf, s);
        if (s) set_xr(cpu, rd, r, sf); else set_xr_sp(cpu, rd, r, sf);
    } else if ((insn & 0x1F800000) == 0x12000000) {             /* logical (immediate) */
        uint32_t opc = (insn >> 29) & 3;
        uint64_t imm;
        if (decode_bit_masks(sf, (insn >> 22) & 1, (insn >> 10) & 0x3F, (insn >> 16) & 0x3F, &imm))
            return undef(exit, pc, insn);
        uint64_t a = xr(cpu, rn), r = opc == 1 ? a | imm : opc == 2 ? a ^ imm : a & imm;
        if (!sf) r = (uint32_t)r;
        if (opc == 3) { logic_flags(cpu, r, sf); set_xr(cpu, rd, r, sf); }
        else set_xr_sp(cpu, rd, r, sf);
    } else if ((insn & 0x1F000000) == 0x0A000000) {             /* logical (shifted register) */
        uint32_t opc = (insn >> 29) & 3, shift = (insn >> 22) & 3, imm6 = (insn >> 10) & 0x3F;
        if (!sf && imm6 >= 32) return undef(exit, pc, insn);
        uint64_t b = shift_reg(xr(cpu, rm), shift, imm6, sf);
        if ((insn >> 21) & 1) b = ~b;
        uint64_t a = xr(cpu, rn), r = opc == 1 ? a | b : opc == 2 ? a ^ b : a & b;
        if (!sf) r = (uint32_t)r;
        if (opc == 3) logic_flags(cpu, r, sf);
        set_xr(cpu, rd, r, sf);
    } else if ((insn & 0x1F200000) == 0x0B000000) {             /* ADD/SUB (shifted register) */
        int sub = (insn >> 30) & 1, s = (insn >> 29) & 1;
        uint32_t shift = (insn >> 22) & 3, imm6 = (insn >> 10) & 0x3F;
        if (shift == 3 || (!sf && imm6 >= 32)) return undef(exit, pc, insn);
        uint64_t b = shift_reg(xr(cpu, rm), shift, imm6, sf), a = xr(cpu, rn);
        uint64_t r = sub ? add_with_flags(cpu, a, ~b, 1, sf, s) : add_with_flags(cpu, a, b, 0, sf, s);
        set_xr(cpu, rd, r, sf);
    } else if ((insn & 0x7C000000) == 0x14000000) {             /* B, BL */
        if (insn >> 31) cpu->x[30] = next;
        next = pc + (uint64_t)(sign_extend(insn & 0x3FFFFFF, 26) * 4);
    } else if ((insn & 0xFF000010) == 0x54000000) {             /* B.cond */
        if (condition_holds(cpu->pstate, insn & 0xF))
            next = pc + (uint64_t)(sign_extend((insn >> 5) & 0x7FFFF, 19) * 4);
    } else if ((insn & 0x7E000000) == 0x34000000) {             /* CBZ / CBNZ */
        uint64_t v = sf ? xr(cpu, rd) : (uint32_t)xr(cpu, rd);
        if ((v == 0) != ((insn >> 24) & 1))
            next = pc + (uint64_t)(sign_extend((insn >> 5) & 0x7FFFF, 19) * 4);
    } else if ((insn & 0xFF9FFC1F) == 0xD61F0000) {             /* BR, BLR, RET */
        uint32_t op = (insn >> 21) & 3;
        uint64_t target = xr(cpu, rn);
        if (op == 1) cpu->x[30] = next;
        next = target;
    } else if (insn == 0xD69F03E0) {                            /* ERET */
        cpu->pstate = cpu->spsr;
        next = cpu->elr;
    } else if ((insn & 0x3B000000) == 0x39000000 && !((insn >> 26) & 1)) {   /* LDR/STR unsigned imm */
        uint32_t size = insn >> 30, opc = (insn >> 22) & 3, len = 1u << size;
        if (opc > 1) return undef(exit, pc, insn);
        uint64_t addr = xr_sp(cpu, rn) + (((insn >> 10) & 0xFFF) << size);
        if (load_store(cpu, insn, addr, len, opc == 1, rd, 0, exit) == STEP_EXIT) return STEP_EXIT;
    } else if ((insn & 0x3B200000) == 0x38000000 && !((insn >> 26) & 1)) {   /* LDUR/STUR, pre/post-index */
        uint32_t size = insn >> 30, opc = (insn >> 22) & 3, len = 1u << size, idx = (insn >> 10) & 3;
        if (opc > 1 || idx == 2) return undef(exit, pc, insn);
        int64_t imm = sign_extend((insn >> 12) & 0x1FF, 9);
        int writeback = idx != 0;
        if (writeback && rn == rd && rn != 31) return undef(exit, pc, insn);   /* CONSTRAINED UNPREDICTABLE */
        uint64_t base = xr_sp(cpu, rn), addr = idx == 1 ? base : base + (uint64_t)imm;
        if (load_store(cpu, insn, addr, len, opc == 1, rd, writeback, exit) == STEP_EXIT) return STEP_EXIT;
        if (writeback) set_xr_sp(cpu, rn, base + (uint64_t)imm, 1);
    } else if ((insn & 0xFFFFF01F) == 0xD503201F) {             /* hints */
        if (((insn >> 5) & 0x7F) == 3) {                        /* WFI */
            cpu->pc = next;
            if (cpu->gic && vfl_vgic3_irq_signalled(cpu->gic)) return STEP_OK;
            exit->reason = VFL_A64_EXIT_WFI;
            exit->pc = pc;
            exit->insn = insn;
            return STEP_EXIT;
        }
    } else if ((insn & 0xFFFFF01F) == 0xD503301F) {             /* CLREX, DSB, DMB, ISB */
        uint32_t op2 = (insn >> 5) & 7;
        if (op2 != 2 && op2 != 4 && op2 != 5 && op2 != 6) return undef(exit, pc, insn);
    } else if ((insn & 0xFFF8F01F) == 0xD500401F) {             /* MSR (immediate) */
        uint32_t op1 = (insn >> 16) & 7, op2 = (insn >> 5) & 7, crm = (insn >> 8) & 0xF;
        if (op1 == 3 && op2 == 6) cpu->pstate |= (uint64_t)crm << 6;          /* DAIFSet */
        else if (op1 == 3 && op2 == 7) cpu->pstate &= ~((uint64_t)crm << 6);  /* DAIFClr */
        else if (op1 == 0 && op2 == 5) cpu->pstate = (cpu->pstate & ~1ull) | (crm & 1);   /* SPSel */
        else return undef(exit, pc, insn);
    } else if ((insn & 0xFFD00000) == 0xD5100000) {             /* MSR / MRS (register) */
        int read = (insn >> 21) & 1;
        uint64_t value = read ? 0 : xr(cpu, rd);
        if (sysreg_access(cpu, (insn >> 5) & 0xFFFF, read, &value)) return undef(exit, pc, insn);
        if (read) set_xr(cpu, rd, value, 1);
    } else {
        return undef(exit, pc, insn);
    }
    cpu->pc = next;
    return STEP_OK;
}

static void complete_mmio(struct vfl_a64 *cpu)
{
    if (!cpu->mmio.active)
        return;
    if (cpu->mmio.load) {
        uint64_t v = cpu->mmio.data;
        if (cpu->mmio.len < 8) v &= (1ull << (8 * cpu->mmio.len)) - 1;
        set_xr(cpu, cpu->mmio.rt, v, 1);
    }
    cpu->mmio.active = 0;
    cpu->pc += 4;
}

uint32_t vfl_a64_run(struct vfl_a64 *cpu, uint64_t budget, struct vfl_a64_exit *exit)
{
    memset(exit, 0, sizeof(*exit));
    complete_mmio(cpu);
    for (uint64_t n = 0; n < budget; n++) {
        uint32_t mode = cpu->pstate & PSR_MODE;
        if (mode != MODE_EL1T && mode != MODE_EL1H) {
            exit->reason = VFL_A64_EXIT_BAD_MODE;
            exit->pc = cpu->pc;
            return exit->reason;
        }
        if (!(cpu->pstate & PSR_I) && cpu->gic && vfl_vgic3_irq_signalled(cpu->gic))
            take_irq(cpu);
        uint8_t *p = (cpu->pc & 3) ? NULL : ram(cpu, cpu->pc, 4);
        if (!p) {
            exit->reason = VFL_A64_EXIT_FETCH;
            exit->pc = cpu->pc;
            return exit->reason;
        }
        uint32_t insn = (uint32_t)load_le(p, 4);
        cpu->steps++;
        if (execute(cpu, insn, exit) == STEP_EXIT)
            return exit->reason;
        /* A deactivated level SPI (EOIR1, DIR, ICACTIVER): the VMM lowers resampled lines and
         * signals resamplefds before the guest goes on, as KVM's EOI maintenance does. */
        if (cpu->gic && vfl_vgic3_eoi_pending(cpu->gic)) {
            exit->reason = VFL_A64_EXIT_EOI;
            exit->pc = cpu->pc;
            return exit->reason;
        }
    }
    exit->reason = VFL_A64_EXIT_BUDGET;
    exit->pc = cpu->pc;
    return exit->reason;
}
