"""Bad input never crashes, hangs or reaches outside memory: random descriptor rings (random flags,
sizes up to 8 KiB per buffer, addresses anywhere in 32 bits, chained and end-of-ring loops),
random register writes (soft reset, poll demands, W1C, loopback), random frames from the wire, on a
bus with holes, with vfiolab/csrc/xgmac.c compiled with AddressSanitizer and UndefinedBehavior-
Sanitizer in a small C harness. Any sanitizer report aborts the harness and fails the test.
"""
import pytest

import sanitizer_harness

CASES = 4000

HARNESS = sanitizer_harness.RANDOM_C + r"""
#include "xgmac.h"
#include "flatmem.h"

/* 256 KiB of memory where every third 4 KiB page faults, as an IOMMU with gaps would. */
#define MEM (256u << 10)
static uint8_t holey_mem[MEM];
static int holey;
static uint8_t *translate(void *ctx, uint64_t addr, uint64_t *len, int access)
{
    if (addr >= MEM || (holey && ((addr >> 12) % 3) == 2))
        return NULL;
    uint64_t room = 4096 - (addr & 4095);
    if (*len > room)
        *len = room;
    return holey_mem + addr;
}

static int irq_changes;
static void on_irq(void *ctx, int level) { irq_changes++; }

static uint32_t addr_in_memory(void)
{
    if (rnd() % 16 == 0)
        return rnd();                       /* anywhere: mostly a fault */
    return rnd() % MEM;                     /* unaligned too */
}

static void random_ring(uint32_t base, int n)
{
    for (int i = 0; i < n; i++) {
        uint32_t a = base + 32u * i;
        if (a + 32 > MEM)
            return;
        uint32_t w[8] = {0};
        w[0] = rnd();
        if (rnd() & 1) w[0] |= 0x80000000u;
        if (rnd() % 4 == 0) w[0] |= 0x30000000u;   /* FIRST|LAST */
        w[1] = rnd() % 3 ? (rnd() & 0x07FF07FFu) : rnd();
        w[2] = addr_in_memory();
        w[3] = rnd() % 4 ? addr_in_memory() : base + 32u * (rnd() % (n + 1));
        if (i == n - 1 && rnd() % 2) { w[0] |= 1u << 21; w[1] |= 1u << 15; }
        memcpy(holey_mem + a, w, sizeof(w));
    }
}

static const uint32_t regs[] = {0x000, 0x004, 0x018, 0x020, 0x040, 0x044, 0x400, 0xF00, 0xF04,
                                0xF08, 0xF0C, 0xF10, 0xF14, 0xF18, 0xF1C, 0xF20, 0xF48, 0xF4C,
                                0xF58};

int main(int argc, char **argv)
{
    state = 0x9E3779B97F4A7C15ull * (uint64_t)(argc > 1 ? atoi(argv[1]) : 1) | 1;
    int cases = argc > 2 ? atoi(argv[2]) : 1000;
    static uint8_t frame[20000], out[20000];
    uint64_t sent = 0, received = 0, fatal = 0;
    for (int c = 0; c < cases; c++) {
        holey = rnd() & 1;
        memset(holey_mem, 0, MEM);
        uint8_t mac[6] = {2, 0, 0, 0, 0, (uint8_t)c};
        struct vfl_bus bus = { translate, NULL, NULL };
        struct vfl_xgmac *x = vfl_xgmac_new(mac, bus);
        if (!x) { fprintf(stderr, "out of memory\n"); return 2; }
        vfl_xgmac_set_irq_callback(x, on_irq, NULL);
        uint32_t tx = addr_in_memory() & ~31u, rx = addr_in_memory() & ~31u;
        random_ring(tx, 1 + rnd() % 12);
        random_ring(rx, 1 + rnd() % 12);
        vfl_xgmac_writel(x, 0xF10, tx);
        vfl_xgmac_writel(x, 0xF0C, rx);
        vfl_xgmac_writel(x, 0xF1C, rnd());
        vfl_xgmac_writel(x, 0x000, 0xC | (rnd() & 1 ? 0x1000 : 0) | (rnd() & 0x01000000));
        vfl_xgmac_writel(x, 0xF18, 0x2002);
        for (int round = 0; round < 40; round++) {
            uint32_t what = rnd() % 10;
            if (what < 3) {
                uint32_t off = rnd() % 3 ? regs[rnd() % (sizeof(regs) / sizeof(regs[0]))]
                                         : rnd() % 0x1100;
                uint32_t v = rnd();
                if (off == 0xF00 && rnd() % 4) v &= ~1u;   /* soft reset now and then */
                vfl_xgmac_writel(x, off, v);
            } else if (what < 5) {
                uint32_t n = rnd() % 3 ? rnd() % 1600 : rnd() % 17000;
                for (uint32_t i = 0; i < n; i++) frame[i] = (uint8_t)rnd();
                vfl_xgmac_receive(x, frame, n);
            } else if (what == 5) {
                random_ring(rnd() % 2 ? tx : rx, 1 + rnd() % 12);
                vfl_xgmac_writel(x, rnd() & 1 ? 0xF04 : 0xF08, 1);
            } else if (what == 6) {
                while (vfl_xgmac_take_sent(x, out, (rnd() & 1) ? sizeof(out) : rnd() % 64) >= 0)
                    ;
            } else {
                vfl_xgmac_run(x, rnd() % 64);
            }
            for (uint32_t off = 0; off < 0x1000; off += 4 * (1 + rnd() % 64))
                (void)vfl_xgmac_readl(x, off);
            (void)vfl_xgmac_irq_line(x);
            (void)vfl_xgmac_idle(x);
        }
        /* A long run: a ring that re-arms itself (loopback DMA writing OWN into the TX ring)
         * may run for ever, as on hardware, so it is bounded as vfiolab.hw.xgmac's run() is. */
        vfl_xgmac_run(x, 1u << 16);
        struct vfl_xgmac_counters k;
        vfl_xgmac_counters(x, &k);
        sent += k.frames_sent + k.frames_looped;
        received += k.frames_received;
        fatal += (vfl_xgmac_readl(x, 0xF14) >> 13) & 1;
        if (rnd() & 1)
            vfl_xgmac_reset(x);
        vfl_xgmac_free(x);
    }
    printf("ok %d\n%llu %llu %llu\n", cases, (unsigned long long)sent,
           (unsigned long long)received, (unsigned long long)fatal);
    return 0;
}
"""


harness = sanitizer_harness.fixture("xgmacfuzz", HARNESS, "xgmac.c", "flatmem.c")


@pytest.mark.parametrize("seed", [1, 2])
def test_random_rings_registers_and_frames_under_sanitizers(harness, seed):
    run = sanitizer_harness.run(harness, seed, CASES // 2, timeout=120)
    assert run.returncode == 0, run.stderr[-4000:]
    first, counts = run.stdout.splitlines()
    assert first == f"ok {CASES // 2}"
    sent, received, fatal = map(int, counts.split())
    # the random rings really move frames and really hit faults
    assert sent > 100 and received > 100 and fatal > 100, counts
