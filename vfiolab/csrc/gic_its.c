#include <stdlib.h>
#include <string.h>
#include "flatmem.h"
#include "gic_its.h"

/* Identification, as QEMU 7.2's ITS reports it (read through qtest), so that drivers see the
 * same ITS on the sim and on the qemu board: ARM's JEP106 code in IIDR; TYPER: Physical, ITT entry
 * 12 bytes, 16 EventID bits, 16 DeviceID bits, 16 collection ID bits (CIL), PTA = 0. */
#define GITS_IIDR_VALUE 0x43Bu
#define IDBITS 16                       /* EventID bits */
#define DEVBITS 16
#define CIDBITS 16
#define ITE_SIZE 12
#define DTE_SIZE 8
#define CTE_SIZE 8
#define GITS_TYPER_VALUE ((uint64_t)1 | (uint64_t)(ITE_SIZE - 1) << 4 | (uint64_t)(IDBITS - 1) << 8 \
                          | (uint64_t)(DEVBITS - 1) << 13 | (uint64_t)(CIDBITS - 1) << 32     \
                          | (uint64_t)1 << 36)
#define GICD_IDBITS 16                  /* INTIDs below 1 << 16, as QEMU's GICD_TYPER says */
#define INTID_SPURIOUS 1023

#define GITS_CTLR 0x0
#define GITS_IIDR 0x4
#define GITS_TYPER 0x8
#define GITS_CBASER 0x80
#define GITS_CWRITER 0x88
#define GITS_CREADR 0x90
#define GITS_BASER0 0x100
#define GITS_IDREGS 0xFFD0

#define GICR_CTLR 0x0
#define GICR_IIDR 0x4
#define GICR_TYPER 0x8
#define GICR_WAKER 0x14
#define GICR_PROPBASER 0x70
#define GICR_PENDBASER 0x78

#define BIT(n) ((uint64_t)1 << (n))
#define FIELD(v, hi, lo) (((v) >> (lo)) & ((BIT((hi) - (lo)) << 1) - 1))
#define MASK(hi, lo) (((BIT((hi) - (lo)) << 1) - 1) << (lo))

/* Writable fields; RES0 bits read as 0 (QEMU 7.2 keeps whatever is written there: a listed
 * difference). BASER: Valid, InnerCache, OuterCache, PA[47:12], Shareability, PageSize, Size;
 * Type and Entry_Size are read-only and Indirect is RAZ/WI (flat tables only). */
#define CBASER_MASK (BIT(63) | MASK(61, 59) | MASK(55, 53) | MASK(51, 12) | MASK(11, 10) | MASK(7, 0))
#define BASER_MASK (BIT(63) | MASK(61, 59) | MASK(55, 53) | MASK(47, 0))
#define CMDQ_OFFSET_MASK MASK(19, 5)
#define PROPBASER_MASK (MASK(58, 56) | MASK(51, 12) | MASK(11, 7) | MASK(4, 0))
#define PENDBASER_MASK (MASK(58, 56) | MASK(51, 16) | MASK(11, 7))

/* Command opcodes (DW0[7:0]) and error codes: 0x01 << 16 | command << 8 | reason. */
enum { CMD_MOVI = 0x01, CMD_INT = 0x03, CMD_CLEAR = 0x04, CMD_SYNC = 0x05, CMD_MAPD = 0x08,
       CMD_MAPC = 0x09, CMD_MAPTI = 0x0A, CMD_MAPI = 0x0B, CMD_INV = 0x0C, CMD_INVALL = 0x0D,
       CMD_MOVALL = 0x0E, CMD_DISCARD = 0x0F };
enum { ERR_DEVICE_OOR = 0x01, ERR_SIZE_OR_PROCNUM_OOR = 0x02, ERR_COLLECTION_OOR = 0x03,
       ERR_UNMAPPED_DEVICE = 0x04, ERR_ID_OOR = 0x05, ERR_PHYSICALID_OOR = 0x06,
       ERR_UNMAPPED_INTERRUPT = 0x07, ERR_UNMAPPED_COLLECTION = 0x09 };
#define ITS_ERROR(cmd, reason) (0x010000u | (uint32_t)(cmd) << 8 | (reason))

#define RECORD_SLOTS 1024

struct redist {
    uint32_t ctlr;               /* EnableLPIs */
    uint64_t propbaser, pendbaser;
};

struct table {                   /* a flat device or collection table from a GITS_BASER */
    int valid;
    uint64_t base;
    uint64_t num_ids;
};

struct vfl_its {
    struct vfl_bus bus;
    uint32_t num_cpus;
    uint32_t ctlr;
    uint64_t cbaser, cwriter, creadr;
    uint64_t baser[8];
    struct redist rd[VFL_ITS_MAX_CPUS];
    struct vfl_its_record records[RECORD_SLOTS];
    uint32_t rec_head, rec_count;
    struct vfl_its_stats stats;
};

enum result { CONTINUE, STALL };

/* ---- memory, through the bus ---- */
static int mem_read(struct vfl_its *its, uint64_t addr, void *buf, uint64_t n)
{
    return vfl_bus_copy(&its->bus, addr, UINT64_MAX, buf, n, VFL_BUS_READ);
}

static int mem_write(struct vfl_its *its, uint64_t addr, const void *buf, uint64_t n)
{
    return vfl_bus_copy(&its->bus, addr, UINT64_MAX, (uint8_t *)buf, n, VFL_BUS_WRITE);
}

static int read64(struct vfl_its *its, uint64_t addr, uint64_t *v)
{
    uint8_t b[8];
    if (mem_read(its, addr, b, 8))
        return -1;
    *v = 0;
    for (int i = 7; i >= 0; i--)
        *v = *v << 8 | b[i];
    return 0;
}

static int write64(struct vfl_its *its, uint64_t addr, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    return mem_write(its, addr, b, 8);
}

/* ---- records ---- */
static void record(struct vfl_its *its, uint32_t kind, uint32_t code, uint32_t opcode,
                   uint32_t device_id, uint32_t event_id, uint32_t intid, uint32_t cpu,
                   uint64_t where)
{
    if (its->rec_count == RECORD_SLOTS) {       /* keep the newest */
        its->rec_head = (its->rec_head + 1) % RECORD_SLOTS;
        its->rec_count--;
        its->stats.records_lost++;
    }
    struct vfl_its_record *r = &its->records[(its->rec_head + its->rec_count) % RECORD_SLOTS];
    r->kind = kind; r->code = code; r->opcode = opcode;
    r->device_id = device_id; r->event_id = event_id; r->intid = intid; r->cpu = cpu;
    r->where = where;
    its->rec_count++;
}

uint32_t vfl_its_take_records(struct vfl_its *its, struct vfl_its_record *out, uint32_t max)
{
    uint32_t n = 0;
    while (n < max && its->rec_count) {
        out[n++] = its->records[its->rec_head];
        its->rec_head = (its->rec_head + 1) % RECORD_SLOTS;
        its->rec_count--;
    }
    return n;
}

void vfl_its_stats(struct vfl_its *its, struct vfl_its_stats *out) { *out = its->stats; }

/* ---- the redistributors' LPI tables ---- */
static int lpis_usable(struct vfl_its *its, uint32_t cpu, uint32_t intid)
{
    if (cpu >= its->num_cpus)
        return 0;
    struct redist *rd = &its->rd[cpu];
    /* QEMU's gicv3_redist_process_lpi: nothing without EnableLPIs and both tables. */
    if (!(rd->ctlr & 1) || !rd->propbaser || !rd->pendbaser)
        return 0;
    uint64_t idbits = FIELD(rd->propbaser, 4, 0);
    if (idbits > GICD_IDBITS - 1)
        idbits = GICD_IDBITS - 1;
    return intid >= VFL_LPI_BASE && intid < BIT(idbits + 1);
}

int vfl_gicr_lpi_pending(struct vfl_its *its, uint32_t cpu, uint32_t intid)
{
    if (!lpis_usable(its, cpu, intid))
        return -1;
    uint8_t byte;
    if (mem_read(its, (its->rd[cpu].pendbaser & MASK(51, 16)) + intid / 8, &byte, 1))
        return -1;
    return byte >> (intid % 8) & 1;
}

static uint32_t config_byte(struct vfl_its *its, uint32_t cpu, uint32_t intid)
{
    uint8_t byte = 0;
    mem_read(its, (its->rd[cpu].propbaser & MASK(51, 12)) + (intid - VFL_LPI_BASE), &byte, 1);
    return byte;
}

/* Set or clear an LPI's pending bit; 1 when it changed, 0 when not, -1 when it cannot. The
 * record says which command (opcode, 0 for a translation or the CPU) and event did it. */
static int set_lpi(struct vfl_its *its, uint32_t cpu, uint32_t intid, int level, uint32_t opcode,
                   uint32_t devid, uint32_t event)
{
    if (!lpis_usable(its, cpu, intid))
        return -1;
    uint64_t addr = (its->rd[cpu].pendbaser & MASK(51, 16)) + intid / 8;
    uint8_t byte;
    if (mem_read(its, addr, &byte, 1))
        return -1;
    uint8_t bit = (uint8_t)(1u << (intid % 8));
    uint8_t now = level ? byte | bit : byte & (uint8_t)~bit;
    if (now == byte)
        return 0;
    if (mem_write(its, addr, &now, 1))
        return -1;
    record(its, level ? VFL_ITS_LPI_PENDING : VFL_ITS_LPI_CLEARED, config_byte(its, cpu, intid),
           opcode, devid, event, intid, cpu, opcode ? its->creadr & CMDQ_OFFSET_MASK : 0);
    return 1;
}

int vfl_gicr_set_lpi(struct vfl_its *its, uint32_t cpu, uint32_t intid, int level)
{
    return set_lpi(its, cpu, intid, level, 0, 0, 0);
}

/* ---- tables ---- */
static struct table baser_table(const struct vfl_its *its, int n, uint64_t entry_size,
                                uint64_t id_bits)
{
    struct table t = { 0, 0, 0 };
    uint64_t v = its->baser[n];
    if (!(v & BIT(63)))
        return t;
    uint64_t page;
    switch (FIELD(v, 9, 8)) {
    case 0: page = 0x1000; t.base = v & MASK(47, 12); break;
    case 1: page = 0x4000; t.base = v & MASK(47, 14); break;
    default:   /* 64K (and the reserved 0b11, which the architecture treats as 64K) */
        page = 0x10000;
        t.base = (v & MASK(47, 16)) | FIELD(v, 15, 12) << 48;
        break;
    }
    t.valid = 1;
    t.num_ids = (FIELD(v, 7, 0) + 1) * page / entry_size;
    if (t.num_ids > BIT(id_bits))
        t.num_ids = BIT(id_bits);
    return t;
}

struct dte { int valid; uint32_t size; uint64_t itt; };
struct ite { int valid; uint32_t intid, icid; };
struct cte { int valid; uint32_t rdbase; };

static int get_dte(struct vfl_its *its, const struct table *dt, uint32_t devid, struct dte *d)
{
    uint64_t v;
    if (read64(its, dt->base + (uint64_t)devid * DTE_SIZE, &v))
        return -1;
    d->valid = v & 1;
    d->size = (uint32_t)FIELD(v, 5, 1);
    d->itt = FIELD(v, 49, 6) << 8;
    return 0;
}

static int put_dte(struct vfl_its *its, const struct table *dt, uint32_t devid, const struct dte *d)
{
    uint64_t v = d->valid ? 1 | (uint64_t)d->size << 1 | (d->itt >> 8) << 6 : 0;
    return write64(its, dt->base + (uint64_t)devid * DTE_SIZE, v);
}

static int get_ite(struct vfl_its *its, const struct dte *d, uint32_t event, struct ite *e)
{
    uint8_t b[ITE_SIZE];
    if (mem_read(its, d->itt + (uint64_t)event * ITE_SIZE, b, ITE_SIZE))
        return -1;
    uint64_t lo = 0;
    for (int i = 7; i >= 0; i--)
        lo = lo << 8 | b[i];
    /* Only physical ITEs exist here (no GICv4). */
    e->valid = (lo & 1) && (lo & 2);
    e->intid = (uint32_t)FIELD(lo, 25, 2);
    e->icid = (uint32_t)FIELD(lo, 47, 32);
    return 0;
}

static int put_ite(struct vfl_its *its, const struct dte *d, uint32_t event, const struct ite *e)
{
    uint8_t b[ITE_SIZE] = { 0 };
    if (e->valid) {
        uint64_t lo = 1 | 2 | (uint64_t)(e->intid & 0xFFFFFF) << 2 | (uint64_t)(e->icid & 0xFFFF) << 32;
        for (int i = 0; i < 8; i++)
            b[i] = (uint8_t)(lo >> (8 * i));
        b[8] = INTID_SPURIOUS & 0xFF;           /* the doorbell field: none */
        b[9] = INTID_SPURIOUS >> 8;
    }
    return mem_write(its, d->itt + (uint64_t)event * ITE_SIZE, b, ITE_SIZE);
}

static int get_cte(struct vfl_its *its, const struct table *ct, uint32_t icid, struct cte *c)
{
    uint64_t v;
    if (read64(its, ct->base + (uint64_t)icid * CTE_SIZE, &v))
        return -1;
    c->valid = v & 1;
    c->rdbase = (uint32_t)FIELD(v, 16, 1);
    return 0;
}

static int put_cte(struct vfl_its *its, const struct table *ct, uint32_t icid, const struct cte *c)
{
    return write64(its, ct->base + (uint64_t)icid * CTE_SIZE,
                   c->valid ? 1 | (uint64_t)c->rdbase << 1 : 0);
}

static struct table device_table(const struct vfl_its *its) { return baser_table(its, 0, DTE_SIZE, DEVBITS); }
static struct table collection_table(const struct vfl_its *its) { return baser_table(its, 1, CTE_SIZE, CIDBITS); }

/* ---- looking up (DeviceID, EventID): shared by translation, INT, CLEAR, DISCARD, MOVI, INV ---- */
struct lookup {
    int fault;              /* a table read faulted */
    int reason;             /* ERR_* (0: found) */
    struct table dt, ct;
    struct dte dte;
    struct ite ite;
    struct cte cte;
};

static struct lookup find_event(struct vfl_its *its, uint32_t devid, uint32_t event)
{
    struct lookup l;
    memset(&l, 0, sizeof(l));
    l.dt = device_table(its);
    l.ct = collection_table(its);
    if (devid >= l.dt.num_ids) { l.reason = ERR_DEVICE_OOR; return l; }
    if (get_dte(its, &l.dt, devid, &l.dte)) { l.fault = 1; return l; }
    if (!l.dte.valid) { l.reason = ERR_UNMAPPED_DEVICE; return l; }
    if (event >= BIT(l.dte.size + 1)) { l.reason = ERR_ID_OOR; return l; }
    if (get_ite(its, &l.dte, event, &l.ite)) { l.fault = 1; return l; }
    if (!l.ite.valid) { l.reason = ERR_UNMAPPED_INTERRUPT; return l; }
    if (l.ite.icid >= l.ct.num_ids) { l.reason = ERR_UNMAPPED_COLLECTION; return l; }
    if (get_cte(its, &l.ct, l.ite.icid, &l.cte)) { l.fault = 1; return l; }
    if (!l.cte.valid) { l.reason = ERR_UNMAPPED_COLLECTION; return l; }
    if (l.cte.rdbase >= its->num_cpus) { l.reason = ERR_SIZE_OR_PROCNUM_OOR; return l; }
    return l;
}

static const int drop_reason[] = {
    [ERR_DEVICE_OOR] = VFL_ITS_DROP_DEVICE_OOR, [ERR_UNMAPPED_DEVICE] = VFL_ITS_DROP_UNMAPPED_DEVICE,
    [ERR_ID_OOR] = VFL_ITS_DROP_EVENT_OOR, [ERR_UNMAPPED_INTERRUPT] = VFL_ITS_DROP_UNMAPPED_EVENT,
    [ERR_UNMAPPED_COLLECTION] = VFL_ITS_DROP_UNMAPPED_COLLECTION,
    [ERR_SIZE_OR_PROCNUM_OOR] = VFL_ITS_DROP_BAD_TARGET,
};

uint32_t vfl_its_translate(struct vfl_its *its, uint32_t device_id, uint32_t event_id)
{
    its->stats.translations++;
    int reason = 0;
    struct lookup l;
    memset(&l, 0, sizeof(l));
    if (!(its->ctlr & 1)) {
        reason = VFL_ITS_DROP_DISABLED;
    } else {
        l = find_event(its, device_id, event_id);
        if (l.fault)
            reason = VFL_ITS_DROP_MEMORY_FAULT;
        else if (l.reason)
            reason = drop_reason[l.reason];
    }
    if (reason) {
        its->stats.dropped++;
        record(its, VFL_ITS_DROPPED, (uint32_t)reason, 0, device_id, event_id, 0, 0,
               VFL_ITS_TRANSLATER);
        return 0;
    }
    if (set_lpi(its, l.cte.rdbase, l.ite.intid, 1, 0, device_id, event_id) < 0)
        return 0;
    return l.ite.intid;
}

/* ---- commands ---- */
static enum result cmd_error(struct vfl_its *its, uint32_t op, uint32_t reason, uint32_t devid,
                             uint32_t event)
{
    its->stats.command_errors++;
    record(its, VFL_ITS_CMD_ERROR, ITS_ERROR(op, reason), op, devid, event, 0, 0,
           its->creadr & CMDQ_OFFSET_MASK);
    return CONTINUE;
}

static enum result cmd_mapd(struct vfl_its *its, const uint64_t *dw)
{
    uint32_t devid = (uint32_t)(dw[0] >> 32);
    struct dte d = { (int)(dw[2] >> 63), (uint32_t)FIELD(dw[1], 4, 0), dw[2] & MASK(51, 8) };
    struct table dt = device_table(its);
    if (devid >= dt.num_ids)
        return cmd_error(its, CMD_MAPD, ERR_DEVICE_OOR, devid, 0);
    if (d.valid && d.size + 1 > IDBITS)
        return cmd_error(its, CMD_MAPD, ERR_SIZE_OR_PROCNUM_OOR, devid, 0);
    return put_dte(its, &dt, devid, &d) ? STALL : CONTINUE;
}

static enum result cmd_mapc(struct vfl_its *its, const uint64_t *dw)
{
    uint32_t icid = (uint32_t)FIELD(dw[2], 15, 0);
    struct cte c = { (int)(dw[2] >> 63), (uint32_t)FIELD(dw[2], 51, 16) & 0xFFFF };
    struct table ct = collection_table(its);
    if (icid >= ct.num_ids)
        return cmd_error(its, CMD_MAPC, ERR_COLLECTION_OOR, 0, 0);
    if (c.valid && c.rdbase >= its->num_cpus)
        return cmd_error(its, CMD_MAPC, ERR_SIZE_OR_PROCNUM_OOR, 0, 0);
    return put_cte(its, &ct, icid, &c) ? STALL : CONTINUE;
}

static enum result cmd_mapti(struct vfl_its *its, const uint64_t *dw, uint32_t op)
{
    uint32_t devid = (uint32_t)(dw[0] >> 32), event = (uint32_t)dw[1];
    uint32_t intid = op == CMD_MAPI ? event : (uint32_t)(dw[1] >> 32);
    uint32_t icid = (uint32_t)FIELD(dw[2], 15, 0);
    struct table dt = device_table(its), ct = collection_table(its);
    struct dte d;
    if (devid >= dt.num_ids)
        return cmd_error(its, op, ERR_DEVICE_OOR, devid, event);
    if (get_dte(its, &dt, devid, &d))
        return STALL;
    if (icid >= ct.num_ids)
        return cmd_error(its, op, ERR_COLLECTION_OOR, devid, event);
    if (!d.valid)
        return cmd_error(its, op, ERR_UNMAPPED_DEVICE, devid, event);
    if (event >= BIT(d.size + 1))
        return cmd_error(its, op, ERR_ID_OOR, devid, event);
    /* An LPI INTID; 1023 (allowed only for GICv4 doorbells) is PHYSICALID_OOR, as in QEMU 7.2. */
    if (intid < VFL_LPI_BASE || intid >= BIT(GICD_IDBITS))
        return cmd_error(its, op, ERR_PHYSICALID_OOR, devid, event);
    struct ite e = { 1, intid, icid };
    return put_ite(its, &d, event, &e) ? STALL : CONTINUE;
}

/* INT, CLEAR, DISCARD, INV: find the event, then act on its LPI. */
static enum result cmd_event(struct vfl_its *its, const uint64_t *dw, uint32_t op)
{
    uint32_t devid = (uint32_t)(dw[0] >> 32), event = (uint32_t)dw[1];
    struct lookup l = find_event(its, devid, event);
    if (l.fault)
        return STALL;
    if (l.reason)
        return cmd_error(its, op, l.reason, devid, event);
    if (op == CMD_INT)
        set_lpi(its, l.cte.rdbase, l.ite.intid, 1, op, devid, event);
    else if (op == CMD_CLEAR || op == CMD_DISCARD)
        set_lpi(its, l.cte.rdbase, l.ite.intid, 0, op, devid, event);
    if (op == CMD_DISCARD) {
        struct ite none = { 0, 0, 0 };
        return put_ite(its, &l.dte, event, &none) ? STALL : CONTINUE;
    }
    return CONTINUE;   /* INV: nothing is cached, the configuration is read when used */
}

static enum result cmd_movi(struct vfl_its *its, const uint64_t *dw)
{
    uint32_t devid = (uint32_t)(dw[0] >> 32), event = (uint32_t)dw[1];
    uint32_t icid = (uint32_t)FIELD(dw[2], 15, 0);
    struct lookup l = find_event(its, devid, event);
    if (l.fault)
        return STALL;
    if (l.reason)
        return cmd_error(its, CMD_MOVI, l.reason, devid, event);
    struct cte to;
    if (icid >= l.ct.num_ids)
        return cmd_error(its, CMD_MOVI, ERR_COLLECTION_OOR, devid, event);
    if (get_cte(its, &l.ct, icid, &to))
        return STALL;
    if (!to.valid || to.rdbase >= its->num_cpus)
        return cmd_error(its, CMD_MOVI, ERR_UNMAPPED_COLLECTION, devid, event);
    /* The pending state moves with the interrupt (QEMU's gicv3_redist_mov_lpi). */
    if (to.rdbase != l.cte.rdbase && vfl_gicr_lpi_pending(its, l.cte.rdbase, l.ite.intid) == 1) {
        set_lpi(its, l.cte.rdbase, l.ite.intid, 0, CMD_MOVI, devid, event);
        set_lpi(its, to.rdbase, l.ite.intid, 1, CMD_MOVI, devid, event);
    }
    struct ite e = { 1, l.ite.intid, icid };
    return put_ite(its, &l.dte, event, &e) ? STALL : CONTINUE;
}

static enum result cmd_movall(struct vfl_its *its, const uint64_t *dw)
{
    uint32_t from = (uint32_t)FIELD(dw[2], 51, 16) & 0xFFFF, to = (uint32_t)FIELD(dw[3], 51, 16) & 0xFFFF;
    if (from >= its->num_cpus || to >= its->num_cpus)
        return cmd_error(its, CMD_MOVALL, ERR_DEVICE_OOR, 0, 0);   /* E_ITS_MOVALL_PROCNUM_OOR */
    if (from == to || !lpis_usable(its, from, VFL_LPI_BASE))
        return CONTINUE;
    uint64_t idbits = FIELD(its->rd[from].propbaser, 4, 0);
    uint32_t limit = (uint32_t)BIT((idbits > GICD_IDBITS - 1 ? GICD_IDBITS - 1 : idbits) + 1);
    for (uint32_t intid = VFL_LPI_BASE; intid < limit; intid++)
        if (vfl_gicr_lpi_pending(its, from, intid) == 1) {
            set_lpi(its, from, intid, 0, CMD_MOVALL, 0, 0);
            set_lpi(its, to, intid, 1, CMD_MOVALL, 0, 0);
        }
    return CONTINUE;
}

static enum result cmd_invall(struct vfl_its *its, const uint64_t *dw)
{
    uint32_t icid = (uint32_t)FIELD(dw[2], 15, 0);
    struct table ct = collection_table(its);
    struct cte c;
    if (icid >= ct.num_ids)
        return cmd_error(its, CMD_INVALL, ERR_COLLECTION_OOR, 0, 0);
    if (get_cte(its, &ct, icid, &c))
        return STALL;
    if (!c.valid)
        return cmd_error(its, CMD_INVALL, ERR_UNMAPPED_COLLECTION, 0, 0);
    return CONTINUE;
}

static enum result run_command(struct vfl_its *its, const uint64_t *dw)
{
    uint32_t op = (uint32_t)(dw[0] & 0xFF);
    its->stats.commands++;
    switch (op) {
    case CMD_MAPD: return cmd_mapd(its, dw);
    case CMD_MAPC: return cmd_mapc(its, dw);
    case CMD_MAPTI: case CMD_MAPI: return cmd_mapti(its, dw, op);
    case CMD_INT: case CMD_CLEAR: case CMD_DISCARD: case CMD_INV: return cmd_event(its, dw, op);
    case CMD_MOVI: return cmd_movi(its, dw);
    case CMD_MOVALL: return cmd_movall(its, dw);
    case CMD_INVALL: return cmd_invall(its, dw);
    case CMD_SYNC: return CONTINUE;    /* every command's effect is already visible */
    default:
        record(its, VFL_ITS_CMD_UNKNOWN, 0, op, 0, 0, 0, 0, its->creadr & CMDQ_OFFSET_MASK);
        return CONTINUE;
    }
}

/* Run commands from CREADR up to CWRITER (QEMU 7.2's process_cmdq). A CWRITER beyond the queue
 * is ignored, as QEMU does (the architecture makes it UNPREDICTABLE). At most one pass round the
 * queue, so this always ends. */
static void process_queue(struct vfl_its *its)
{
    if (!(its->ctlr & 1) || !(its->cbaser & BIT(63)) || (its->creadr & 1))
        return;
    uint64_t qbase = its->cbaser & MASK(51, 12);
    uint64_t entries = (FIELD(its->cbaser, 7, 0) + 1) * 0x1000 / 32;
    uint64_t wr = (its->cwriter & CMDQ_OFFSET_MASK) / 32, rd = (its->creadr & CMDQ_OFFSET_MASK) / 32;
    if (wr >= entries || rd >= entries)
        return;
    while (rd != wr) {
        its->creadr = rd * 32;
        uint64_t dw[4] = { 0, 0, 0, 0 };
        enum result r = STALL;
        if (read64(its, qbase + rd * 32, &dw[0]) == 0 && read64(its, qbase + rd * 32 + 8, &dw[1]) == 0
            && read64(its, qbase + rd * 32 + 16, &dw[2]) == 0
            && read64(its, qbase + rd * 32 + 24, &dw[3]) == 0)
            r = run_command(its, dw);
        if (r == STALL) {
            its->stats.stalls++;
            its->creadr = rd * 32 | 1;
            record(its, VFL_ITS_CMD_STALL, 0, (uint32_t)(dw[0] & 0xFF), 0, 0, 0, 0, rd * 32);
            return;
        }
        rd = (rd + 1) % entries;
    }
    its->creadr = rd * 32;
}

/* ---- the ITS frame ---- */
struct vfl_its *vfl_its_new(struct vfl_bus bus, uint32_t num_cpus)
{
    if (num_cpus == 0 || num_cpus > VFL_ITS_MAX_CPUS)
        return NULL;
    struct vfl_its *its = calloc(1, sizeof(*its));
    if (!its)
        return NULL;
    its->bus = bus;
    its->num_cpus = num_cpus;
    /* Reset values as QEMU's: device table (Type 1) and collection table (Type 4), 8-byte
     * entries, 64K pages. */
    its->baser[0] = (uint64_t)1 << 56 | (uint64_t)(DTE_SIZE - 1) << 48 | (uint64_t)2 << 8;
    its->baser[1] = (uint64_t)4 << 56 | (uint64_t)(CTE_SIZE - 1) << 48 | (uint64_t)2 << 8;
    return its;
}

void vfl_its_free(struct vfl_its *its) { free(its); }

static const uint8_t its_idregs[12] = { 0x44, 0, 0, 0, 0x94, 0xB4, 0x3B, 0, 0x0D, 0xF0, 0x05, 0xB1 };

static uint64_t reg64(struct vfl_its *its, uint64_t off, int *known)
{
    *known = 1;
    switch (off) {
    case GITS_CTLR: return (uint64_t)(its->ctlr & 1) | BIT(31) | (uint64_t)GITS_IIDR_VALUE << 32;
    case GITS_TYPER: return GITS_TYPER_VALUE;
    case GITS_CBASER: return its->cbaser;
    case GITS_CWRITER: return its->cwriter;
    case GITS_CREADR: return its->creadr;
    }
    if (off >= GITS_BASER0 && off < GITS_BASER0 + 64)
        return its->baser[(off - GITS_BASER0) / 8];
    *known = 0;
    return 0;
}

uint64_t vfl_its_read(struct vfl_its *its, uint64_t offset, unsigned size)
{
    if ((size != 4 && size != 8) || offset % size || offset >= VFL_ITS_FRAME_SIZE)
        return 0;
    if (offset >= GITS_IDREGS && offset < 0x10000) {
        uint64_t v = its_idregs[(offset - GITS_IDREGS) / 4];
        if (size == 8 && offset + 4 < 0x10000)
            v |= (uint64_t)its_idregs[(offset + 4 - GITS_IDREGS) / 4] << 32;
        return v;
    }
    int known;
    uint64_t v = reg64(its, offset & ~7ull, &known);
    /* GITS_CTLR and GITS_IIDR are 32-bit registers: a 64-bit access reads 0 (QEMU's too). */
    if (!known || (size == 8 && offset == GITS_CTLR))
        return 0;
    if (size == 8)
        return v;
    return (offset & 4) ? v >> 32 : (uint32_t)v;
}

/* Merge a 32-bit write into half of a 64-bit register. */
static uint64_t merge(uint64_t old, uint64_t offset, uint64_t value, unsigned size)
{
    if (size == 8)
        return value;
    if (offset & 4)
        return (old & 0xFFFFFFFFull) | (value & 0xFFFFFFFFull) << 32;
    return (old & ~0xFFFFFFFFull) | (value & 0xFFFFFFFFull);
}

void vfl_its_write(struct vfl_its *its, uint64_t offset, uint64_t value, unsigned size)
{
    /* GITS_TRANSLATER takes 16- and 32-bit writes; a 64-bit one is, as in QEMU, two 32-bit
     * writes of which the low one is the EventID. A CPU write has no requester ID: DeviceID 0. */
    if (offset == VFL_ITS_TRANSLATER && (size == 2 || size == 4 || size == 8)) {
        vfl_its_translate(its, 0, (uint32_t)(size == 2 ? value & 0xFFFF : value));
        return;
    }
    if ((size != 4 && size != 8) || offset % size || offset >= VFL_ITS_FRAME_SIZE)
        return;
    uint64_t reg = offset & ~7ull;
    int enabled = its->ctlr & 1;
    if (reg == GITS_CTLR && offset == GITS_CTLR && size == 4) {
        its->ctlr = (uint32_t)(value & 1);
        process_queue(its);                      /* enabling runs what is already queued */
    } else if (reg == GITS_CBASER && !enabled) {
        /* Writing CBASER resets CREADR (architecture; QEMU does the same). */
        its->cbaser = merge(its->cbaser, offset, value, size) & CBASER_MASK;
        its->creadr = 0;
    } else if (reg == GITS_CWRITER) {
        uint64_t v = merge(its->cwriter, offset, value, size);
        its->cwriter = v & CMDQ_OFFSET_MASK;
        if ((v & 1) && !(offset & 4))            /* Retry: run the stalled command again */
            its->creadr &= ~1ull;
        process_queue(its);
    } else if (reg >= GITS_BASER0 && reg < GITS_BASER0 + 16 && !enabled) {
        int n = (int)((reg - GITS_BASER0) / 8);
        uint64_t ro = its->baser[n] & (MASK(58, 56) | MASK(52, 48));
        its->baser[n] = ro | (merge(its->baser[n], offset, value, size) & BASER_MASK);
    }
    /* IIDR, TYPER, CREADR, BASER2..7, ID registers: read-only or RAZ/WI. */
}

/* ---- redistributors ---- */
uint64_t vfl_gicr_read(struct vfl_its *its, uint32_t cpu, uint64_t offset, unsigned size)
{
    if (cpu >= its->num_cpus || (size != 4 && size != 8) || offset % size)
        return 0;
    struct redist *rd = &its->rd[cpu];
    uint64_t v;
    /* GICR_CTLR/IIDR and GICR_STATUSR/WAKER are 32-bit registers: 64-bit accesses read 0. */
    if (size == 8 && (offset == GICR_CTLR || offset == (GICR_WAKER & ~7ull)))
        return 0;
    switch (offset & ~7ull) {
    case GICR_CTLR:
        /* CES (bit 1): EnableLPIs can be cleared, as on QEMU. */
        v = (rd->ctlr & 1) | 2 | (uint64_t)GITS_IIDR_VALUE << 32;
        break;
    case GICR_TYPER:
        /* PLPIS, Last, Processor_Number, CommonLPIAff = 1 (all share one LPI table), Aff0 = cpu */
        v = 1 | (cpu == its->num_cpus - 1 ? BIT(4) : 0) | (uint64_t)cpu << 8 | BIT(24)
            | (uint64_t)cpu << 32;
        break;
    case GICR_WAKER & ~7ull:
        v = (uint64_t)0x6 << 32;                 /* GICR_WAKER at 0x14 is the high word */
        break;
    case GICR_PROPBASER: v = rd->propbaser; break;
    case GICR_PENDBASER: v = rd->pendbaser; break;
    default: return 0;
    }
    if (size == 8)
        return v;
    return (offset & 4) ? v >> 32 : (uint32_t)v;
}

void vfl_gicr_write(struct vfl_its *its, uint32_t cpu, uint64_t offset, uint64_t value,
                    unsigned size)
{
    if (cpu >= its->num_cpus || (size != 4 && size != 8) || offset % size)
        return;
    struct redist *rd = &its->rd[cpu];
    switch (offset & ~7ull) {
    case GICR_CTLR:
        if (offset == GICR_CTLR && size == 4)
            rd->ctlr = (uint32_t)(value & 1);
        break;
    case GICR_PROPBASER:
        /* Changing the tables with LPIs enabled is UNPREDICTABLE: keep them (QEMU 7.2 takes the
         * write; tests/test_gic_qemu.py lists it). */
        if (!(rd->ctlr & 1))
            rd->propbaser = merge(rd->propbaser, offset, value, size) & PROPBASER_MASK;
        break;
    case GICR_PENDBASER:
        if (!(rd->ctlr & 1))
            rd->pendbaser = merge(rd->pendbaser, offset, value, size) & PENDBASER_MASK;
        break;
    }
}
