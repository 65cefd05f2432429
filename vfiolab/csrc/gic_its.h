/* A GICv3 ITS and the LPI side of its redistributors, with every table in memory.
 *
 * The ITS (GICv3 architecture, chapter 6; programmed as Linux's irq-gic-v3-its.c does):
 *   GITS_CTLR 0x0 (Enabled; Quiescent reads 1), GITS_IIDR 0x4, GITS_TYPER 0x8, GITS_CBASER 0x80,
 *   GITS_CWRITER 0x88, GITS_CREADR 0x90, GITS_BASER<n> 0x100 + 8n (BASER0 the device table,
 *   BASER1 the collection table, 2..7 unimplemented), ID registers 0xFFD0..0xFFFC, and
 *   GITS_TRANSLATER at 0x10040 in the translation frame.
 * The command queue (32-byte commands) is read from memory through the bus when CWRITER is
 * written: MAPD, MAPC, MAPTI, MAPI, INT, CLEAR, DISCARD, MOVI, MOVALL, SYNC, INV, INVALL.
 * Device table, collection table and each device's ITT live in memory as well: FLAT tables only
 * (GITS_BASER.Indirect is RAZ/WI, which the architecture allows), with QEMU 7.2's entry formats
 * (the architecture leaves them IMPLEMENTATION DEFINED; using QEMU's lets a test compare the bytes):
 *   DTE 8 bytes: [0] valid, [5:1] EventID bits - 1, [49:6] ITT address >> 8
 *   CTE 8 bytes: [0] valid, [16:1] RDbase (a processor number: GITS_TYPER.PTA = 0)
 *   ITE 12 bytes: [0] valid, [1] physical, [25:2] pINTID, [47:32] ICID; bytes 8-11: 1023 (no doorbell)
 * Redistributors (one per CPU): GICR_CTLR.EnableLPIs, GICR_PROPBASER (LPI configuration table:
 * one byte per LPI, [0] enable, [7:2] priority) and GICR_PENDBASER (LPI pending table: one bit per
 * INTID). An LPI made pending sets its bit in the pending table in memory, as QEMU's redistributor
 * does; nothing is cached, so INV/INVALL only check their arguments.
 *
 * Translation: a write of EventID to GITS_TRANSLATER arrives with the DeviceID the bus gives the
 * writer (its PCI requester ID through msi-map). DeviceID -> DTE -> ITT[EventID] -> (pINTID, ICID)
 * -> CTE -> redistributor. A device reaches only the events in its own ITT: MSI isolation.
 * A CPU's write through vfl_its_write() has no DeviceID: it is DeviceID 0, as in QEMU. TRANSLATER
 * takes 16- and 32-bit writes (and a 64-bit one as QEMU splits it: the low word).
 *
 * Errors (the architecture lets an ITS either stall or ignore a bad command; we choose what QEMU
 * 7.2 does, see hw/intc/arm_gicv3_its.c's ItsCmdResult): a command whose parameters are wrong is
 * ignored and the queue goes on; a memory fault while reading the queue or a table, or writing a
 * table, stalls the queue: GITS_CREADR.Stalled (bit 0) is set with CREADR at the failing command,
 * and a CWRITER write with Retry (bit 0) set tries it again. Each error is recorded with the
 * architecture's error code (0x01 << 16 | command << 8 | reason, the E_ITS_* numbers of Linux's
 * include/linux/irqchip/arm-gic-v3.h). A translation that finds no mapping is dropped and recorded.
 */
#ifndef VFIOLAB_GIC_ITS_H
#define VFIOLAB_GIC_ITS_H
#include <stdint.h>
#include "bus.h"

/* cffi-begin */
#define VFL_ITS_MAX_CPUS 8
#define VFL_ITS_TRANSLATER 0x10040
#define VFL_ITS_FRAME_SIZE 0x20000
#define VFL_GICR_FRAME_SIZE 0x20000   /* RD_base + SGI_base, one redistributor */
#define VFL_LPI_BASE 8192

/* What happened, for tests and the sim kernel (drained with vfl_its_take_records). */
enum vfl_its_record_kind {
    VFL_ITS_LPI_PENDING = 1,   /* an LPI's pending bit went 0 -> 1 (config: its config byte) */
    VFL_ITS_LPI_CLEARED = 2,   /* an LPI's pending bit went 1 -> 0 (CLEAR, DISCARD, MOVI) */
    VFL_ITS_CMD_ERROR = 3,     /* a command was ignored: code is the architecture's error */
    VFL_ITS_CMD_STALL = 4,     /* the queue stalled at where (a memory fault) */
    VFL_ITS_DROPPED = 5,       /* a translation found no mapping: reason in code */
    VFL_ITS_CMD_UNKNOWN = 6,   /* an opcode this ITS does not implement: ignored */
};
/* Why a translation was dropped (VFL_ITS_DROPPED's code). */
enum vfl_its_drop_reason {
    VFL_ITS_DROP_DISABLED = 1,            /* GITS_CTLR.Enabled is 0 */
    VFL_ITS_DROP_DEVICE_OOR = 2,          /* DeviceID beyond the device table */
    VFL_ITS_DROP_UNMAPPED_DEVICE = 3,     /* no valid DTE (no MAPD) */
    VFL_ITS_DROP_EVENT_OOR = 4,           /* EventID beyond the device's ITT */
    VFL_ITS_DROP_UNMAPPED_EVENT = 5,      /* no valid ITE (no MAPTI/MAPI) */
    VFL_ITS_DROP_UNMAPPED_COLLECTION = 6, /* the ITE's collection has no valid CTE (no MAPC) */
    VFL_ITS_DROP_BAD_TARGET = 7,          /* the collection's redistributor does not exist */
    VFL_ITS_DROP_MEMORY_FAULT = 8,        /* reading a table faulted */
};

struct vfl_its_record {
    uint32_t kind;
    uint32_t code;        /* error code or drop reason; for LPI records the config byte */
    uint32_t opcode;      /* the command's opcode (0 for a translation) */
    uint32_t device_id, event_id;
    uint32_t intid, cpu;
    uint64_t where;       /* CREADR offset of the command, or 0x10040 for a translation */
};

struct vfl_its_stats {
    uint64_t commands, command_errors, stalls, translations, dropped, records_lost;
};

struct vfl_its;

/* num_cpus redistributors (1..VFL_ITS_MAX_CPUS); NULL when out of range. */
struct vfl_its *vfl_its_new(struct vfl_bus bus, uint32_t num_cpus);
void vfl_its_free(struct vfl_its *its);

/* ITS frame registers (offset within the 128 KiB ITS region; size 4 or 8, others RAZ/WI). */
uint64_t vfl_its_read(struct vfl_its *its, uint64_t offset, unsigned size);
void vfl_its_write(struct vfl_its *its, uint64_t offset, uint64_t value, unsigned size);
/* A write of event_id to GITS_TRANSLATER by a bus master whose DeviceID is device_id.
 * Returns the LPI INTID it made pending (or found already pending), 0 when dropped. */
uint32_t vfl_its_translate(struct vfl_its *its, uint32_t device_id, uint32_t event_id);

/* Redistributor `cpu`'s registers (offset within its RD_base frame; size 4 or 8). */
uint64_t vfl_gicr_read(struct vfl_its *its, uint32_t cpu, uint64_t offset, unsigned size);
void vfl_gicr_write(struct vfl_its *its, uint32_t cpu, uint64_t offset, uint64_t value,
                    unsigned size);
/* The LPI's pending bit on `cpu` (from the pending table): 1, 0, or -1 when it cannot be read.
 * vfl_gicr_set_lpi sets or clears it, as a CPU taking the interrupt (or the ITS) would. */
int vfl_gicr_lpi_pending(struct vfl_its *its, uint32_t cpu, uint32_t intid);
int vfl_gicr_set_lpi(struct vfl_its *its, uint32_t cpu, uint32_t intid, int level);

uint32_t vfl_its_take_records(struct vfl_its *its, struct vfl_its_record *out, uint32_t max);
void vfl_its_stats(struct vfl_its *its, struct vfl_its_stats *out);
/* cffi-end */

#endif
