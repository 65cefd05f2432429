"""Bad input never crashes, hangs or reads outside memory: random bytes as programs, random
register writes (debug instructions included), random peripheral requests and configurations, with
vfiolab/csrc/pl330.c compiled with AddressSanitizer and UndefinedBehaviorSanitizer in a small C
harness. Any sanitizer report aborts the harness and fails the test."""
import pytest

import sanitizer_harness

PROGRAMS = 20000

HARNESS = sanitizer_harness.RANDOM_C + r"""
#include "pl330.h"
#include "flatmem.h"

/* A bus with holes: every other 4 KiB page of a 256 KiB window faults, as an IOMMU would. */
static uint8_t holey_mem[256 << 10];
static uint8_t *holey_translate(void *ctx, uint64_t addr, uint64_t *len, int access)
{
    if (addr >= sizeof(holey_mem) || ((addr >> 12) % 3) == 2)
        return NULL;
    uint64_t room = 4096 - (addr & 4095);
    if (*len > room)
        *len = room;
    return holey_mem + addr;
}

static const uint8_t useful[] = {0x00, 0x04, 0x05, 0x07, 0x08, 0x09, 0x0B, 0x0C, 0x12, 0x13,
                                 0x18, 0x20, 0x22, 0x25, 0x27, 0x29, 0x2B, 0x30, 0x31, 0x32,
                                 0x34, 0x35, 0x36, 0x38, 0x3C, 0x28, 0x2C, 0x3D, 0x54, 0x56,
                                 0x5C, 0x5E, 0xBC, 0xA0, 0x01, 0x04, 0x08, 0x04, 0x08, 0x38};

static uint32_t starts[64];

static int length_of(uint8_t op)
{
    if (op >= 0xA0) return 6;
    if (op >= 0x54) return 3;
    if (op >= 0x20) return 2;
    return 1;
}

static uint32_t put_mov(uint8_t *p, uint32_t i, uint8_t reg, uint32_t v)
{
    p[i] = 0xBC;
    p[i + 1] = reg;
    memcpy(p + i + 2, &v, 4);
    return i + 6;
}

/* Copy loops (Linux's shape and others, some strided by DMAADDH) with random CCRs and addresses:
 * the queues, the MFIFO and the fast path get exercised, and addresses run off the end of memory. */
static void copy_program(uint8_t *p, uint32_t n, uint32_t size)
{
    uint32_t i = 0;
    while (i + 40 <= n) {
        uint32_t ccr = rnd();
        if (rnd() % 4) {
            uint32_t s = rnd() % 4, b = rnd() % 16;
            ccr = 1 | s << 1 | b << 4 | 1 << 14 | s << 15 | b << 18;
        }
        i = put_mov(p, i, 1, ccr);
        i = put_mov(p, i, 0, rnd() % (size + 4096));
        i = put_mov(p, i, 2, rnd() % (size + 4096));
        uint32_t body = i + 2;
        p[i++] = 0x22;
        p[i++] = (uint8_t)rnd();
        p[i++] = 0x04;
        if (rnd() & 1) p[i++] = 0x12;
        p[i++] = 0x08;
        if (rnd() % 4) p[i++] = 0x13;
        for (int k = 0; k < 2; k++)   /* DMAADDH SAR/DAR: strided streams for the fast path */
            if (rnd() % 3 == 0) { p[i++] = (uint8_t)(0x54 | k << 1); p[i++] = (uint8_t)(rnd() % 200); p[i++] = 0; }
        p[i++] = 0x3C;
        p[i] = (uint8_t)(i - 1 - body);
        i++;
        if (rnd() & 1) { p[i++] = 0x34; p[i++] = (uint8_t)((rnd() % 16) << 3); }
    }
    while (i < n)
        p[i++] = 0x00;
}

/* Mostly valid instructions with operands in and around their legal ranges, so that programs
 * run for a while (loops, loads and stores, events, peripherals) before something faults. */
static void random_program(uint8_t *p, uint32_t n, uint32_t base, uint32_t size)
{
    uint32_t bounds[256], nb = 0, i = 0;
    while (i + 6 <= n) {
        if (nb < 256)
            bounds[nb++] = i;
        if (rnd() % 25 == 0) {
            p[i++] = (uint8_t)rnd();
            continue;
        }
        uint8_t op = useful[rnd() % sizeof(useful)];
        int len = length_of(op);
        p[i] = op;
        for (int k = 1; k < len; k++)
            p[i + k] = (uint8_t)rnd();
        switch (op) {
        case 0xBC: {
            uint32_t reg = rnd() % 8 ? rnd() % 3 : rnd() % 256, v = rnd();
            if (reg == 1 && rnd() % 4) {   /* a CCR the bus can carry, mostly */
                v &= ~((7u << 1) | (7u << 15) | (7u << 28) | (1u << 31));
                v |= (rnd() % 4) << 1 | (rnd() % 4) << 15 | (rnd() % 6 == 0 ? (rnd() % 8) << 28 : 0);
            } else if (reg != 1 && rnd() % 4) {
                v = rnd() % (size + 1024);
            }
            p[i + 1] = (uint8_t)reg;
            memcpy(p + i + 2, &v, 4);
            break;
        }
        case 0x20: case 0x22:
            p[i + 1] = (uint8_t)(rnd() % 4 ? rnd() % 8 : rnd());
            break;
        case 0x28: case 0x2C: case 0x38: case 0x3C: case 0x3D:
            p[i + 1] = (uint8_t)(nb > 1 && rnd() % 8 ? i - bounds[rnd() % (nb - 1)] : rnd());
            break;
        case 0x25: case 0x27: case 0x29: case 0x2B: case 0x30: case 0x31: case 0x32: case 0x35:
        case 0x34: case 0x36:
            p[i + 1] = (uint8_t)(rnd() % 8 ? (rnd() % 34) << 3 : rnd());
            break;
        case 0xA0: {
            uint32_t pc = starts[rnd() % 64];
            p[i + 1] = (uint8_t)(rnd() % 9);
            memcpy(p + i + 2, &pc, 4);
            break;
        }
        }
        i += (uint32_t)len;
    }
    while (i < n)
        p[i++] = 0x00;
    (void)base;
}

int main(int argc, char **argv)
{
    state = 0x9E3779B97F4A7C15ull ^ (uint64_t)atoll(argv[1]);
    int programs = atoi(argv[2]);
    struct vfl_flatmem *flat = vfl_flatmem_new(64 << 10);
    for (int n = 0; n < programs; n++) {
        struct vfl_pl330_config c;
        vfl_pl330_default_config(&c);
        c.channels = 1 + rnd() % 8;
        c.peripherals = rnd() % 33;
        c.events = 1 + rnd() % 32;
        c.mfifo_lines = 1 + rnd() % 64;
        c.read_queue_depth = 1 + rnd() % 16;
        c.write_queue_depth = 1 + rnd() % 16;
        c.data_width_bits = 32u << (rnd() % 3);
        c.manager_nonsecure = rnd() & 1;
        c.irq_nonsecure = rnd();
        c.periph_nonsecure = rnd();
        c.boot_manager = (rnd() % 8) == 0;
        c.boot_address = rnd() % (64 << 10);
        int holey = rnd() & 1;
        struct vfl_bus bus = vfl_flatmem_bus(flat);
        if (holey)
            bus = (struct vfl_bus){ holey_translate, NULL };
        uint8_t *mem = holey ? holey_mem : vfl_flatmem_base(flat);
        uint32_t size = holey ? sizeof(holey_mem) : (64 << 10);
        struct vfl_pl330 *d = vfl_pl330_new(&c, bus);
        if (!d) { fprintf(stderr, "config rejected\n"); return 2; }
        for (uint32_t i = 0; i < 64; i++) {
            starts[i] = rnd() % (size - 256);
            if (rnd() % 16 == 0)
                starts[i] = rnd();
        }
        for (uint32_t i = 0; i < 64; i++) {
            if (starts[i] >= size - 256)
                continue;
            if (rnd() % 3 == 0)
                copy_program(mem + starts[i], 32 + rnd() % 200, size);
            else
                random_program(mem + starts[i], 32 + rnd() % 200, starts[i], size);
        }
        int allow_fast = rnd() & 1;
        for (int round = 0; round < 30; round++) {
            uint32_t what = rnd() % 8;
            if (what < 3 || round < 2) {          /* DMAGO / DMAKILL / DMASEV / anything via the debug regs */
                uint32_t op = (rnd() & 1) ? (rnd() & 1 ? 0xA0 : 0xA2) : (uint8_t)rnd();
                uint32_t inst0 = op << 16 | (rnd() % 8) << 24 | (rnd() & 1) | (rnd() % 8) << 8;
                if (rnd() & 1)
                    inst0 = rnd();
                vfl_pl330_writel(d, 0xD08, inst0);
                vfl_pl330_writel(d, 0xD0C, rnd() % 8 ? starts[rnd() % 64] : rnd());
                vfl_pl330_writel(d, 0xD04, rnd() % 4 == 0 ? rnd() : 0);
            } else if (what < 5) {
                vfl_pl330_writel(d, rnd() % 0x1100, rnd());
            } else if (what == 5) {
                vfl_pl330_request(d, rnd() % 40, rnd() & 1, rnd() & 1);
            } else {
                vfl_pl330_run(d, rnd() % 20000, allow_fast);
            }
            for (uint32_t off = 0; off < 0x1000; off += 4 * (1 + rnd() % 64))
                (void)vfl_pl330_readl(d, off);
            struct vfl_pl330_thread t;
            for (int th = -1; th < 9; th++)
                vfl_pl330_thread_state(d, th, &t);
            (void)vfl_pl330_irq_lines(d);
            (void)vfl_pl330_abort_line(d);
        }
        vfl_pl330_run(d, 50000, allow_fast);
        if (rnd() & 1)
            vfl_pl330_reset(d);
        vfl_pl330_free(d);
    }
    vfl_flatmem_free(flat);
    printf("ok %d\n", programs);
    return 0;
}
"""


harness = sanitizer_harness.fixture("pl330fuzz", HARNESS, "pl330.c", "flatmem.c")


@pytest.mark.parametrize("seed", [1, 2])
def test_random_programs_and_register_writes_under_sanitizers(harness, seed):
    run = sanitizer_harness.run(harness, seed, PROGRAMS // 2, timeout=300)
    assert run.returncode == 0 and run.stdout.strip() == f"ok {PROGRAMS // 2}", run.stderr[-4000:]
