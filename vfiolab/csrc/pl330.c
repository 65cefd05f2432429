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
};

struct burst {
    uint32_t addr;
    uint32_t beats;
    uint8_t size_log2, inc, zero, chan, swap_log2;
};

struct queue {
    struct burst e[MAX_QUEUE];
    int n, depth;
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
    vfl_pl330_reset(d);
    return d;
}

void vfl_pl330_free(struct vfl_pl330 *d)
{
    if (!d)
        return;
    for (int i = 0; i < MAX_CHANNELS; i++)
        free(d->chan[i].fifo);
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
    if (!zero)
        t->unclaimed -= bytes;
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

/* ---- fast path: a counted {DMALD, [DMARMB], DMAST, DMAWMB} loop as bulk copies ----
 *
 * With DMAWMB in the body every iteration ends with the channel's queues empty, so if nothing
 * else runs, stepping passes through exactly the states computed here: SAR and DAR advance one
 * burst per iteration, the loop counter counts down, and memory gets, iteration by iteration,
 * the source bytes. When the source and destination overlap the bytes depend on beat order, so
 * that is only done with DMARMB (all of an iteration's reads land before its writes). Anything
 * unusual (bus error, a short translation, overlap with the loop's code) goes back to stepping.
 */
static int others_quiet(struct vfl_pl330 *d, struct thread *self)
{
    if (d->rq.n || d->wq.n)
        return 0;
    struct thread *m = &d->manager;
    if (m->state != ST_STOPPED && m->state != ST_FAULTING && m->state != ST_WAITING_EVENT)
        return 0;
    for (uint32_t i = 0; i < d->cfg.channels; i++) {
        struct thread *t = &d->chan[i];
        if (t == self)
            continue;
        if (t->state != ST_STOPPED && t->state != ST_FAULTING && t->state != ST_WAITING_EVENT &&
            t->state != ST_WAITING_PERIPH)
            return 0;
    }
    return 1;
}

static int ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return a < b + blen && b < a + alen;
}

/* Copy up to max_iters iterations of `bytes` each from SAR to DAR, advancing SAR and DAR;
 * returns the iterations done. *bus_error is F_READ or F_WRITE when the next iteration's source
 * or destination does not translate at all (the bus has recorded that fault: stepping must not
 * ask again). The loop's code is [code, code + code_len): a copy that would rewrite it, a short
 * translation or an overlap without DMARMB is left to stepping. */
static uint64_t copy_iterations(struct vfl_pl330 *d, struct thread *t, uint64_t bytes,
                                uint64_t src_beat, uint64_t dst_beat, uint64_t max_iters,
                                int rmb, uint32_t code, uint64_t code_len, uint32_t *bus_error)
{
    uint64_t done = 0;
    *bus_error = 0;
    while (done < max_iters && d->bus.translate) {
        uint64_t want = (max_iters - done) * bytes;
        /* Stay below 4 GiB: a wrapping address goes to stepping. */
        uint64_t room = ((uint64_t)1 << 32) - (t->sar > t->dar ? t->sar : t->dar);
        if (want > room)
            want = room / bytes * bytes;
        if (!want)
            break;
        /* Ask first for one beat, as stepping would: if that faults, the bus logs exactly the
         * fault stepping would have caused. Only then ask for the whole run. */
        uint64_t slen = src_beat, dlen = dst_beat;
        if (!d->bus.translate(d->bus.ctx, t->sar, &slen, VFL_BUS_READ)) {
            *bus_error = F_READ;
            break;
        }
        slen = want;
        uint8_t *src = d->bus.translate(d->bus.ctx, t->sar, &slen, VFL_BUS_READ);
        if (!src || slen < bytes)
            break;                /* the burst straddles a mapping boundary: step it */
        if (!d->bus.translate(d->bus.ctx, t->dar, &dlen, VFL_BUS_WRITE)) {
            *bus_error = F_WRITE;
            break;
        }
        dlen = slen < want ? slen : want;
        uint8_t *dst = d->bus.translate(d->bus.ctx, t->dar, &dlen, VFL_BUS_WRITE);
        if (!dst)
            break;
        uint64_t k = (slen < dlen ? slen : dlen) / bytes;
        if (k > max_iters - done)
            k = max_iters - done;
        if (!k)
            break;
        uint64_t len = k * bytes;
        if (ranges_overlap(t->dar, len, code, code_len))
            break;                /* the copy rewrites the loop itself */
        if (ranges_overlap((uintptr_t)src, len, (uintptr_t)dst, len)) {
            if (!rmb)
                break;
            for (uint64_t i = 0; i < k; i++)
                memmove(dst + i * bytes, src + i * bytes, bytes);
        } else {
            memcpy(dst, src, len);
        }
        if (d->bus.wrote)
            d->bus.wrote(d->bus.ctx, t->dar, len);
        t->sar += (uint32_t)len;
        t->dar += (uint32_t)len;
        done += k;
    }
    return done;
}

static int fetch_byte(struct vfl_pl330 *d, uint32_t addr, uint8_t *out)
{
    return bus_copy(d, addr, out, 1, VFL_BUS_FETCH) == 0;
}

/* Returns iterations done, or 1 after an emulated bus fault (0: not applicable, step instead).
 * The thread is at `start`, the DMALD that opens a counted loop body. */
static uint64_t fast_loop(struct vfl_pl330 *d, struct thread *t)
{
    if (t->unclaimed || t->fifo_n || !others_quiet(d, t))
        return 0;
    /* Read the body: at most 12 bytes of one-byte instructions, then the DMALPEND. */
    uint8_t code[16];
    uint32_t start = t->pc;
    int n = 0, ld = -1, st = -1, rmb = 0, wmb = -1, end = -1;
    while (n < 12) {
        if (!fetch_byte(d, start + (uint32_t)n, code + n))
            return 0;
        uint8_t op = code[n];
        if (op == 0x04 && ld < 0) ld = n;
        else if (op == 0x08 && ld >= 0 && st < 0) st = n;
        else if (op == 0x12 && ld >= 0 && st < 0) rmb = 1;
        else if (op == 0x13 && st >= 0 && wmb < 0) wmb = n;
        else if (op == 0x18) { }
        else if (op == 0x38 || op == 0x3C) { end = n; break; }
        else return 0;
        n++;
    }
    if (end < 0 || st < 0 || wmb < 0 || !fetch_byte(d, start + (uint32_t)end + 1, code + end + 1) ||
        code[end + 1] != end)
        return 0;
    int lc = (code[end] >> 2) & 1;
    uint32_t ccr = t->ccr;
    uint32_t ss = (ccr >> 1) & 7, sl = ((ccr >> 4) & 15) + 1, ds = (ccr >> 15) & 7,
             dl = ((ccr >> 18) & 15) + 1;
    uint64_t bytes = (uint64_t)sl << ss;
    if (!(ccr & 1) || !((ccr >> 14) & 1) || ((ccr >> 28) & 7) || !size_ok(d, ss) ||
        !size_ok(d, ds) || bytes != ((uint64_t)dl << ds) || bytes > d->mfifo_capacity ||
        (t->sar & ((1u << ss) - 1)) || (t->dar & ((1u << ds) - 1)))
        return 0;
    uint64_t code_len = (uint64_t)end + 2, left = (uint64_t)t->lc[lc] + 1;
    uint32_t bus_error;
    uint64_t done = copy_iterations(d, t, bytes, 1u << ss, 1u << ds, left, rmb, start, code_len,
                                    &bus_error);
    uint64_t total = done;
    /* From here the thread is at the body's start with the loop counter showing the iterations
     * left, or (all done) just past the DMALPEND. */
    if (done < left) {
        t->lc[lc] -= (uint32_t)done;
    } else {
        t->lc[lc] = 0;
        t->pc = start + (uint32_t)code_len;
        /* Linux nests: DMALP LCx, n; body; DMALPEND LCx; DMALPEND LCy back to that DMALP.
         * The outer iterations go the same way (the inner counter restarts at n - 1 each). */
        uint8_t lp[2], outer[2];
        int other = !lc;
        if (fetch_byte(d, start - 2, lp) && fetch_byte(d, start - 1, lp + 1) &&
            fetch_byte(d, t->pc, outer) && fetch_byte(d, t->pc + 1, outer + 1) &&
            lp[0] == (0x20 | lc << 1) && outer[0] == (0x38 | other << 2) &&
            outer[1] == code_len + 2 && t->lc[other]) {
            uint64_t inner = (uint64_t)lp[1] + 1, outer_left = t->lc[other];
            uint64_t more = copy_iterations(d, t, bytes, 1u << ss, 1u << ds, outer_left * inner,
                                            rmb, start - 2, code_len + 4, &bus_error);
            total += more;
            if (more == outer_left * inner) {
                t->lc[other] = 0;
                t->pc += 2;       /* the last outer DMALPEND falls through */
            } else if (more || bus_error) {
                /* Part way through outer iteration j (0-based), r inner iterations done: the
                 * outer DMALPEND has jumped back j + 1 times and DMALP restarted the inner
                 * counter, which has counted r. */
                uint64_t j = more / inner, r = more % inner;
                t->lc[other] -= (uint32_t)(j + 1);
                t->lc[lc] = (uint32_t)(inner - 1 - r);
                t->pc = start;
            }
        }
    }
    if (bus_error && t->pc == start && (bus_error == F_READ || wmb == st + 1)) {
        /* Step the failing iteration's outcome without asking the bus again: DMALD issues
         * (SAR moves) and its first read beat faults in that cycle; or the reads land, DMAST
         * issues (DAR moves) and its first write beat faults with the thread at DMAWMB. */
        t->sar = burst_next_addr(t->sar, 1u << ss, sl, 1);
        if (bus_error == F_READ) {
            t->pc = start + (uint32_t)ld + 1;
        } else {
            t->dar = burst_next_addr(t->dar, 1u << ds, dl, 1);
            t->pc = start + (uint32_t)wmb;
        }
        t->fault |= bus_error;
        t->state = ST_FAULTING;
        update_irqs(d);
        total += 1;
    } else if (!total) {
        return 0;
    } else {
        t->state = ST_EXECUTING;
    }
    d->fast_iterations += total;
    /* Cycle estimate: one per instruction of each iteration. */
    d->cycles += total * (uint64_t)(end + 1);
    return total;
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
    if (allow_fast && b[0] == 0x04 && t != &d->manager && fast_loop(d, t))
        return 1;
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
