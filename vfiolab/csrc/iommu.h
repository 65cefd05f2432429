/* The sim board's IOMMU (an SMMU model): per-domain IOVA -> host mappings with R/W permissions,
 * one vfl_bus per stream ID, and an event log of faults.
 *
 * A domain is what VFIO type1 programs with MAP_DMA/UNMAP_DMA (one per container here). A stream
 * is one bus master (the SMMU StreamID a device's `iommus` / `iommu-map` names); it is attached to
 * at most one domain. Every access a device model makes goes through its stream's vfl_bus:
 * translate() finds the mapping and checks its permission; when there is none, or no domain, it
 * records a fault (stream, IOVA, access, reason) as an SMMU records an event, and returns NULL.
 * Nothing outside a mapped buffer is ever touched.
 */
#ifndef VFIOLAB_IOMMU_H
#define VFIOLAB_IOMMU_H
#include <stddef.h>
#include <stdint.h>
#include "bus.h"

/* cffi-begin */
/* DOORBELL: the mapping is an MSI doorbell page (the ITS GITS_TRANSLATER or a GICv2m frame),
 * mapped by the kernel in the MSI window. Host memory behind it is a scratch page; every write
 * through it is logged (vfl_smmu_take_doorbell_writes) so the board can ring the doorbell. */
enum vfl_iommu_prot { VFL_IOMMU_READ = 1, VFL_IOMMU_WRITE = 2, VFL_IOMMU_DOORBELL = 4 };

/* Why a translation failed (like SMMUv3 event types: C_BAD_STE 0x04, F_TRANSLATION 0x10,
 * F_PERMISSION 0x13). */
enum vfl_iommu_fault_reason {
    VFL_FAULT_NO_DOMAIN = 0x04,    /* stream attached to no domain: the SMMU aborts it */
    VFL_FAULT_TRANSLATION = 0x10,  /* no mapping at this IOVA */
    VFL_FAULT_PERMISSION = 0x13,   /* mapping exists but forbids this access */
};

struct vfl_iommu_fault {
    uint32_t stream;
    int access;          /* enum vfl_bus_access */
    int reason;          /* enum vfl_iommu_fault_reason */
    uint64_t iova;
    uint64_t len;        /* bytes the access wanted from this IOVA on */
};

/* A write that reached a doorbell mapping: host points at the written bytes in the scratch page. */
struct vfl_iommu_doorbell_write {
    uint32_t stream;
    uint64_t iova;
    uint64_t len;
    uintptr_t host;
};

struct vfl_smmu;
struct vfl_iommu_domain;

struct vfl_smmu *vfl_smmu_new(size_t fault_capacity);
void vfl_smmu_free(struct vfl_smmu *smmu);

/* A stream's bus (created on first use; stays valid until vfl_smmu_free). */
struct vfl_bus *vfl_smmu_stream_bus(struct vfl_smmu *smmu, uint32_t stream);
/* Route a stream's accesses through domain (NULL: abort every access). 0 or -ENOMEM. */
int vfl_smmu_attach(struct vfl_smmu *smmu, uint32_t stream, struct vfl_iommu_domain *domain);

/* Faults recorded so far (the oldest are dropped when the log is full). */
size_t vfl_smmu_fault_count(const struct vfl_smmu *smmu);    /* total ever recorded */
size_t vfl_smmu_faults(const struct vfl_smmu *smmu, struct vfl_iommu_fault *out, size_t max);
void vfl_smmu_clear_faults(struct vfl_smmu *smmu);
/* Record a fault found outside translate() (e.g. an MSI write to an unmapped doorbell IOVA). */
void vfl_smmu_record_fault(struct vfl_smmu *smmu, uint32_t stream, uint64_t iova, uint64_t len,
                           int access, int reason);

/* An IOVA range [start, end). */
struct vfl_iommu_range {
    uint64_t start, end;
};

/* What stream has written so far (successful DMA writes, doorbells included), as sorted disjoint
 * ranges: fills up to max of out (may be NULL), returns how many there are. */
size_t vfl_smmu_written(const struct vfl_smmu *smmu, uint32_t stream, struct vfl_iommu_range *out,
                        size_t max);
void vfl_smmu_clear_written(struct vfl_smmu *smmu, uint32_t stream);

/* Doorbell writes since the last call, oldest first (at most max; the log holds 64). */
size_t vfl_smmu_take_doorbell_writes(struct vfl_smmu *smmu, struct vfl_iommu_doorbell_write *out,
                                     size_t max);

struct vfl_iommu_domain *vfl_domain_new(void);
/* Detach the domain from every stream of smmu (may be NULL) and free it. */
void vfl_domain_free(struct vfl_smmu *smmu, struct vfl_iommu_domain *domain);
/* Map [iova, iova + size) to host memory at host with prot (VFL_IOMMU_*).
 * 0; -EINVAL (size 0, wrap, no prot); -EEXIST (overlaps a mapping); -ENOMEM. */
int vfl_domain_map(struct vfl_iommu_domain *domain, uint64_t iova, uint64_t size, uintptr_t host,
                   int prot);
/* Remove every mapping that lies entirely inside [iova, iova + size); returns bytes removed.
 * Policy (which ranges may be unmapped) is VFIO's, in Python; this only edits the table. */
uint64_t vfl_domain_unmap(struct vfl_iommu_domain *domain, uint64_t iova, uint64_t size);
size_t vfl_domain_mapping_count(const struct vfl_iommu_domain *domain);
/* The i-th mapping in IOVA order: 0, or -ENOENT past the end. */
int vfl_domain_mapping(const struct vfl_iommu_domain *domain, size_t i, uint64_t *iova,
                       uint64_t *size, uintptr_t *host, int *prot);

/* Copy through a bus, chunk by chunk as translate() allows: 0, or -EFAULT at the first fault
 * (bytes before it were transferred, as a real DMA would have). */
int vfl_dma_read(struct vfl_bus *bus, uint64_t addr, void *dst, uint64_t len);
int vfl_dma_write(struct vfl_bus *bus, uint64_t addr, const void *src, uint64_t len);
/* cffi-end */

#endif
