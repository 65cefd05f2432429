"""What a device wrote by DMA (board.dma_writes): the record checks use to tell a device's work
from bytes the CPU put in a buffer. The C side merges ranges; it is compared with a plain model."""
import random

import pytest

import vfiolab
from vfiolab.board.sim.iommu import Smmu
from vfiolab.hw.pl330 import memcpy_program, PL330

import sanitizer_harness
import scenarios
from scenarios import IOVA, Session, dma_map
from test_sim_vfio import start_channel


def union(ranges):
    """Sorted, merged (start, length) of [(start, length)], touching ranges joined."""
    out = []
    for start, length in sorted(ranges):
        if out and start <= out[-1][0] + out[-1][1]:
            end = max(out[-1][0] + out[-1][1], start + length)
            out[-1] = (out[-1][0], end - out[-1][0])
        else:
            out.append((start, length))
    return out


def report(smmu, stream, writes):
    bus = smmu.bus(stream)
    for start, length in writes:
        bus.wrote(bus.ctx, start, length)


@pytest.mark.parametrize("seed", range(20))
def test_the_record_is_the_union_of_the_writes(seed):
    rng = random.Random(seed)
    smmu = Smmu()
    writes = [(rng.randrange(0, 1 << 16), rng.randrange(1, 600)) for _ in range(rng.randrange(1, 300))]
    report(smmu, 5, writes)
    assert smmu.written(5) == union(writes)
    assert smmu.written(6) == []                   # another stream wrote nothing
    smmu.clear_written(5)
    assert smmu.written(5) == []


def test_a_full_record_only_ever_claims_more():
    smmu = Smmu()
    writes = [(i * 16, 8) for i in range(10_000)]   # 10,000 disjoint ranges: more than it keeps
    report(smmu, 1, writes)
    kept = smmu.written(1)
    assert 1 < len(kept) <= 4096
    assert kept == union(kept)
    for start, length in writes:
        assert any(s <= start and start + length <= s + n for s, n in kept)


def test_the_standalone_pl330_has_no_listener_and_still_copies():
    dma = PL330()
    dma.mem_write(0x1000, bytes(range(256)))
    dma.mem_write(0, memcpy_program(0x1000, 0x2000, 256))
    dma.start(0, 0)
    dma.run()
    assert dma.mem_read(0x2000, 256) == bytes(range(256))


# With barriers the engine copies the loop in bulk (its fast path); without, burst by burst.
@pytest.mark.parametrize("barriers", [True, False], ids=["bulk", "stepped"])
def test_a_pl330_copy_is_recorded_and_a_cpu_write_is_not(barriers):
    with vfiolab.open_board("sim") as board:
        target = scenarios.pl330(board)
        with Session(board, target) as s:
            regs = board.mmap(s.device, 0x1000, 0)
            buf = board.alloc(0x10000)
            dma_map(board, s.container, buf.vaddr, IOVA, 0x10000)
            src, dst, n = IOVA + 0x1000, IOVA + 0x8003, 0x1235
            buf[0x1000:0x1000 + n] = bytes(i * 7 & 0xFF for i in range(n))
            program = memcpy_program(src, dst, n, barriers=barriers)
            buf[0:len(program)] = program
            buf[0xC000:0xC100] = b"\x55" * 0x100        # the CPU: not the device's doing
            assert board.dma_writes(target.name) == []
            start_channel(regs, 0, IOVA)
            for _ in range(100):
                if bytes(buf[0x8003:0x8003 + n]) == bytes(buf[0x1000:0x1000 + n]):
                    break
                board.poll([], 10)
            assert bytes(buf[0x8003:0x8003 + n]) == bytes(buf[0x1000:0x1000 + n])
            assert board.dma_writes(target.name) == [(dst, n)]
            regs.close()
        with pytest.raises(KeyError):
            board.dma_writes("no-such-device")


# The merge code under AddressSanitizer and UBSan: random writes on a 64 KiB window, checked
# against a byte map (exact while the record has room; a superset once it is full).
HARNESS = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "iommu.h"

#define SPAN 65536
static unsigned char map[SPAN];

static int check(struct vfl_smmu *smmu, int exact)
{
    size_t n = vfl_smmu_written(smmu, 3, NULL, 0);
    struct vfl_iommu_range *r = calloc(n + 1, sizeof(*r));
    vfl_smmu_written(smmu, 3, r, n);
    unsigned char seen[SPAN] = {0};
    for (size_t i = 0; i < n; i++) {
        if (r[i].start >= r[i].end || (i && r[i - 1].end >= r[i].start) || r[i].end > SPAN)
            return printf("bad range %zu [%llu, %llu)\n", i, (unsigned long long)r[i].start,
                          (unsigned long long)r[i].end), 1;
        memset(seen + r[i].start, 1, r[i].end - r[i].start);
    }
    free(r);
    for (size_t a = 0; a < SPAN; a++)
        if (map[a] && !seen[a]) return printf("written byte %zu missing\n", a), 1;
        else if (exact && seen[a] && !map[a]) return printf("byte %zu was never written\n", a), 1;
    return 0;
}

int main(int argc, char **argv)
{
    srand((unsigned)atoi(argv[1]));
    struct vfl_smmu *smmu = vfl_smmu_new(16);
    struct vfl_bus *bus = vfl_smmu_stream_bus(smmu, 3);
    for (int round = 0; round < 3; round++) {
        int writes = round == 2 ? 20000 : 400, len_max = round == 2 ? 3 : 700;
        memset(map, 0, sizeof(map));
        vfl_smmu_clear_written(smmu, 3);
        for (int i = 0; i < writes; i++) {
            unsigned long long len = 1 + rand() % len_max;
            unsigned long long at = rand() % (SPAN - len);
            if (round == 2) at = (unsigned long long)(rand() % (SPAN / 4)) * 4;  /* many gaps */
            if (at + len > SPAN) continue;
            bus->wrote(bus->ctx, at, len);
            memset(map + at, 1, len);
            if (i % 97 == 0 && check(smmu, round < 2)) return 1;
        }
        if (check(smmu, round < 2)) return 1;
    }
    vfl_smmu_free(smmu);
    printf("ok\n");
    return 0;
}
"""


def test_the_merge_code_under_sanitizers(tmp_path):
    harness = sanitizer_harness.build(str(tmp_path), HARNESS, "iommu.c", "flatmem.c")
    for seed in (1, 2, 3):
        run = sanitizer_harness.run(harness, seed, timeout=120)
        assert run.returncode == 0 and run.stdout.strip() == "ok", run.stdout + run.stderr[-3000:]
