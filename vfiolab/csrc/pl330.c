/* DMA-330 model: see pl330.h. Section and table names below are the DMA-330 TRM's. */
#include <stdlib.h>
#include <string.h>
#include "pl330.h"
#include "flatmem.h"

enum {
    ST_STOPPED = 0, ST_EXECUTING = 1, ST_CACHE_MISS = 2, ST_UPDATING_PC = 3, ST_WAITING_EVENT = 4,
    ST_AT_BARRIER = 5, ST_WAITING_PERIPH = 7, ST_KILLING = 8, ST_COMPLETING = 9,
    ST_FAULT_COMPLETING = 14, ST_FAULTING = 15,
};

/* FTR(n) / FTRD bits. */
enum {
    F_UNDEF = 1u << 0, F_OPERAND = 1u << 1, F_DMAGO = 1u << 4, F_EVENT = 1u << 5,
    F_PERIPH = 1u << 6, F_RDWR = 1u << 7, F_MFIFO = 1u << 12, F_ST_DATA = 1u << 13,
    F_FETCH = 1u << 16, F_WRITE = 1u << 17, F_READ = 1u << 18, F_DEBUG = 1u << 30,
    F_LOCKUP = 1u << 31,
};

#define MAX_CHANNELS 8
#define ISSUE_LOG 256             /* bursts a channel's fast-path log keeps, per direction */
#define MAX_QUEUE 16
#define MANAGER (-1)

struct thread {
    uint8_t state;
    uint8_t nonsecure;
    uint8_t wakeup;           /* event or peripheral number shown in CSR/DSR */
    uint8_t wfp_burst;        /* CSR.dmawfp_b_ns */
    uint8_t wfp_periph;       /* CSR.dmawfp_periph */
    uint8_t request_burst;    /* request_type flag: 0 single, 1 burst */
    uint8_t request_last;     /* request_last flag */
    uint8_t debug;            /* executing an instruction from the debug interface */
    uint32_t pc, sar, dar, ccr;
    uint32_t lc[2];
    uint32_t fault;
    /* Data accounting: bytes loaded or being loaded that no queued store has claimed yet. */
    uint64_t unclaimed;
    /* This channel's MFIFO bytes (a ring; the MFIFO total is shared through mfifo_used). */
    uint8_t *fifo;
    uint32_t fifo_head, fifo_n;
    /* Fast-path bookkeeping, not the TRM's: instructions retired that cannot be repeated in bulk,
     * DMALPs retired per counter; in this run: just past the last byte read / written (NO_ADDR:
     * none yet) and the code fetched. */
    uint64_t unsafe, resets[2], addh;
    uint64_t rd_end, wr_end;
    uint32_t pc_lo, pc_hi;
    uint64_t issued[2];       /* bursts issued, loads [0] and stores [1] (logged in vfl_pl330) */
    uint64_t log_from[2];     /* the first of them whose log entry is right (after skips) */
};

struct issue { uint32_t addr, bytes; };   /* a burst issued: where, how many bytes */

struct burst {
    uint32_t addr;
    uint32_t beats;
    uint8_t size_log2, inc, zero, chan, swap_log2;
};

struct queue {
    struct burst e[MAX_QUEUE];
    int n, depth;
};

/* Fast path (see "fast path" below): machine snapshots taken where a loop jumps back. */
#define NO_ADDR UINT64_MAX
#define HISTORY 4

struct snapshot {
    uint64_t cycles;
    struct thread threads[MAX_CHANNELS + 1];  /* [0] manager */
    struct queue rq, wq;
    uint32_t mfifo_used, inten, ris, irq_lines_seen;
    int abort_seen;
    uint8_t request_pending[32], request_burst[32], request_last[32];
};

struct history {
    uint32_t pc;              /* the DMALPEND these snapshots were taken at */
    uint64_t used;            /* cycle of the last snapshot, to pick the slot to reuse */
    int n, next;
    struct snapshot s[HISTORY];
};

struct vfl_pl330 {
    struct vfl_pl330_config cfg;
    struct vfl_bus bus;
    struct thread manager;
    struct thread chan[MAX_CHANNELS];
    struct queue rq, wq;
    uint32_t mfifo_capacity, mfifo_used;
    uint32_t inten, ris;
    uint32_t dbginst0, dbginst1;
    uint8_t request_pending[32], request_burst[32], request_last[32];
    uint64_t cycles, fast_iterations;
    uint64_t run_end;             /* the cycle the current vfl_pl330_run stops at */
    struct history *history;      /* per channel two: the loops it jumps back in most */
    /* Per channel, the last ISSUE_LOG loads [0] and stores [1] issued (a ring by issued[]); kept
     * out of struct thread so that snapshots stay small. */
    struct issue log[MAX_CHANNELS][2][ISSUE_LOG];
    int idle;
    uint32_t irq_lines_seen;
    int abort_seen;
    vfl_pl330_irq_fn irq_fn;
    void *irq_ctx;
};

static void update_irqs(struct vfl_pl330 *d);

/* ---- configuration and reset ---- */

void vfl_pl330_default_config(struct vfl_pl330_config *c)
{
    /* What QEMU's xilinx-zynq-a9 PL330 reports: CR0 0x1e3071, CRD 0x0fff7f73. */
    memset(c, 0, sizeof(*c));
    c->channels = 8;
    c->peripherals = 4;
    c->events = 16;
    c->data_width_bits = 64;
    c->mfifo_lines = 256;
    c->read_queue_depth = 16;
    c->write_queue_depth = 16;
}

static void reset_thread(struct thread *t)
{
    uint8_t *fifo = t->fifo;
    memset(t, 0, sizeof(*t));
    t->fifo = fifo;
}

void vfl_pl330_reset(struct vfl_pl330 *d)
{
    reset_thread(&d->manager);
    for (int i = 0; i < MAX_CHANNELS; i++)
        reset_thread(&d->chan[i]);
    d->manager.nonsecure = !!d->cfg.manager_nonsecure;
    if (d->cfg.boot_manager) {
        d->manager.state = ST_EXECUTING;
        d->manager.pc = d->cfg.boot_address;
    }
    d->rq.n = d->wq.n = 0;
    d->mfifo_used = 0;
    d->inten = d->ris = 0;
    d->dbginst0 = d->dbginst1 = 0;
    memset(d->request_pending, 0, sizeof(d->request_pending));
    d->cycles = 0;
    d->idle = 1;
    update_irqs(d);               /* lines that were high drop: tell the board */
}

struct vfl_pl330 *vfl_pl330_new(const struct vfl_pl330_config *config, struct vfl_bus bus)
{
    const struct vfl_pl330_config *c = config;
    if (c->channels < 1 || c->channels > MAX_CHANNELS || c->peripherals > 32 || c->events < 1 ||
        c->events > 32 || c->mfifo_lines < 1 || c->mfifo_lines > 1024 ||
        c->read_queue_depth < 1 || c->read_queue_depth > MAX_QUEUE ||
        c->write_queue_depth < 1 || c->write_queue_depth > MAX_QUEUE ||
        (c->data_width_bits != 32 && c->data_width_bits != 64 && c->data_width_bits != 128))
        return NULL;
    struct vfl_pl330 *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->cfg = *c;
    d->bus = bus;
    d->mfifo_capacity = c->mfifo_lines * (c->data_width_bits / 8);
    d->rq.depth = (int)c->read_queue_depth;
    d->wq.depth = (int)c->write_queue_depth;
    for (uint32_t i = 0; i < c->channels; i++) {
        d->chan[i].fifo = malloc(d->mfifo_capacity);
        if (!d->chan[i].fifo) {
            vfl_pl330_free(d);
            return NULL;
        }
    }
    d->history = calloc(2 * MAX_CHANNELS, sizeof(*d->history));
    if (!d->history) {
        vfl_pl330_free(d);
        return NULL;
    }
    vfl_pl330_reset(d);
    return d;
}

void vfl_pl330_free(struct vfl_pl330 *d)
{
    if (!d)
        return;
    for (int i = 0; i < MAX_CHANNELS; i++)
        free(d->chan[i].fifo);
    free(d->history);
    free(d);
}

/* ---- interrupts ---- */

static int is_faulting(const struct thread *t)
{
    return t->state == ST_FAULTING || t->state == ST_FAULT_COMPLETING;
}

uint32_t vfl_pl330_irq_lines(struct vfl_pl330 *d) { return d->ris & d->inten; }

int vfl_pl330_abort_line(struct vfl_pl330 *d)
{
    if (is_faulting(&d->manager))
        return 1;
    for (uint32_t i = 0; i < d->cfg.channels; i++)
        if (is_faulting(&d->chan[i]))
            return 1;
    return 0;
}

void vfl_pl330_set_irq_callback(struct vfl_pl330 *d, vfl_pl330_irq_fn fn, void *ctx)
{
    d->irq_fn = fn;
    d->irq_ctx = ctx;
}

static void update_irqs(struct vfl_pl330 *d)
{
    uint32_t lines = vfl_pl330_irq_lines(d);
    int abort = vfl_pl330_abort_line(d);
    if (lines == d->irq_lines_seen && abort == d->abort_seen)
        return;
    d->irq_lines_seen = lines;
    d->abort_seen = abort;
    if (d->irq_fn)
        d->irq_fn(d->irq_ctx, lines, abort);
}

/* ---- queues and MFIFO ---- */

static int chan_index(struct vfl_pl330 *d, struct thread *t) { return (int)(t - d->chan); }

static int queued_for(const struct queue *q, int chan)
{
    int n = 0;
    for (int i = 0; i < q->n; i++)
        n += q->e[i].chan == chan;
    return n;
}

static void queue_remove(struct queue *q, int i)
{
    memmove(&q->e[i], &q->e[i + 1], (size_t)(q->n - i - 1) * sizeof(q->e[0]));
    q->n--;
}

static void queue_drop_chan(struct queue *q, int chan)
{
    for (int i = q->n - 1; i >= 0; i--)
        if (q->e[i].chan == chan)
            queue_remove(q, i);
}

static void fifo_drop(struct vfl_pl330 *d, struct thread *t)
{
    d->mfifo_used -= t->fifo_n;
    t->fifo_n = t->fifo_head = 0;
    t->unclaimed = 0;
}

/* Forget everything in flight for a channel (DMAKILL, bus error, end of a faulted thread). */
static void flush_channel(struct vfl_pl330 *d, struct thread *t)
{
    int c = chan_index(d, t);
    queue_drop_chan(&d->rq, c);
    queue_drop_chan(&d->wq, c);
    fifo_drop(d, t);
}

/* ---- faults ---- */

static void fault(struct vfl_pl330 *d, struct thread *t, uint32_t why)
{
    t->fault |= why | (t->debug ? F_DEBUG : 0);
    if (is_faulting(t))
        return;
    if (t != &d->manager) {
        int c = chan_index(d, t);
        /* Loads and stores already issued complete first (Faulting completing). */
        t->state = (queued_for(&d->rq, c) || queued_for(&d->wq, c)) ? ST_FAULT_COMPLETING
                                                                     : ST_FAULTING;
        if (t->state == ST_FAULTING)
            fifo_drop(d, t);
    } else {
        t->state = ST_FAULTING;
    }
    update_irqs(d);
}

/* A bus error loses the data: nothing of the channel's transfer can complete. */
static void bus_fault(struct vfl_pl330 *d, int chan, uint32_t why)
{
    struct thread *t = &d->chan[chan];
    flush_channel(d, t);
    t->fault |= why;
    if (t->state != ST_FAULTING) {
        t->state = ST_FAULTING;
        update_irqs(d);
    }
}

/* ---- bus helpers ---- */

static int bus_copy(struct vfl_pl330 *d, uint32_t addr, uint8_t *buf, uint32_t n, int access)
{
    return vfl_bus_copy(&d->bus, addr, 0xFFFFFFFFu, buf, n, access);   /* 32-bit AXI addresses wrap */
}

/* ---- instruction decoding ---- */

/* Length of the instruction whose first byte is op, 0 when undefined (TRM table 4-1). */
static int insn_length(uint8_t op)
{
    switch (op) {
    case 0x00: case 0x01: case 0x04: case 0x05: case 0x07: case 0x08: case 0x09: case 0x0B:
    case 0x0C: case 0x12: case 0x13: case 0x18:
        return 1;
    case 0x20: case 0x22: case 0x25: case 0x27: case 0x29: case 0x2B: case 0x30: case 0x31:
    case 0x32: case 0x34: case 0x35: case 0x36:
        return 2;
    case 0x54: case 0x56: case 0x5C: case 0x5E:
        return 3;
    case 0xA0: case 0xA2: case 0xBC:
        return 6;
    }
    /* DMALPEND: 001 nf 1 lc bs x, with bs,x = 00 (always), 01 (S) or 11 (B); 0x29/0x2B are
     * DMASTP (decoded above). bs,x = 10 (and 0x06, 0x0A) are undefined; QEMU decodes them and
     * reports operand invalid instead (tests/test_pl330_qemu.py lists every such difference). */
    if ((op & 0xE8) == 0x28 && (op & 3) != 2)
        return 2;
    return 0;
}

static int manager_may_run(uint8_t op)
{
    return op == 0x00 || op == 0x01 || op == 0xA0 || op == 0xA2 || op == 0x18 || op == 0x34 ||
           op == 0x36;
}

static uint32_t imm32(const uint8_t *b) { return b[0] | b[1] << 8 | b[2] << 16 | (uint32_t)b[3] << 24; }

/* ---- burst arithmetic: AXI bursts, the first beat of an unaligned address is partial ---- */

static uint32_t burst_bytes(uint32_t addr, uint32_t size, uint32_t beats, int inc)
{
    uint32_t misalign = addr & (size - 1);
    return inc ? size * beats - misalign : beats * (size - misalign);
}

static uint32_t burst_next_addr(uint32_t addr, uint32_t size, uint32_t beats, int inc)
{
    return inc ? addr + size * beats - (addr & (size - 1)) : addr;
}

/* Burst size field valid for this DMAC? A beat wider than the AXI bus cannot be issued: we
 * fault operand invalid, where QEMU copies wide beats. */
static int size_ok(struct vfl_pl330 *d, uint32_t size_log2)
{
    return (8u << size_log2) <= d->cfg.data_width_bits;
}

/* ---- the instructions ---- */

enum { DONE, STALL };   /* DONE: the instruction retired (or faulted); STALL: try it again */

/* Is the request flag such that a conditional instruction (bs,x from opcode bits) runs? */
static int condition_met(struct thread *t, uint8_t op, int *single)
{
    int x = op & 1, bs = (op >> 1) & 1;
    *single = 0;
    if (!x)
        return 1;
    if (bs)
        return t->request_burst;
    if (t->request_burst)
        return 0;
    *single = 1;
    return 1;
}

static int do_load(struct vfl_pl330 *d, struct thread *t, uint8_t op)
{
    int single;
    if (!condition_met(t, op, &single))
        return DONE;
    uint32_t size_log2 = (t->ccr >> 1) & 7, beats = single ? 1 : ((t->ccr >> 4) & 15) + 1;
    uint32_t size = 1u << size_log2;
    int inc = t->ccr & 1;
    if (!size_ok(d, size_log2)) {
        fault(d, t, F_OPERAND);
        return DONE;
    }
    uint32_t bytes = burst_bytes(t->sar, size, beats, inc);
    if (t->unclaimed + bytes > d->mfifo_capacity) {
        fault(d, t, F_MFIFO);    /* the MFIFO can never hold what this thread asks it to */
        return DONE;
    }
    if (d->rq.n == d->rq.depth)
        return STALL;
    struct burst *b = &d->rq.e[d->rq.n++];
    *b = (struct burst){ t->sar, beats, (uint8_t)size_log2, (uint8_t)inc, 0,
                         (uint8_t)chan_index(d, t), 0 };
    t->unclaimed += bytes;
    d->log[chan_index(d, t)][0][t->issued[0]++ % ISSUE_LOG] = (struct issue){ t->sar, bytes };
    t->sar = burst_next_addr(t->sar, size, beats, inc);
    return DONE;
}

static int do_store(struct vfl_pl330 *d, struct thread *t, uint8_t op, int zero)
{
    int single = 0;
    if (!zero && !condition_met(t, op, &single))
        return DONE;
    uint32_t size_log2 = (t->ccr >> 15) & 7, beats = single ? 1 : ((t->ccr >> 18) & 15) + 1;
    uint32_t size = 1u << size_log2, swap_log2 = (t->ccr >> 28) & 7;
    int inc = (t->ccr >> 14) & 1;
    if (!size_ok(d, size_log2) || swap_log2 > 4) {
        fault(d, t, F_OPERAND);   /* beat wider than the bus, or a reserved endian_swap_size */
        return DONE;
    }
    uint32_t bytes = burst_bytes(t->dar, size, beats, inc);
    if (!zero && t->unclaimed < bytes) {
        fault(d, t, F_ST_DATA);   /* stores more than it loaded (QEMU: faults at the beat) */
        return DONE;
    }
    if (d->wq.n == d->wq.depth)
        return STALL;
    struct burst *b = &d->wq.e[d->wq.n++];
    *b = (struct burst){ t->dar, beats, (uint8_t)size_log2, (uint8_t)inc, (uint8_t)zero,
                         (uint8_t)chan_index(d, t), (uint8_t)swap_log2 };
    if (!zero) {
        t->unclaimed -= bytes;
        d->log[chan_index(d, t)][1][t->issued[1]++ % ISSUE_LOG] = (struct issue){ t->dar, bytes };
    }
    /* DMASTZ too: an AXI burst, so DAR ends aligned (QEMU adds size * beats for DMASTZ). */
    t->dar = burst_next_addr(t->dar, size, beats, inc);
    return DONE;
}

/* Checks shared by the peripheral instructions; returns the peripheral or -1 after a fault. */
static int periph_operand(struct vfl_pl330 *d, struct thread *t, uint8_t arg)
{
    uint32_t p = arg >> 3;
    if ((arg & 7) || p >= d->cfg.peripherals) {
        fault(d, t, F_OPERAND);
        return -1;
    }
    if (t->nonsecure && !((d->cfg.periph_nonsecure >> p) & 1)) {
        fault(d, t, F_PERIPH);
        return -1;
    }
    return (int)p;
}

static int event_operand(struct vfl_pl330 *d, struct thread *t, uint8_t arg, uint8_t reserved)
{
    uint32_t e = arg >> 3;
    if ((arg & reserved) || e >= d->cfg.events) {
        fault(d, t, F_OPERAND);
        return -1;
    }
    if (t->nonsecure && !((d->cfg.irq_nonsecure >> e) & 1)) {
        fault(d, t, F_EVENT);
        return -1;
    }
    return (int)e;
}

static void signal_event(struct vfl_pl330 *d, uint32_t e)
{
    uint32_t bit = 1u << e;
    if (d->inten & bit) {
        d->ris |= bit;            /* an interrupt, not an event: nobody wakes */
        update_irqs(d);
        return;
    }
    int woke = 0;
    struct thread *all[MAX_CHANNELS + 1];
    int n = 0;
    all[n++] = &d->manager;
    for (uint32_t i = 0; i < d->cfg.channels; i++)
        all[n++] = &d->chan[i];
    for (int i = 0; i < n; i++) {
        struct thread *t = all[i];
        if (t->state == ST_WAITING_EVENT && t->wakeup == e) {
            t->state = ST_EXECUTING;
            t->pc += 2;           /* the DMAWFE retires */
            woke = 1;
        }
    }
    if (!woke)
        d->ris |= bit;            /* pending until a DMAWFE takes it */
}

static void kill_thread(struct vfl_pl330 *d, struct thread *t)
{
    if (t != &d->manager)
        flush_channel(d, t);
    t->fault = 0;
    t->state = ST_STOPPED;
    update_irqs(d);
}

static void start_channel(struct vfl_pl330 *d, struct thread *m, const uint8_t *b)
{
    uint8_t op = b[0];
    uint32_t c = b[1];
    int ns = (op >> 1) & 1;
    if ((c >> 3) || c >= d->cfg.channels || d->chan[c].state != ST_STOPPED) {
        fault(d, m, F_OPERAND);
        return;
    }
    if (m->nonsecure && !ns) {
        fault(d, m, F_DMAGO);     /* a non-secure manager cannot start a secure channel */
        return;
    }
    /* SAR, DAR, CCR and the loop counters keep their values: they are registers, not state. */
    struct thread *t = &d->chan[c];
    t->fault = 0;
    t->request_burst = t->request_last = 0;
    t->wfp_burst = t->wfp_periph = 0;
    t->nonsecure = (uint8_t)ns;
    t->pc = imm32(b + 2);
    t->state = ST_EXECUTING;
}

/* Execute the instruction b[0..len) on thread t. Returns DONE or STALL; on DONE the caller
 * advances the PC unless the instruction moved it itself (jumped, stopped or faulted). */
static int execute(struct vfl_pl330 *d, struct thread *t, const uint8_t *b, int *pc_set)
{
    uint8_t op = b[0];
    int is_manager = t == &d->manager;
    int c = is_manager ? -1 : chan_index(d, t);
    *pc_set = 0;
    if (is_manager ? !manager_may_run(op) : (op == 0xA0 || op == 0xA2)) {
        fault(d, t, F_UNDEF);
        return DONE;
    }
    switch (op) {
    case 0x00:   /* DMAEND: waits for its loads and stores, then stops */
        if (!is_manager && (queued_for(&d->rq, c) || queued_for(&d->wq, c))) {
            t->state = ST_COMPLETING;
            return STALL;
        }
        if (!is_manager)
            fifo_drop(d, t);      /* loaded bytes no store claimed are dropped (QEMU locks up) */
        t->state = ST_STOPPED;
        return DONE;              /* retired: the PC moves past it, as QEMU shows it too */
    case 0x01:   /* DMAKILL */
        kill_thread(d, t);
        return DONE;
    case 0x04: case 0x05: case 0x07:
        return do_load(d, t, op);
    case 0x08: case 0x09: case 0x0B:
        return do_store(d, t, op, 0);
    case 0x0C:
        return do_store(d, t, op, 1);
    case 0x12:   /* DMARMB */
        if (queued_for(&d->rq, c)) {
            t->state = ST_AT_BARRIER;
            return STALL;
        }
        t->state = ST_EXECUTING;
        return DONE;
    case 0x13:   /* DMAWMB */
        if (queued_for(&d->wq, c)) {
            t->state = ST_AT_BARRIER;
            return STALL;
        }
        t->state = ST_EXECUTING;
        return DONE;
    case 0x18:
        return DONE;
    case 0x20: case 0x22:
        t->lc[(op >> 1) & 1] = b[1];
        return DONE;
    case 0x25: case 0x27: case 0x29: case 0x2B: {   /* DMALDP / DMASTP */
        if (periph_operand(d, t, b[1]) < 0)
            return DONE;
        uint8_t cond = (uint8_t)((op & 2) | 1);        /* S or B, always conditional */
        return op & 8 ? do_store(d, t, (uint8_t)(0x08 | cond), 0)
                      : do_load(d, t, (uint8_t)(0x04 | cond));
    }
    case 0x30: case 0x31: case 0x32: {  /* DMAWFP single / periph / burst */
        int p = periph_operand(d, t, b[1]);
        if (p < 0)
            return DONE;
        if (!d->request_pending[p]) {   /* QEMU never waits for a request here */
            t->state = ST_WAITING_PERIPH;
            t->wakeup = (uint8_t)p;
            t->wfp_periph = op == 0x31;
            t->wfp_burst = op == 0x32;
            return STALL;
        }
        d->request_pending[p] = 0;
        t->request_burst = op == 0x31 ? d->request_burst[p] : op == 0x32;
        t->request_last = d->request_last[p];
        t->wfp_periph = op == 0x31;
        t->wfp_burst = op == 0x32;
        t->state = ST_EXECUTING;
        return DONE;
    }
    case 0x34: { /* DMASEV */
        int e = event_operand(d, t, b[1], 7);
        if (e >= 0)
            signal_event(d, (uint32_t)e);
        return DONE;
    }
    case 0x35: { /* DMAFLUSHP: forget the peripheral's request; it signals again if it still wants */
        int p = periph_operand(d, t, b[1]);
        if (p >= 0)
            d->request_pending[p] = 0;
        return DONE;
    }
    case 0x36: { /* DMAWFE */
        int e = event_operand(d, t, b[1], 5);
        if (e < 0)
            return DONE;
        uint32_t bit = 1u << e;
        if ((d->ris & bit) && !(d->inten & bit)) {
            d->ris &= ~bit;
            t->state = ST_EXECUTING;
            return DONE;
        }
        t->state = ST_WAITING_EVENT;
        t->wakeup = (uint8_t)e;
        return STALL;
    }
    case 0x54: case 0x56: case 0x5C: case 0x5E: {   /* DMAADDH / DMAADNH */
        uint32_t v = b[1] | (uint32_t)b[2] << 8;
        if (op & 8)
            v |= 0xFFFF0000u;     /* ADNH: ones-extended, so it subtracts */
        if (op & 2)
            t->dar += v;
        else
            t->sar += v;
        return DONE;
    }
    case 0xA0: case 0xA2:
        start_channel(d, t, b);
        return DONE;
    case 0xBC: { /* DMAMOV */
        uint32_t v = imm32(b + 2);
        switch (b[1]) {
        case 0: t->sar = v; break;
        case 1: t->ccr = v; break;
        case 2: t->dar = v; break;
        default: fault(d, t, F_OPERAND); break;
        }
        return DONE;
    }
    default:     /* DMALPEND */
        if ((op & 0xE8) == 0x28) {
            int single;
            if (!condition_met(t, op, &single))
                return DONE;
            /* DMALPFE loops end at the peripheral's last request (QEMU: never). */
            int forever = !(op & 0x10), lc = (op >> 2) & 1;
            if (forever ? !t->request_last : t->lc[lc] != 0) {
                if (!forever)
                    t->lc[lc]--;
                t->pc -= b[1];
                *pc_set = 1;
            }
            return DONE;
        }
        fault(d, t, F_UNDEF);
        return DONE;
    }
}

/* ---- fast path: skip whole periods of a machine that repeats itself ----
 *
 * Linux's memcpy microcode is a counted loop of DMALD; DMAST bursts (with DMARMB/DMAWMB before
 * r1p0), nested LC0 around LC1. Once such a loop runs steadily, the whole engine comes back to
 * the same state at each DMALPEND that jumps back, only shifted: each channel's SAR, DAR and queued
 * burst addresses moved by what it copied, its loop counters counted down, the cycle count grew
 * by the period. The engine's timing never depends on data or (past alignment) on addresses, so
 * from then on stepping would go through the same shifted states. The fast path checks exactly
 * that against a snapshot taken at an earlier jump of the same DMALPEND, then jumps N periods
 * ahead at once: memory gets the bytes the channels' streams would have moved, registers, queues,
 * MFIFO, loop counters and cycles what stepping would have shown. N stops short of anything that
 * would break the repetition: a loop counter reaching zero, the cycle budget, a mapping boundary
 * (so a fault is met, and logged, by stepping), overlap between streams or with running code.
 *
 * Loads and stores must increment; DMAADDH may move SAR and DAR on between bursts (a 2D copy):
 * then the bytes follow the period's logged bursts, repeated; DMAMOV CCR may change their shape.
 * Anything else (DMAADNH, DMAMOV SAR/DAR, DMASTZ, events, peripherals, endian swap...) marks the
 * period as not repeatable in bulk: stepping then runs it, exactly and slowly.
 */
static struct thread *thread_at(struct vfl_pl330 *d, int i) { return i ? &d->chan[i - 1] : &d->manager; }

static void take_snapshot(struct vfl_pl330 *d, struct snapshot *s)
{
    s->cycles = d->cycles;
    for (uint32_t i = 0; i <= d->cfg.channels; i++)
        s->threads[i] = *thread_at(d, (int)i);
    s->rq = d->rq;
    s->wq = d->wq;
    s->mfifo_used = d->mfifo_used;
    s->inten = d->inten;
    s->ris = d->ris;
    s->irq_lines_seen = d->irq_lines_seen;
    s->abort_seen = d->abort_seen;
    memcpy(s->request_pending, d->request_pending, 32);
    memcpy(s->request_burst, d->request_burst, 32);
    memcpy(s->request_last, d->request_last, 32);
}

/* Everything that decides what a thread does next, but its addresses and loop counters. */
static int same_shape(const struct thread *a, const struct thread *b)
{
    return a->state == b->state && a->nonsecure == b->nonsecure && a->wakeup == b->wakeup &&
           a->wfp_burst == b->wfp_burst && a->wfp_periph == b->wfp_periph &&
           a->request_burst == b->request_burst && a->request_last == b->request_last &&
           a->debug == b->debug && a->pc == b->pc && a->ccr == b->ccr && a->fault == b->fault &&
           a->unclaimed == b->unclaimed && a->fifo_n == b->fifo_n && a->unsafe == b->unsafe;
}

static int same_queue(const struct queue *now, const struct queue *then, const uint32_t *shift)
{
    if (now->n != then->n)
        return 0;
    for (int i = 0; i < now->n; i++) {
        const struct burst *a = &now->e[i], *b = &then->e[i];
        if (a->chan != b->chan || a->beats != b->beats || a->size_log2 != b->size_log2 ||
            a->inc != b->inc || a->zero != b->zero || a->swap_log2 != b->swap_log2 ||
            a->addr != b->addr + shift[a->chan])
            return 0;
    }
    return 1;
}

/* One channel's read (or write) stream, as segments in order: what its queue entries still have
 * to move, then the bursts it will issue. Contiguous (no DMAADDH in the period): all of it is one
 * run from the first position on. Otherwise the period's bursts again, each moved on by the
 * period's shift (the channel's log of issued bursts holds the period). */
struct cursor {
    const struct queue *q;
    const struct thread *t;
    const struct issue *log;  /* the channel's ring of issued bursts, this direction */
    int chan, dir, qi, contiguous;
    uint64_t k, m;            /* next future burst; bursts per period */
    uint32_t shift;           /* SAR (DAR) move per period */
    uint64_t addr, left;      /* the current segment */
};

static void cursor_init(struct cursor *c, struct vfl_pl330 *d, const struct thread *t, int chan,
                        int dir, int contiguous, uint64_t m, uint32_t shift)
{
    *c = (struct cursor){ dir ? &d->wq : &d->rq, t, d->log[chan][dir], chan, dir, 0, contiguous,
                          t->issued[dir], m, shift, 0, 0 };
}

static void cursor_next(struct cursor *c)
{
    for (; c->qi < c->q->n; c->qi++) {
        const struct burst *b = &c->q->e[c->qi];
        if (b->chan == c->chan) {
            uint32_t size = 1u << b->size_log2;
            c->addr = b->addr;
            c->left = (uint64_t)b->beats * size - (b->addr & (size - 1));
            c->qi++;
            if (c->contiguous)
                c->left = UINT64_MAX - c->addr;   /* the rest follows on */
            return;
        }
    }
    if (c->contiguous) {
        c->addr = c->dir ? c->t->dar : c->t->sar;
        c->left = UINT64_MAX - c->addr;
        return;
    }
    /* Burst k repeats burst k - q*m of the logged period, q periods on. */
    uint64_t q = (c->k - c->t->issued[c->dir]) / c->m + 1, j = c->k - q * c->m;
    const struct issue *e = &c->log[j % ISSUE_LOG];
    c->addr = e->addr + q * c->shift;
    c->left = e->bytes;
    c->k++;
}

static void cursor_advance(struct cursor *c, uint64_t n)
{
    c->addr += n;
    c->left -= n;
}

/* Just past the last byte of the stream's first `bytes` bytes (streams only move forward). */
static uint64_t stream_end(const struct cursor *start, uint64_t bytes)
{
    struct cursor c = *start;
    uint64_t end = c.addr;
    while (bytes) {
        if (!c.left)
            cursor_next(&c);
        uint64_t n = c.left < bytes ? c.left : bytes;
        end = c.addr + n;
        cursor_advance(&c, n);
        bytes -= n;
    }
    return end;
}

struct stream {               /* one channel over the periods being skipped */
    uint32_t per_period;      /* bytes it reads (and writes) each period */
    uint32_t sshift, dshift;  /* SAR, DAR move per period */
    struct cursor rd, wr;     /* positioned on their first segments */
    uint64_t rlo, rhi, wlo, whi;   /* the bus addresses read and written in the skip */
    uint8_t *src, *dst;       /* host memory at rlo and wlo */
};

static int overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return alen && blen && a < b + blen && b < a + alen;
}

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

/* The largest n' <= n whose stream of n' * per_period bytes ends at or before `limit`. */
static uint64_t periods_within(const struct cursor *c, uint32_t per_period, uint64_t n,
                               uint64_t limit)
{
    uint64_t lo = 0, hi = n;
    while (lo < hi) {
        uint64_t mid = hi - (hi - lo) / 2;
        if (stream_end(c, mid * per_period) <= limit)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

/* Host memory for [lo, hi), asked from known - 1, a byte this run already moved (so the bus
 * cannot fault and log anything); *n shrinks to the periods one translation covers. */
static uint8_t *translate_span(struct vfl_pl330 *d, uint64_t known, uint64_t lo,
                               const struct cursor *c, uint32_t per_period, uint64_t *n,
                               uint64_t *hi, int access)
{
    if (known == NO_ADDR || known > lo || !known)
        return NULL;
    uint64_t len = *hi - (known - 1);
    uint8_t *host = d->bus.translate(d->bus.ctx, known - 1, &len, access);
    if (!host || !len)
        return NULL;
    if (known - 1 + len < *hi) {
        *n = periods_within(c, per_period, *n, known - 1 + len);
        *hi = stream_end(c, *n * per_period);
    }
    return host + (lo - (known - 1));
}

/* The log of issued bursts as stepping would have left it n periods on: burst k of the skipped
 * periods is burst k - q*m of the last period (the one the snapshot proved), q periods on. */
static void shift_log(struct vfl_pl330 *d, int chan, int dir, uint64_t m, uint64_t n,
                      uint32_t shift)
{
    struct thread *t = &d->chan[chan];
    struct issue *log = d->log[chan][dir], old[ISSUE_LOG];
    memcpy(old, log, sizeof(old));
    uint64_t count = t->issued[dir], end = count + n * m;
    t->issued[dir] = end;
    if (m > ISSUE_LOG || count - m < t->log_from[dir]) {
        t->log_from[dir] = end;   /* the period is not in the log: nothing logged is right */
        return;
    }
    for (uint64_t k = end - min_u64(end - count, ISSUE_LOG); k < end; k++) {
        uint64_t q = (k - count) / m + 1;
        struct issue e = old[(k - q * m) % ISSUE_LOG];
        e.addr += (uint32_t)(q * shift);
        log[k % ISSUE_LOG] = e;
    }
}

/* Now is `then` shifted by a whole number of periods: skip as many more as safely repeat.
 * Returns the periods skipped. */
static uint64_t skip_periods(struct vfl_pl330 *d, const struct snapshot *then)
{
    uint32_t nthreads = d->cfg.channels + 1, align = d->cfg.data_width_bits / 8;
    uint32_t sshift[MAX_CHANNELS], dshift[MAX_CHANNELS];
    uint32_t lc_step[MAX_CHANNELS + 1][2];
    uint64_t period = d->cycles - then->cycles, n = UINT64_MAX;
    if (!period || d->mfifo_used != then->mfifo_used || d->inten != then->inten ||
        d->ris != then->ris || d->irq_lines_seen != then->irq_lines_seen ||
        d->abort_seen != then->abort_seen ||
        memcmp(d->request_pending, then->request_pending, 32) ||
        memcmp(d->request_burst, then->request_burst, 32) ||
        memcmp(d->request_last, then->request_last, 32))
        return 0;
    for (uint32_t i = 0; i < nthreads; i++) {
        const struct thread *t = thread_at(d, (int)i), *o = &then->threads[i];
        if (!same_shape(t, o))
            return 0;
        for (int k = 0; k < 2; k++) {
            /* A counter reloaded by DMALP in the period must come back to the same value; one
             * only counted down may count down as many more periods as it has left. */
            if (t->resets[k] != o->resets[k] ? t->lc[k] != o->lc[k] : t->lc[k] > o->lc[k])
                return 0;
            lc_step[i][k] = o->lc[k] - t->lc[k];
            if (lc_step[i][k])
                n = min_u64(n, t->lc[k] / lc_step[i][k]);
        }
        if (i) {
            sshift[i - 1] = t->sar - o->sar;
            dshift[i - 1] = t->dar - o->dar;
            if (sshift[i - 1] % align || dshift[i - 1] % align || sshift[i - 1] >> 31 ||
                dshift[i - 1] >> 31)
                return 0;
        } else if (t->sar != o->sar || t->dar != o->dar) {
            return 0;
        }
    }
    if (!same_queue(&d->rq, &then->rq, sshift) || !same_queue(&d->wq, &then->wq, dshift))
        return 0;
    n = min_u64(n, (d->run_end - d->cycles - 1) / period);   /* stepping stops at the budget */
    struct stream st[MAX_CHANNELS];
    for (uint32_t c = 0; c < d->cfg.channels && n; c++) {
        const struct thread *t = &d->chan[c], *o = &then->threads[c + 1];
        struct stream *s = &st[c];
        uint64_t loads = t->issued[0] - o->issued[0], stores = t->issued[1] - o->issued[1];
        s->per_period = 0;
        if (!loads && !stores)
            continue;
        int contiguous = t->addh == o->addh;
        if (!d->bus.translate ||
            (!contiguous && (loads > ISSUE_LOG || stores > ISSUE_LOG ||
                             t->issued[0] - loads < t->log_from[0] ||
                             t->issued[1] - stores < t->log_from[1])))
            return 0;
        uint64_t rbytes = 0, wbytes = 0;
        if (contiguous) {
            rbytes = sshift[c];
            wbytes = dshift[c];
        } else {
            for (uint64_t k = t->issued[0] - loads; k < t->issued[0]; k++)
                rbytes += d->log[c][0][k % ISSUE_LOG].bytes;
            for (uint64_t k = t->issued[1] - stores; k < t->issued[1]; k++)
                wbytes += d->log[c][1][k % ISSUE_LOG].bytes;
        }
        if (rbytes != wbytes || !rbytes || rbytes >> 31)
            return 0;             /* the MFIFO would fill or drain: not a steady copy */
        s->per_period = (uint32_t)rbytes;
        s->sshift = sshift[c];
        s->dshift = dshift[c];
        cursor_init(&s->rd, d, t, (int)c, 0, contiguous, loads, sshift[c]);
        cursor_init(&s->wr, d, t, (int)c, 1, contiguous, stores, dshift[c]);
        cursor_next(&s->rd);
        cursor_next(&s->wr);
        /* Stay below 4 GiB: SAR and DAR run ahead of the bytes moved. */
        uint64_t top = t->sar > t->dar ? t->sar : t->dar;
        uint32_t shift = sshift[c] > dshift[c] ? sshift[c] : dshift[c];
        if (shift)
            n = min_u64(n, (0xFFFFFFFFull - top) / shift);
    }
    if (!n)
        return 0;
    for (uint32_t c = 0; c < d->cfg.channels && n; c++) {
        struct stream *s = &st[c];
        if (!s->per_period)
            continue;
        const struct thread *t = &d->chan[c];
        s->rlo = s->rd.addr;
        s->wlo = s->wr.addr;
        s->rhi = stream_end(&s->rd, n * s->per_period);
        s->whi = stream_end(&s->wr, n * s->per_period);
        if (s->rhi > 0x100000000ull || s->whi > 0x100000000ull)
            return 0;
        s->src = translate_span(d, t->rd_end, s->rlo, &s->rd, s->per_period, &n, &s->rhi,
                                VFL_BUS_READ);
        if (!s->src)
            return 0;
        s->whi = stream_end(&s->wr, n * s->per_period);
        s->dst = translate_span(d, t->wr_end, s->wlo, &s->wr, s->per_period, &n, &s->whi,
                                VFL_BUS_WRITE);
        if (!s->dst)
            return 0;
    }
    if (!n)
        return 0;
    /* The skipped writes must not change what any stream reads or any thread runs, and the MFIFO
     * must be refilled from bytes read in the skipped periods. */
    for (uint32_t c = 0; c < d->cfg.channels; c++) {
        struct stream *s = &st[c];
        if (!s->per_period)
            continue;
        s->rhi = stream_end(&s->rd, n * s->per_period);
        s->whi = stream_end(&s->wr, n * s->per_period);
        if (n * s->per_period < d->chan[c].fifo_n)
            return 0;
        uint64_t wlen = s->whi - s->wlo;
        for (uint32_t o = 0; o < d->cfg.channels; o++) {
            struct stream *x = &st[o];
            if (!x->per_period)
                continue;
            uint64_t rlen = x->rhi - x->rlo, olen = x->whi - x->wlo;
            if (overlap(s->wlo, wlen, x->rlo, rlen) ||
                overlap((uintptr_t)s->dst, wlen, (uintptr_t)x->src, rlen) ||
                (o != c && (overlap(s->wlo, wlen, x->wlo, olen) ||
                            overlap((uintptr_t)s->dst, wlen, (uintptr_t)x->dst, olen))))
                return 0;
        }
        for (uint32_t i = 0; i < nthreads; i++) {
            const struct thread *t = thread_at(d, (int)i);
            if (t->pc_lo <= t->pc_hi &&
                overlap(s->wlo, wlen, t->pc_lo, (uint64_t)t->pc_hi - t->pc_lo + 1))
                return 0;
        }
    }
    /* Each channel's bytes leave in the order they came: what is in its MFIFO first, then what it
     * reads; what it read last stays in the MFIFO. */
    for (uint32_t c = 0; c < d->cfg.channels; c++) {
        struct stream *s = &st[c];
        if (!s->per_period)
            continue;
        struct thread *t = &d->chan[c];
        uint64_t total = n * s->per_period, done = 0, f = t->fifo_n, taken = 0;
        uint64_t wrote_at = s->wlo, wrote_len = 0;
        while (done < total) {
            if (!s->wr.left)
                cursor_next(&s->wr);
            uint64_t chunk = min_u64(s->wr.left, total - done);
            uint8_t *to = s->dst + (s->wr.addr - s->wlo);
            if (taken < f) {
                chunk = min_u64(chunk, f - taken);
                for (uint64_t i = 0; i < chunk; i++)
                    to[i] = t->fifo[(t->fifo_head + taken + i) % d->mfifo_capacity];
                taken += chunk;
            } else {
                if (!s->rd.left)
                    cursor_next(&s->rd);
                chunk = min_u64(chunk, s->rd.left);
                memcpy(to, s->src + (s->rd.addr - s->rlo), chunk);
                cursor_advance(&s->rd, chunk);
            }
            if (wrote_at + wrote_len != s->wr.addr) {   /* a gap: report what came before it */
                if (wrote_len && d->bus.wrote)
                    d->bus.wrote(d->bus.ctx, wrote_at, wrote_len);
                wrote_at = s->wr.addr;
                wrote_len = 0;
            }
            wrote_len += chunk;
            cursor_advance(&s->wr, chunk);
            done += chunk;
        }
        if (wrote_len && d->bus.wrote)
            d->bus.wrote(d->bus.ctx, wrote_at, wrote_len);
        for (uint64_t got = 0; got < f;) {
            if (!s->rd.left)
                cursor_next(&s->rd);
            uint64_t chunk = min_u64(s->rd.left, f - got);
            memcpy(t->fifo + got, s->src + (s->rd.addr - s->rlo), chunk);
            cursor_advance(&s->rd, chunk);
            got += chunk;
        }
        t->fifo_head = 0;
        const struct thread *o = &then->threads[c + 1];
        uint32_t smove = (uint32_t)(n * s->sshift), dmove = (uint32_t)(n * s->dshift);
        shift_log(d, (int)c, 0, t->issued[0] - o->issued[0], n, s->sshift);
        shift_log(d, (int)c, 1, t->issued[1] - o->issued[1], n, s->dshift);
        t->sar += smove;
        t->dar += dmove;
        t->rd_end += smove;
        t->wr_end += dmove;
        for (int i = 0; i < d->rq.n; i++)
            if (d->rq.e[i].chan == c)
                d->rq.e[i].addr += smove;
        for (int i = 0; i < d->wq.n; i++)
            if (d->wq.e[i].chan == c)
                d->wq.e[i].addr += dmove;
    }
    for (uint32_t i = 0; i < nthreads; i++)
        for (int k = 0; k < 2; k++)
            thread_at(d, (int)i)->lc[k] -= (uint32_t)(n * lc_step[i][k]);
    d->cycles += n * period;
    d->fast_iterations += n;
    return n;
}

/* Thread t (channel) has just jumped back at the DMALPEND at pc. */
static void loop_jumped(struct vfl_pl330 *d, struct thread *t, uint32_t pc)
{
    struct history *slots = &d->history[2 * chan_index(d, t)], *h = &slots[0];
    if (slots[0].pc != pc)
        h = slots[1].pc == pc || slots[1].used < slots[0].used ? &slots[1] : &slots[0];
    if (h->pc != pc) {
        h->pc = pc;
        h->n = h->next = 0;
    }
    for (int i = 0; i < h->n; i++) {
        if (skip_periods(d, &h->s[(h->next + HISTORY - 1 - i) % HISTORY])) {
            h->n = h->next = 0;   /* older snapshots now span a skip: start again from here */
            break;
        }
    }
    take_snapshot(d, &h->s[h->next]);
    h->next = (h->next + 1) % HISTORY;
    if (h->n < HISTORY)
        h->n++;
    h->used = d->cycles;
}

/* What the fast path needs to know about an instruction the thread just retired: a DMALP
 * reloads a counter, a DMAADDH leaves a gap in a stream; anything but incrementing loads and
 * stores (no endian swap), barriers, DMANOP, DMAMOV CCR and DMALPEND makes the period
 * unrepeatable in bulk. */
static void note_retired(struct thread *t, const uint8_t *b)
{
    uint8_t op = b[0];
    int ok;
    if (op == 0x20 || op == 0x22) {
        t->resets[(op >> 1) & 1]++;
        return;
    }
    if (op == 0x04 || op == 0x05 || op == 0x07)
        ok = t->ccr & 1;
    else if (op == 0x08 || op == 0x09 || op == 0x0B)
        ok = ((t->ccr >> 14) & 1) && !((t->ccr >> 28) & 7);
    else if (op == 0xBC && b[1] == 1)
        ok = 1;                   /* DMAMOV CCR: bursts change shape, the streams go on */
    else if (op == 0x54 || op == 0x56) {
        t->addh++;                /* the stream goes on further up: a gap, not a stop */
        return;
    } else
        ok = op == 0x12 || op == 0x13 || op == 0x18 ||
             ((op & 0xE8) == 0x28 && (op & 3) != 2 && op != 0x29 && op != 0x2B);
    if (!ok)
        t->unsafe++;
}
/* ---- one thread, one cycle ---- */

static int runnable(uint8_t state)
{
    return state == ST_EXECUTING || state == ST_WAITING_EVENT || state == ST_AT_BARRIER ||
           state == ST_WAITING_PERIPH || state == ST_COMPLETING;
}

/* Returns 1 when the thread made progress. */
static int step_thread(struct vfl_pl330 *d, struct thread *t, int allow_fast)
{
    if (!runnable(t->state))
        return 0;
    /* A waiting thread retries only once what it waits for is there (DMASEV itself retires the
     * DMAWFEs it wakes; an interrupt turned back into an event by INTEN is seen here). */
    if (t->state == ST_WAITING_EVENT) {
        uint32_t bit = 1u << t->wakeup;
        if (!(d->ris & bit) || (d->inten & bit))
            return 0;
    }
    if (t->state == ST_WAITING_PERIPH && !d->request_pending[t->wakeup])
        return 0;
    uint8_t b[6];
    if (bus_copy(d, t->pc, b, 1, VFL_BUS_FETCH) < 0) {
        fault(d, t, F_FETCH);
        return 1;
    }
    int len = insn_length(b[0]);
    if (!len) {
        fault(d, t, F_UNDEF);
        return 1;
    }
    if (len > 1 && bus_copy(d, t->pc + 1, b + 1, (uint32_t)len - 1, VFL_BUS_FETCH) < 0) {
        fault(d, t, F_FETCH);
        return 1;
    }
    if (t->pc < t->pc_lo)
        t->pc_lo = t->pc;
    if (t->pc + (uint32_t)len - 1 > t->pc_hi)
        t->pc_hi = t->pc + (uint32_t)len - 1;
    /* A faulting instruction leaves the PC on itself, for the fault handler; QEMU moves the PC
     * past instructions it decoded before they faulted. */
    uint8_t before = t->state;
    int pc_set;
    if (execute(d, t, b, &pc_set) == STALL)
        return t->state != before;
    if (!pc_set && !is_faulting(t))
        t->pc += (uint32_t)len;
    if (t->state == ST_COMPLETING || t->state == ST_AT_BARRIER || t->state == ST_WAITING_PERIPH)
        t->state = ST_EXECUTING;
    note_retired(t, b);
    if (allow_fast && pc_set && t != &d->manager && (b[0] & 0xE8) == 0x28)
        loop_jumped(d, t, t->pc + b[1]);
    return 1;
}

/* ---- one beat of each queue ---- */

static void fifo_push(struct vfl_pl330 *d, struct thread *t, const uint8_t *buf, uint32_t n)
{
    uint32_t cap = d->mfifo_capacity;
    for (uint32_t i = 0; i < n; i++)
        t->fifo[(t->fifo_head + t->fifo_n + i) % cap] = buf[i];
    t->fifo_n += n;
    d->mfifo_used += n;
}

static void fifo_pop(struct vfl_pl330 *d, struct thread *t, uint8_t *buf, uint32_t n)
{
    uint32_t cap = d->mfifo_capacity;
    for (uint32_t i = 0; i < n; i++)
        buf[i] = t->fifo[(t->fifo_head + i) % cap];
    t->fifo_head = (t->fifo_head + n) % cap;
    t->fifo_n -= n;
    d->mfifo_used -= n;
}

/* Endian swap (CCR endian_swap_size): bytes reversed within each 2^swap_log2-byte container of
 * the beat, containers aligned to the destination address. A container wider than the beat is
 * not swapped: the TRM requires the swap size not to exceed the burst size. QEMU ignores the
 * field. */
static void endian_swap(uint8_t *buf, uint32_t addr, uint32_t n, uint32_t swap_log2)
{
    uint32_t w = 1u << swap_log2;
    if (w <= 1)
        return;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t a = addr + i, mirror = a ^ (w - 1);
        if (mirror > a && mirror - addr < n) {
            uint8_t tmp = buf[i];
            buf[i] = buf[mirror - addr];
            buf[mirror - addr] = tmp;
        }
    }
}

static void finish_fault_completing(struct vfl_pl330 *d, int c)
{
    struct thread *t = &d->chan[c];
    if (t->state == ST_FAULT_COMPLETING && !queued_for(&d->rq, c) && !queued_for(&d->wq, c)) {
        fifo_drop(d, t);
        t->state = ST_FAULTING;
    }
}

static int read_beat(struct vfl_pl330 *d)
{
    uint32_t seen = 0;
    for (int i = 0; i < d->rq.n; i++) {
        struct burst *b = &d->rq.e[i];
        if (seen & (1u << b->chan))
            continue;             /* per channel, bursts go in order */
        seen |= 1u << b->chan;
        uint32_t size = 1u << b->size_log2, n = size - (b->addr & (size - 1));
        if (d->mfifo_capacity - d->mfifo_used < n)
            continue;
        uint8_t buf[16];
        int c = b->chan;
        if (bus_copy(d, b->addr, buf, n, VFL_BUS_READ) < 0) {
            bus_fault(d, c, F_READ);
            return 1;
        }
        fifo_push(d, &d->chan[c], buf, n);
        d->chan[c].rd_end = (uint64_t)b->addr + n;
        if (b->inc)
            b->addr += n;
        if (--b->beats == 0) {
            queue_remove(&d->rq, i);
            finish_fault_completing(d, c);
        }
        return 1;
    }
    return 0;
}

static int write_beat(struct vfl_pl330 *d)
{
    uint32_t seen = 0;
    for (int i = 0; i < d->wq.n; i++) {
        struct burst *b = &d->wq.e[i];
        if (seen & (1u << b->chan))
            continue;
        seen |= 1u << b->chan;
        int c = b->chan;
        struct thread *t = &d->chan[c];
        uint32_t size = 1u << b->size_log2, n = size - (b->addr & (size - 1));
        uint8_t buf[16] = {0};
        if (!b->zero) {
            if (t->fifo_n < n)
                continue;         /* its data is still being read */
            fifo_pop(d, t, buf, n);
            endian_swap(buf, b->addr, n, b->swap_log2);
        }
        if (bus_copy(d, b->addr, buf, n, VFL_BUS_WRITE) < 0) {
            bus_fault(d, c, F_WRITE);
            return 1;
        }
        t->wr_end = (uint64_t)b->addr + n;
        if (b->inc)
            b->addr += n;
        if (--b->beats == 0) {
            queue_remove(&d->wq, i);
            finish_fault_completing(d, c);
        }
        return 1;
    }
    return 0;
}

/* No progress anywhere: a channel still executing is stuck for good (the TRM's lockup). */
static void lockup(struct vfl_pl330 *d)
{
    for (uint32_t i = 0; i < d->cfg.channels; i++) {
        struct thread *t = &d->chan[i];
        if (t->state == ST_EXECUTING || t->state == ST_AT_BARRIER || t->state == ST_COMPLETING ||
            t->state == ST_FAULT_COMPLETING) {
            int was = t->state == ST_FAULT_COMPLETING;
            flush_channel(d, t);
            if (!was)
                t->fault |= F_LOCKUP;
            t->state = ST_FAULTING;
        }
    }
    update_irqs(d);
}

uint64_t vfl_pl330_run(struct vfl_pl330 *d, uint64_t max_cycles, int allow_fast)
{
    uint64_t start = d->cycles, end = max_cycles > UINT64_MAX - start ? UINT64_MAX
                                                                     : start + max_cycles;
    d->idle = 0;
    /* The fast path trusts only what this run saw: the CPU may have changed mappings or memory
     * between runs. */
    d->run_end = end;
    for (int i = 0; i < 2 * MAX_CHANNELS; i++)
        d->history[i].n = d->history[i].next = 0;
    for (uint32_t i = 0; i <= d->cfg.channels; i++) {
        struct thread *t = thread_at(d, (int)i);
        t->rd_end = t->wr_end = NO_ADDR;
        t->pc_lo = UINT32_MAX;
        t->pc_hi = 0;
    }
    while (d->cycles < end) {
        int progress = step_thread(d, &d->manager, 0);
        for (uint32_t i = 0; i < d->cfg.channels; i++)
            progress |= step_thread(d, &d->chan[i], allow_fast);
        progress |= read_beat(d);
        progress |= write_beat(d);
        d->cycles++;
        if (!progress) {
            lockup(d);
            d->idle = 1;
            break;
        }
    }
    return d->cycles - start;
}

int vfl_pl330_idle(struct vfl_pl330 *d) { return d->idle; }
uint64_t vfl_pl330_cycles(struct vfl_pl330 *d) { return d->cycles; }
uint64_t vfl_pl330_fast_iterations(struct vfl_pl330 *d) { return d->fast_iterations; }

/* ---- debug interface ---- */

static void debug_execute(struct vfl_pl330 *d)
{
    uint32_t i0 = d->dbginst0, i1 = d->dbginst1;
    struct thread *t;
    if (i0 & 1) {
        uint32_t c = (i0 >> 8) & 7;
        if (c >= d->cfg.channels)
            return;               /* no such thread: nothing to run it on */
        t = &d->chan[c];
    } else {
        t = &d->manager;
    }
    uint8_t b[6] = { (uint8_t)(i0 >> 16), (uint8_t)(i0 >> 24), (uint8_t)i1, (uint8_t)(i1 >> 8),
                     (uint8_t)(i1 >> 16), (uint8_t)(i1 >> 24) };
    t->debug = 1;
    /* Only DMAGO, DMAKILL and DMASEV may come from the debug interface. */
    if (b[0] == 0x01 || b[0] == 0x34 || ((b[0] == 0xA0 || b[0] == 0xA2) && !(i0 & 1))) {
        if (!is_faulting(t) || b[0] == 0x01) {
            int pc_set;
            execute(d, t, b, &pc_set);
        }
    } else {
        fault(d, t, F_UNDEF);
    }
    t->debug = 0;
}

/* ---- registers ---- */

static uint32_t csr(const struct thread *t)
{
    return t->state | (uint32_t)t->wakeup << 4 | (uint32_t)t->wfp_burst << 14 |
           (uint32_t)t->wfp_periph << 15 | (uint32_t)t->nonsecure << 21;
}

uint32_t vfl_pl330_readl(struct vfl_pl330 *d, uint32_t off)
{
    static const uint8_t ids[8] = { 0x30, 0x13, 0x24, 0x00, 0x0D, 0xF0, 0x05, 0xB1 };
    const struct vfl_pl330_config *c = &d->cfg;
    if (off & 3 || off >= 0x1000)
        return 0;
    if (off >= 0xFE0)
        return ids[(off - 0xFE0) >> 2];
    if (off >= 0x040 && off < 0x060) {
        uint32_t n = (off - 0x040) >> 2;
        return n < c->channels ? d->chan[n].fault : 0;
    }
    if (off >= 0x100 && off < 0x140) {
        uint32_t n = (off - 0x100) >> 3;
        if (n >= c->channels)
            return 0;
        return off & 4 ? d->chan[n].pc : csr(&d->chan[n]);
    }
    if (off >= 0x400 && off < 0x500) {
        uint32_t n = (off - 0x400) >> 5;
        if (n >= c->channels)
            return 0;
        const struct thread *t = &d->chan[n];
        switch (off & 0x1F) {
        case 0x00: return t->sar;
        case 0x04: return t->dar;
        case 0x08: return t->ccr;
        case 0x0C: return t->lc[0];
        case 0x10: return t->lc[1];
        }
        return 0;
    }
    uint32_t width_log2 = c->data_width_bits == 32 ? 2 : c->data_width_bits == 64 ? 3 : 4;
    /* INTCLR, DBGCMD, DBGINST0 and DBGINST1 are write-only: they read as 0. */
    switch (off) {
    case 0x000:
        return d->manager.state | (uint32_t)d->manager.wakeup << 4 |
               (uint32_t)d->manager.nonsecure << 9;
    case 0x004: return d->manager.pc;
    case 0x020: return d->inten;
    case 0x024: return d->ris;
    case 0x028: return d->ris & d->inten;
    case 0x030: return d->manager.state == ST_FAULTING;   /* QEMU: any state but stopped */
    case 0x034: {
        uint32_t v = 0;
        for (uint32_t i = 0; i < c->channels; i++)
            v |= (uint32_t)is_faulting(&d->chan[i]) << i;
        return v;
    }
    case 0x038: return d->manager.fault;
    case 0xD00: return 0;      /* debug instructions run at once: never busy */
    case 0xE00:
        return (c->peripherals ? 1u : 0u) | (c->boot_manager ? 2u : 0u) |
               (c->manager_nonsecure ? 4u : 0u) | (c->channels - 1) << 4 |
               (c->peripherals ? (c->peripherals - 1) << 12 : 0) | (c->events - 1) << 17;
    case 0xE04: return 0x72;   /* 8 instruction cache lines of 4 words: not modelled */
    case 0xE08: return c->boot_address;
    case 0xE0C: return c->irq_nonsecure;
    case 0xE10: return c->periph_nonsecure;
    case 0xE14:
        return width_log2 | 7u << 4 | (c->write_queue_depth - 1) << 8 | 7u << 12 |
               (c->read_queue_depth - 1) << 16 | (c->mfifo_lines - 1) << 20;
    }
    return 0;
}

void vfl_pl330_writel(struct vfl_pl330 *d, uint32_t off, uint32_t value)
{
    uint32_t mask = d->cfg.events >= 32 ? 0xFFFFFFFFu : (1u << d->cfg.events) - 1;
    switch (off) {
    case 0x020:
        d->inten = value & mask;
        update_irqs(d);
        break;
    case 0x02C:
        d->ris &= ~(value & d->inten);   /* clears interrupts only, not pending events */
        update_irqs(d);
        break;
    case 0xD04:
        if ((value & 3) == 0)
            debug_execute(d);
        break;
    case 0xD08: d->dbginst0 = value; break;
    case 0xD0C: d->dbginst1 = value; break;
    default: break;            /* read-only or reserved: ignored */
    }
}

/* ---- thread state, requests ---- */

int vfl_pl330_thread_state(struct vfl_pl330 *d, int thread, struct vfl_pl330_thread *out)
{
    if (thread < MANAGER || thread >= (int)d->cfg.channels)
        return -1;
    const struct thread *t = thread == MANAGER ? &d->manager : &d->chan[thread];
    memset(out, 0, sizeof(*out));
    out->state = t->state;
    out->pc = t->pc;
    out->sar = t->sar;
    out->dar = t->dar;
    out->ccr = t->ccr;
    out->lc0 = t->lc[0];
    out->lc1 = t->lc[1];
    out->fault = t->fault;
    out->wakeup = t->wakeup;
    out->nonsecure = t->nonsecure;
    if (thread != MANAGER) {
        out->mfifo_bytes = t->fifo_n;
        out->reads_queued = (uint32_t)queued_for(&d->rq, thread);
        out->writes_queued = (uint32_t)queued_for(&d->wq, thread);
    }
    return 0;
}

int vfl_pl330_request(struct vfl_pl330 *d, uint32_t periph, int burst, int last)
{
    if (periph >= d->cfg.peripherals || d->request_pending[periph])
        return -1;
    d->request_pending[periph] = 1;
    d->request_burst[periph] = !!burst;
    d->request_last[periph] = !!last;
    return 0;
}

int vfl_pl330_request_pending(struct vfl_pl330 *d, uint32_t periph)
{
    return periph < d->cfg.peripherals && d->request_pending[periph];
}
