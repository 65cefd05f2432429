/* The sim board's IOMMU model: see iommu.h. Mappings are kept sorted by IOVA in an array, so a
 * translation is a binary search; domains are small (VFIO caps them at 65535 mappings). */
#include "iommu.h"
#include "flatmem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct vfl_mapping {
    uint64_t iova, size;
    uintptr_t host;
    int prot;
};

struct vfl_iommu_domain {
    struct vfl_mapping *maps;
    size_t count, capacity;
};

/* What a stream wrote: sorted, disjoint, non-adjacent [start, end) IOVA ranges. */
struct vfl_written {
    struct vfl_iommu_range *r;
    size_t n, capacity;
};

/* Past this many ranges the two closest merge (the record may then claim a gap was written:
 * never that written bytes were not). */
#define WRITTEN_MAX 4096

struct vfl_stream {
    struct vfl_bus bus;          /* first: the bus handed out is the stream itself */
    struct vfl_smmu *smmu;
    uint32_t id;
    struct vfl_iommu_domain *domain;
    struct vfl_written written;
};

#define DOORBELL_LOG 64

struct vfl_smmu {
    struct vfl_stream **streams;
    size_t nstreams, stream_capacity;
    struct vfl_iommu_doorbell_write doorbells[DOORBELL_LOG];   /* ring */
    size_t doorbell_head, doorbell_count;
    struct vfl_iommu_fault *faults;   /* ring buffer */
    size_t fault_capacity, fault_total;
};

/* ---- domains ------------------------------------------------------------------------------- */

struct vfl_iommu_domain *vfl_domain_new(void)
{
    return calloc(1, sizeof(struct vfl_iommu_domain));
}

void vfl_domain_free(struct vfl_smmu *smmu, struct vfl_iommu_domain *domain)
{
    if (!domain)
        return;
    if (smmu)
        for (size_t i = 0; i < smmu->nstreams; i++)
            if (smmu->streams[i]->domain == domain)
                smmu->streams[i]->domain = NULL;
    free(domain->maps);
    free(domain);
}

/* Index of the first mapping whose end is above iova (count when none). */
static size_t first_ending_above(const struct vfl_iommu_domain *d, uint64_t iova)
{
    size_t lo = 0, hi = d->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct vfl_mapping *m = &d->maps[mid];
        if (m->iova + (m->size - 1) < iova)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int vfl_domain_map(struct vfl_iommu_domain *d, uint64_t iova, uint64_t size, uintptr_t host, int prot)
{
    if (!size || iova + (size - 1) < iova ||
        !(prot & (VFL_IOMMU_READ | VFL_IOMMU_WRITE)) || (prot & ~(VFL_IOMMU_READ | VFL_IOMMU_WRITE | VFL_IOMMU_DOORBELL)))
        return -EINVAL;
    size_t at = first_ending_above(d, iova);
    if (at < d->count && d->maps[at].iova <= iova + (size - 1))
        return -EEXIST;
    if (d->count == d->capacity) {
        size_t capacity = d->capacity ? 2 * d->capacity : 16;
        struct vfl_mapping *maps = realloc(d->maps, capacity * sizeof(*maps));
        if (!maps)
            return -ENOMEM;
        d->maps = maps;
        d->capacity = capacity;
    }
    memmove(&d->maps[at + 1], &d->maps[at], (d->count - at) * sizeof(*d->maps));
    d->maps[at] = (struct vfl_mapping){ .iova = iova, .size = size, .host = host, .prot = prot };
    d->count++;
    return 0;
}

uint64_t vfl_domain_unmap(struct vfl_iommu_domain *d, uint64_t iova, uint64_t size)
{
    if (!size)
        return 0;
    uint64_t last = iova + (size - 1) < iova ? UINT64_MAX : iova + (size - 1);
    uint64_t removed = 0;
    size_t keep = 0;
    for (size_t i = 0; i < d->count; i++) {
        const struct vfl_mapping *m = &d->maps[i];
        if (m->iova >= iova && m->iova + (m->size - 1) <= last)
            removed += m->size;
        else
            d->maps[keep++] = *m;
    }
    d->count = keep;
    return removed;
}

size_t vfl_domain_mapping_count(const struct vfl_iommu_domain *d)
{
    return d->count;
}

int vfl_domain_mapping(const struct vfl_iommu_domain *d, size_t i, uint64_t *iova, uint64_t *size,
                       uintptr_t *host, int *prot)
{
    if (i >= d->count)
        return -ENOENT;
    *iova = d->maps[i].iova;
    *size = d->maps[i].size;
    *host = d->maps[i].host;
    *prot = d->maps[i].prot;
    return 0;
}

/* ---- the SMMU: streams and the fault log --------------------------------------------------- */

struct vfl_smmu *vfl_smmu_new(size_t fault_capacity)
{
    struct vfl_smmu *smmu = calloc(1, sizeof(*smmu));
    if (!smmu)
        return NULL;
    smmu->fault_capacity = fault_capacity ? fault_capacity : 1;
    smmu->faults = calloc(smmu->fault_capacity, sizeof(*smmu->faults));
    if (!smmu->faults) {
        free(smmu);
        return NULL;
    }
    return smmu;
}

void vfl_smmu_free(struct vfl_smmu *smmu)
{
    if (!smmu)
        return;
    for (size_t i = 0; i < smmu->nstreams; i++) {
        free(smmu->streams[i]->written.r);
        free(smmu->streams[i]);
    }
    free(smmu->streams);
    free(smmu->faults);
    free(smmu);
}

void vfl_smmu_record_fault(struct vfl_smmu *smmu, uint32_t stream, uint64_t iova, uint64_t len,
                           int access, int reason)
{
    struct vfl_iommu_fault *f = &smmu->faults[smmu->fault_total % smmu->fault_capacity];
    *f = (struct vfl_iommu_fault){ .stream = stream, .access = access, .reason = reason,
                                   .iova = iova, .len = len };
    smmu->fault_total++;
}

size_t vfl_smmu_fault_count(const struct vfl_smmu *smmu)
{
    return smmu->fault_total;
}

size_t vfl_smmu_faults(const struct vfl_smmu *smmu, struct vfl_iommu_fault *out, size_t max)
{
    size_t kept = smmu->fault_total < smmu->fault_capacity ? smmu->fault_total : smmu->fault_capacity;
    size_t first = smmu->fault_total - kept;
    size_t n = kept < max ? kept : max;
    for (size_t i = 0; i < n; i++)
        out[i] = smmu->faults[(first + i) % smmu->fault_capacity];
    return n;
}

void vfl_smmu_clear_faults(struct vfl_smmu *smmu)
{
    smmu->fault_total = 0;
}

static void log_doorbell(struct vfl_smmu *smmu, uint32_t stream, uint64_t iova, uint64_t len,
                         uintptr_t host)
{
    size_t at = (smmu->doorbell_head + smmu->doorbell_count) % DOORBELL_LOG;
    if (smmu->doorbell_count == DOORBELL_LOG)
        smmu->doorbell_head = (smmu->doorbell_head + 1) % DOORBELL_LOG;   /* drop the oldest */
    else
        smmu->doorbell_count++;
    smmu->doorbells[at] = (struct vfl_iommu_doorbell_write){ .stream = stream, .iova = iova,
                                                             .len = len, .host = host };
}

size_t vfl_smmu_take_doorbell_writes(struct vfl_smmu *smmu, struct vfl_iommu_doorbell_write *out,
                                     size_t max)
{
    size_t n = smmu->doorbell_count < max ? smmu->doorbell_count : max;
    for (size_t i = 0; i < n; i++)
        out[i] = smmu->doorbells[(smmu->doorbell_head + i) % DOORBELL_LOG];
    smmu->doorbell_head = (smmu->doorbell_head + n) % DOORBELL_LOG;
    smmu->doorbell_count -= n;
    return n;
}

static uint8_t *stream_translate(void *ctx, uint64_t addr, uint64_t *len, int access)
{
    struct vfl_stream *s = ctx;
    uint64_t want = *len ? *len : 1;
    struct vfl_iommu_domain *d = s->domain;
    if (!d) {
        vfl_smmu_record_fault(s->smmu, s->id, addr, want, access, VFL_FAULT_NO_DOMAIN);
        return NULL;
    }
    size_t at = first_ending_above(d, addr);
    if (at == d->count || d->maps[at].iova > addr) {
        vfl_smmu_record_fault(s->smmu, s->id, addr, want, access, VFL_FAULT_TRANSLATION);
        return NULL;
    }
    const struct vfl_mapping *m = &d->maps[at];
    int need = access == VFL_BUS_WRITE ? VFL_IOMMU_WRITE : VFL_IOMMU_READ;
    if (!(m->prot & need)) {
        vfl_smmu_record_fault(s->smmu, s->id, addr, want, access, VFL_FAULT_PERMISSION);
        return NULL;
    }
    uint64_t offset = addr - m->iova;
    uint64_t left = m->size - offset;
    if (*len > left)
        *len = left;
    if ((m->prot & VFL_IOMMU_DOORBELL) && access == VFL_BUS_WRITE)
        log_doorbell(s->smmu, s->id, addr, *len ? *len : 1, m->host + offset);
    return (uint8_t *)(m->host + offset);
}

static struct vfl_stream *find_stream(const struct vfl_smmu *smmu, uint32_t stream)
{
    for (size_t i = 0; i < smmu->nstreams; i++)
        if (smmu->streams[i]->id == stream)
            return smmu->streams[i];
    return NULL;
}

/* ---- what each stream wrote ------------------------------------------------------------------ */

static void merge_closest(struct vfl_written *w)
{
    size_t best = 0;
    for (size_t i = 1; i + 1 < w->n; i++)
        if (w->r[i + 1].start - w->r[i].end < w->r[best + 1].start - w->r[best].end)
            best = i;
    w->r[best].end = w->r[best + 1].end;
    memmove(&w->r[best + 1], &w->r[best + 2], (w->n - best - 2) * sizeof(*w->r));
    w->n--;
}

static void stream_wrote(void *ctx, uint64_t addr, uint64_t len)
{
    struct vfl_written *w = &((struct vfl_stream *)ctx)->written;
    uint64_t start = addr, end = addr + len;
    if (!len || end < start)
        return;      /* a write ending at 2^64 wraps: VFIO's IOVAs (48 bits) never get there */
    /* The common case, a copy going up: it extends the last range. */
    if (w->n && w->r[w->n - 1].start <= start && start <= w->r[w->n - 1].end) {
        if (end > w->r[w->n - 1].end)
            w->r[w->n - 1].end = end;
        return;
    }
    size_t lo = 0;                /* first range ending at or after start */
    while (lo < w->n && w->r[lo].end < start)
        lo++;
    size_t hi = lo;               /* ranges [lo, hi) touch [start, end): merge them */
    while (hi < w->n && w->r[hi].start <= end)
        hi++;
    if (hi > lo) {
        if (w->r[lo].start < start)
            start = w->r[lo].start;
        if (w->r[hi - 1].end > end)
            end = w->r[hi - 1].end;
        w->r[lo].start = start;
        w->r[lo].end = end;
        memmove(&w->r[lo + 1], &w->r[hi], (w->n - hi) * sizeof(*w->r));
        w->n -= hi - lo - 1;
        return;
    }
    if (w->n == w->capacity) {
        size_t capacity = w->capacity ? 2 * w->capacity : 16;
        struct vfl_iommu_range *r = capacity <= WRITTEN_MAX ? realloc(w->r, capacity * sizeof(*r)) : NULL;
        if (r) {
            w->r = r;
            w->capacity = capacity;
        } else if (w->n >= 2) {                          /* full, or out of memory */
            merge_closest(w);
            stream_wrote(ctx, start, end - start);       /* the table changed: place it again */
            return;
        } else {
            return;                                      /* out of memory with no table at all */
        }
    }
    memmove(&w->r[lo + 1], &w->r[lo], (w->n - lo) * sizeof(*w->r));
    w->r[lo].start = start;
    w->r[lo].end = end;
    w->n++;
}

size_t vfl_smmu_written(const struct vfl_smmu *smmu, uint32_t stream, struct vfl_iommu_range *out,
                        size_t max)
{
    const struct vfl_stream *s = find_stream(smmu, stream);
    size_t n = s ? s->written.n : 0;
    if (out && n)
        memcpy(out, s->written.r, (n < max ? n : max) * sizeof(*out));
    return n;
}

void vfl_smmu_clear_written(struct vfl_smmu *smmu, uint32_t stream)
{
    struct vfl_stream *s = find_stream(smmu, stream);
    if (s)
        s->written.n = 0;
}

struct vfl_bus *vfl_smmu_stream_bus(struct vfl_smmu *smmu, uint32_t stream)
{
    struct vfl_stream *known = find_stream(smmu, stream);
    if (known)
        return &known->bus;
    if (smmu->nstreams == smmu->stream_capacity) {
        size_t capacity = smmu->stream_capacity ? 2 * smmu->stream_capacity : 8;
        struct vfl_stream **streams = realloc(smmu->streams, capacity * sizeof(*streams));
        if (!streams)
            return NULL;
        smmu->streams = streams;
        smmu->stream_capacity = capacity;
    }
    struct vfl_stream *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->bus.translate = stream_translate;
    s->bus.wrote = stream_wrote;
    s->bus.ctx = s;
    s->smmu = smmu;
    s->id = stream;
    smmu->streams[smmu->nstreams++] = s;
    return &s->bus;
}

int vfl_smmu_attach(struct vfl_smmu *smmu, uint32_t stream, struct vfl_iommu_domain *domain)
{
    struct vfl_bus *bus = vfl_smmu_stream_bus(smmu, stream);
    if (!bus)
        return -ENOMEM;
    ((struct vfl_stream *)bus->ctx)->domain = domain;
    return 0;
}

/* ---- copying through any bus ---------------------------------------------------------------- */

int vfl_dma_read(struct vfl_bus *bus, uint64_t addr, void *dst, uint64_t len)
{
    return vfl_bus_copy(bus, addr, UINT64_MAX, dst, len, VFL_BUS_READ) ? -EFAULT : 0;
}

int vfl_dma_write(struct vfl_bus *bus, uint64_t addr, const void *src, uint64_t len)
{
    return vfl_bus_copy(bus, addr, UINT64_MAX, (uint8_t *)src, len, VFL_BUS_WRITE) ? -EFAULT : 0;
}
