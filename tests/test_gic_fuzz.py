"""Bad input never crashes, hangs or reaches outside memory: random ITS command words, random
register writes of every size (ITS frame, TRANSLATER, redistributors, the v2m frame), tables and
queues placed over holes and past the end of memory, with vfiolab/csrc/gic_its.c and gic_v2m.c
compiled with AddressSanitizer and UndefinedBehaviorSanitizer in a small C harness. Any sanitizer
report aborts the harness and fails the test."""
import pytest

import sanitizer_harness

ROUNDS = 3000

HARNESS = sanitizer_harness.RANDOM_C + r"""
#include "gic_its.h"
#include "gic_v2m.h"
#include "flatmem.h"

/* 1 MiB of memory where every third 4 KiB page faults, as an IOMMU with holes would. */
#define MEM (1u << 20)
static uint8_t mem[MEM];
static uint8_t *holey_translate(void *ctx, uint64_t addr, uint64_t *len, int access)
{
    if (addr >= MEM || ((addr >> 12) % 3) == 2)
        return NULL;
    uint64_t room = 4096 - (addr & 4095);
    if (*len > room)
        *len = room;
    return mem + addr;
}

static uint64_t some_address(void)
{
    switch (rnd() % 6) {
    case 0: return rnd64();                               /* anywhere */
    case 1: return MEM - (rnd() % 64);                    /* straddling the end */
    default: return (rnd() % MEM) & ~0xFFFull;            /* a page of memory (or a hole) */
    }
}

static const uint8_t opcodes[] = {0x01, 0x03, 0x04, 0x05, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D,
                                  0x0E, 0x0F, 0x00, 0x22, 0xFF};

static void random_command(uint8_t *p)
{
    uint64_t dw[4] = { rnd64(), rnd64(), rnd64(), rnd64() };
    dw[0] = (dw[0] & ~0xFFull) | opcodes[rnd() % sizeof(opcodes)];
    if (rnd() % 2) dw[0] = (dw[0] & 0xFF) | (uint64_t)(rnd() % 8) << 32;      /* small DeviceID */
    if (rnd() % 2) dw[1] = (rnd() % 40) | (uint64_t)(8192 + rnd() % 300) << 32; /* event, LPI */
    if (rnd() % 2) dw[1] = (dw[1] & ~0x1Full) | rnd() % 8;                    /* MAPD size */
    if (rnd() % 2) dw[2] = (some_address() & ((1ull << 52) - 256)) | (uint64_t)(rnd() % 2) << 63;
    if (rnd() % 2) dw[2] = (dw[2] & ~0xFFFF00000000FFFFull) | rnd() % 6
                           | (uint64_t)(rnd() % 3) << 16;                     /* ICID, RDbase */
    memcpy(p, dw, 32);
}

static uint64_t baser_value(void)
{
    return (uint64_t)(rnd() % 8 != 0) << 63 | (rnd64() & 0x7FFFFFFFFFFFFFFFull & ~0xFFFFull)
           | (some_address() & 0xFFFFFFFFF000ull) | (rnd() % 4) << 8 | (rnd() % 3 ? rnd() % 4 : rnd() % 256);
}

int main(int argc, char **argv)
{
    state = 0x9E3779B97F4A7C15ull ^ (uint64_t)atoi(argv[1]);
    int rounds = atoi(argv[2]);
    struct vfl_bus bus = { holey_translate, NULL, NULL };
    struct vfl_its_record recs[64];
    uint64_t commands = 0, stalls = 0, pending = 0, errors = 0;
    for (int round = 0; round < rounds; round++) {
        struct vfl_its *its = vfl_its_new(bus, 1 + rnd() % VFL_ITS_MAX_CPUS);
        struct vfl_v2m *v2m = vfl_v2m_new(32 + rnd() % 900, 1 + rnd() % 100);
        if (!its) return 2;
        for (uint32_t cpu = 0; cpu < VFL_ITS_MAX_CPUS + 1; cpu++) {
            vfl_gicr_write(its, cpu, 0x70, some_address() | (rnd() % 32), 8);
            vfl_gicr_write(its, cpu, 0x78, some_address() & ~0xFFFFull, 8);
            vfl_gicr_write(its, cpu, 0, rnd() % 4 != 0, 4);
        }
        vfl_its_write(its, 0x100, baser_value(), 8);
        vfl_its_write(its, 0x108, baser_value(), 8);
        uint64_t queue = some_address();
        vfl_its_write(its, 0x80, (uint64_t)1 << 63 | (queue & 0xFFFFFFFFF000ull) | rnd() % 4, 8);
        vfl_its_write(its, 0, 1, 4);
        for (int step = 0; step < 40; step++) {
            switch (rnd() % 8) {
            case 0: case 1: case 2: {                    /* commands, then CWRITER */
                uint32_t n = 1 + rnd() % 8;
                uint64_t at = vfl_its_read(its, 0x90, 8) & 0xFFFE0;
                for (uint32_t i = 0; i < n; i++) {
                    uint8_t c[32];
                    random_command(c);
                    vfl_bus_write(&bus, (queue & 0xFFFFFFFFF000ull) + at + 32 * i, c, 32);
                }
                vfl_its_write(its, 0x88, at + 32 * n + (rnd() % 16 == 0 ? rnd() : rnd() % 2), 8);
                break;
            }
            case 3:                                       /* translations */
                vfl_its_translate(its, rnd() % 3 ? rnd() % 8 : rnd(), rnd() % 3 ? rnd() % 40 : rnd());
                vfl_its_write(its, 0x10040, rnd(), 4);
                break;
            case 4: {                                     /* any ITS register, any size */
                unsigned sizes[] = {1, 2, 4, 8};
                vfl_its_write(its, rnd() % 3 ? rnd() % 0x200 : rnd64() % 0x30000, rnd64(), sizes[rnd() % 4]);
                vfl_its_read(its, rnd() % 3 ? rnd() % 0x200 : rnd64() % 0x30000, sizes[rnd() % 4]);
                break;
            }
            case 5: {                                     /* redistributors */
                uint32_t cpu = rnd() % (VFL_ITS_MAX_CPUS + 2);
                vfl_gicr_write(its, cpu, rnd() % 0x100, rnd64(), rnd() % 2 ? 4 : 8);
                vfl_gicr_read(its, cpu, rnd() % 0x100, rnd() % 2 ? 4 : 8);
                vfl_gicr_lpi_pending(its, cpu, rnd() % 3 ? 8192 + rnd() % 300 : rnd());
                vfl_gicr_set_lpi(its, cpu, rnd() % 3 ? 8192 + rnd() % 300 : rnd(), rnd() % 2);
                break;
            }
            case 6:
                if (v2m) {
                    unsigned sizes[] = {1, 2, 4, 8};
                    vfl_v2m_write(v2m, rnd() % 3 ? 0x40 : rnd64() % 0x2000, rnd64(), sizes[rnd() % 4]);
                    vfl_v2m_read(v2m, rnd() % 0x2000, sizes[rnd() % 4]);
                    uint32_t raised[8]; uint64_t lost;
                    vfl_v2m_take_raised(v2m, raised, rnd() % 9, &lost);
                }
                break;
            default: {
                uint32_t n = vfl_its_take_records(its, recs, rnd() % 65);
                for (uint32_t i = 0; i < n; i++)
                    pending += recs[i].kind == VFL_ITS_LPI_PENDING;
            }
            }
        }
        struct vfl_its_stats st;
        vfl_its_stats(its, &st);
        commands += st.commands; stalls += st.stalls; errors += st.command_errors;
        vfl_its_free(its);
        vfl_v2m_free(v2m);
    }
    printf("ok %d %llu %llu %llu %llu\n", rounds, (unsigned long long)commands,
           (unsigned long long)errors, (unsigned long long)stalls, (unsigned long long)pending);
    return 0;
}
"""


harness = sanitizer_harness.fixture("gicfuzz", HARNESS, "gic_its.c", "gic_v2m.c", "flatmem.c")


@pytest.mark.parametrize("seed", [1, 2])
def test_random_commands_and_register_writes_under_sanitizers(harness, seed):
    run = sanitizer_harness.run(harness, seed, ROUNDS // 2, timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]
    ok, rounds, commands, errors, stalls, pending = run.stdout.split()
    assert (ok, int(rounds)) == ("ok", ROUNDS // 2)
    # The random input reaches every path: commands run, fail, stall, and LPIs become pending.
    assert min(int(commands), int(errors), int(stalls), int(pending)) > 0, run.stdout
