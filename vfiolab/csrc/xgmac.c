/* The Calxeda xgmac: see xgmac.h. Register and bit names follow drivers/net/ethernet/calxeda/xgmac.c;
 * what the Linux driver leaves unsaid (process states, when TPS/RPS and the summaries are set,
 * the error-bit field) follows the Synopsys DesignWare MAC DMA the xgmac is built on. */
#include <stdlib.h>
#include <string.h>
#include "flatmem.h"
#include "xgmac.h"

/* MAC registers */
#define XGMAC_CONTROL       0x000
#define XGMAC_VERSION       0x020
#define XGMAC_ADDR_HIGH0    0x040
#define XGMAC_ADDR_LOW0     0x044
/* DMA registers */
#define DMA_BUS_MODE        0xF00
#define DMA_TX_POLL         0xF04
#define DMA_RX_POLL         0xF08
#define DMA_RX_BASE_ADDR    0xF0C
#define DMA_TX_BASE_ADDR    0xF10
#define DMA_STATUS          0xF14
#define DMA_CONTROL         0xF18
#define DMA_INTR_ENA        0xF1C
#define DMA_MISS_FRAME_CTR  0xF20
#define DMA_CUR_TX_DESC     0xF48
#define DMA_CUR_RX_DESC     0xF4C
#define DMA_CUR_TX_BUF      0xF50
#define DMA_CUR_RX_BUF      0xF54
#define DMA_HW_FEATURE      0xF58
#define REGS_SIZE           0x1000

#define VERSION_VALUE       0x1012u    /* what QEMU's model and Calxeda parts report */

#define CONTROL_LM          0x00001000u
#define CONTROL_DP          0x01000000u
#define CONTROL_TE          0x00000008u
#define CONTROL_RE          0x00000004u
#define BUS_MODE_SFT_RESET  0x00000001u
#define DMA_CONTROL_ST      0x00002000u
#define DMA_CONTROL_SR      0x00000002u

#define STATUS_NIS 0x00010000u
#define STATUS_AIS 0x00008000u
#define STATUS_ERI 0x00004000u
#define STATUS_FBI 0x00002000u
#define STATUS_RPS 0x00000100u
#define STATUS_RU  0x00000080u
#define STATUS_RI  0x00000040u
#define STATUS_TJT 0x00000008u
#define STATUS_TU  0x00000004u
#define STATUS_TPS 0x00000002u
#define STATUS_TI  0x00000001u
#define STATUS_W1C 0x0001FFFFu          /* [16:0]; EB/TS/RS [25:17] are read-only */
#define STATUS_NORMAL   (STATUS_TI | STATUS_TU | STATUS_RI | STATUS_ERI)
#define STATUS_ABNORMAL (0x00007FFFu & ~STATUS_NORMAL)
/* Error bits [25:23] after a fatal bus error: 23 the TX DMA (else RX), 24 a read (else a write),
 * 25 a descriptor access (else a data buffer). Linux's DMA_STATUS_EB_MASK (0x00380000) overlaps its
 * own TS field [22:20]; the DesignWare layout is used here. */
#define EB_TX   0x00800000u
#define EB_READ 0x01000000u
#define EB_DESC 0x02000000u
#define TS_SHIFT 20
#define RS_SHIFT 17

#define DESC_OWN            0x80000000u
#define TXDESC_INTERRUPT    0x40000000u
#define TXDESC_LAST_SEG     0x20000000u
#define TXDESC_FIRST_SEG    0x10000000u
#define TXDESC_DISABLE_PAD  0x04000000u
#define TXDESC_END_RING     0x00200000u
#define TXDESC_CHAINED      0x00100000u
#define TXDESC_ERROR_SUMMARY 0x00008000u
#define TXDESC_JABBER_TIMEOUT 0x00000002u
#define RXDESC_FRAME_LEN_SHIFT 16
#define RXDESC_FIRST_SEG    0x00000200u
#define RXDESC_LAST_SEG     0x00000100u
#define RXDESC_FRAME_TYPE   0x00000020u
#define RXDESC1_DISABLE_IRQ 0x80000000u
#define RXDESC1_END_RING    0x00008000u
#define RXDESC1_CHAINED     0x00004000u
#define BUF1_SIZE(w1)       ((w1) & 0x1FFFu)
#define BUF2_SIZE(w1)       (((w1) >> 16) & 0x1FFFu)
#define DESC_SIZE           32u
#define ADDR_MASK           0xFFFFFFFFull      /* descriptor fields hold 32-bit bus addresses */

#define MIN_TX_FRAME        60u     /* padded to this (64 with the FCS) unless padding is off */
#define MIN_RX_FRAME        14u     /* shorter than an Ethernet header: dropped as a runt */
#define RX_FIFO_FRAMES      16u
#define WIRE_FRAMES         256u

/* DMA process states, as DMA_STATUS TS/RS encode them. */
enum { TX_STOPPED = 0, TX_RUNNING = 1, TX_SUSPENDED = 6 };
enum { RX_STOPPED = 0, RX_RUNNING = 1, RX_WAITING = 3, RX_SUSPENDED = 4 };

struct frame {
    uint32_t len;
    uint8_t *data;
};

struct frame_queue {
    struct frame *slot;
    uint32_t capacity, head, count;
};

struct vfl_xgmac {
    struct vfl_bus bus;
    uint8_t mac[6];
    uint32_t regs[REGS_SIZE / 4];
    uint32_t tx_state, rx_state;
    int tx_dead, rx_dead;            /* a fatal bus error: this DMA is off until a soft reset */
    uint32_t error_bits;
    /* the TX frame being gathered from descriptors */
    uint8_t tx_frame[VFL_XGMAC_MAX_FRAME];
    uint32_t tx_len;
    int tx_in_frame, tx_oversize;
    /* the RX frame being scattered into descriptors */
    uint32_t rx_done;                /* bytes of the FIFO's head frame (FCS included) written */
    int rx_first;                    /* the next descriptor is the frame's first */
    struct frame_queue rx_fifo, wire;
    int rx_progress, tx_progress;
    struct vfl_xgmac_counters counters;
    int irq_level;
    vfl_xgmac_irq_fn irq_fn;
    void *irq_ctx;
};

#define REG(x, off) ((x)->regs[(off) / 4])

/* ---------------------------------------------------------------- frame queues */

static int queue_init(struct frame_queue *q, uint32_t capacity)
{
    q->slot = calloc(capacity, sizeof(*q->slot));
    q->capacity = capacity;
    q->head = q->count = 0;
    return q->slot ? 0 : -1;
}

static void queue_clear(struct frame_queue *q)
{
    for (uint32_t i = 0; i < q->count; i++)
        free(q->slot[(q->head + i) % q->capacity].data);
    q->head = q->count = 0;
}

static struct frame *queue_front(struct frame_queue *q)
{
    return q->count ? &q->slot[q->head] : NULL;
}

static void queue_pop(struct frame_queue *q)
{
    if (!q->count)
        return;
    free(q->slot[q->head].data);
    q->slot[q->head].data = NULL;
    q->head = (q->head + 1) % q->capacity;
    q->count--;
}

/* 0, or -1 when full or out of memory. extra: bytes reserved after the frame (the FCS). */
static int queue_push(struct frame_queue *q, const uint8_t *data, uint32_t len, uint32_t extra)
{
    if (q->count == q->capacity)
        return -1;
    uint8_t *copy = malloc(len + extra ? len + extra : 1);
    if (!copy)
        return -1;
    memcpy(copy, data, len);
    struct frame *f = &q->slot[(q->head + q->count) % q->capacity];
    f->data = copy;
    f->len = len;
    q->count++;
    return 0;
}

/* ---------------------------------------------------------------- status and interrupt */

static uint32_t crc32_ieee(const uint8_t *p, uint32_t n)
{
    uint32_t crc = 0xFFFFFFFFu;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1)));
    }
    return ~crc;
}

static uint32_t status_value(const struct vfl_xgmac *x)
{
    return (REG(x, DMA_STATUS) & STATUS_W1C) | x->error_bits | x->tx_state << TS_SHIFT |
           x->rx_state << RS_SHIFT;
}

static void update_irq(struct vfl_xgmac *x)
{
    int level = (REG(x, DMA_STATUS) & REG(x, DMA_INTR_ENA) & STATUS_W1C) != 0;
    if (level != x->irq_level) {
        x->irq_level = level;
        if (x->irq_fn)
            x->irq_fn(x->irq_ctx, level);
    }
}

/* Set status bits; the summaries latch when an enabled bit of their group is set. */
static void raise_status(struct vfl_xgmac *x, uint32_t bits)
{
    uint32_t enabled = bits & REG(x, DMA_INTR_ENA);
    REG(x, DMA_STATUS) |= bits;
    if (enabled & STATUS_NORMAL)
        REG(x, DMA_STATUS) |= STATUS_NIS;
    if (enabled & STATUS_ABNORMAL)
        REG(x, DMA_STATUS) |= STATUS_AIS;
    update_irq(x);
}

static void fatal_bus_error(struct vfl_xgmac *x, int tx, int read, int desc)
{
    x->error_bits = (tx ? EB_TX : 0) | (read ? EB_READ : 0) | (desc ? EB_DESC : 0);
    if (tx) {
        x->tx_state = TX_STOPPED;
        x->tx_dead = 1;
        x->tx_in_frame = 0;
    } else {
        x->rx_state = RX_STOPPED;
        x->rx_dead = 1;
    }
    raise_status(x, STATUS_FBI);
}

/* ---------------------------------------------------------------- bus access */

static int bus_read(struct vfl_xgmac *x, uint64_t addr, void *buf, uint64_t n)
{
    return vfl_bus_copy(&x->bus, addr & ADDR_MASK, ADDR_MASK, buf, n, VFL_BUS_READ);
}

static int bus_write(struct vfl_xgmac *x, uint64_t addr, const void *buf, uint64_t n)
{
    return vfl_bus_copy(&x->bus, addr & ADDR_MASK, ADDR_MASK, (uint8_t *)buf, n, VFL_BUS_WRITE);
}

static int read_desc(struct vfl_xgmac *x, uint32_t addr, uint32_t w[4])
{
    uint8_t raw[16];
    if (bus_read(x, addr, raw, sizeof(raw)) < 0)
        return -1;
    for (int i = 0; i < 4; i++)
        w[i] = (uint32_t)raw[4 * i] | (uint32_t)raw[4 * i + 1] << 8 |
               (uint32_t)raw[4 * i + 2] << 16 | (uint32_t)raw[4 * i + 3] << 24;
    return 0;
}

/* The DMA writes back word0 (status and OWN) only, as the DesignWare DMA does. */
static int write_desc_flags(struct vfl_xgmac *x, uint32_t addr, uint32_t flags)
{
    uint8_t raw[4] = { flags & 0xFF, flags >> 8 & 0xFF, flags >> 16 & 0xFF, flags >> 24 };
    return bus_write(x, addr, raw, sizeof(raw));
}

/* ---------------------------------------------------------------- receive path */

static void mac_receive(struct vfl_xgmac *x, const uint8_t *frame, uint32_t len)
{
    if (!(REG(x, XGMAC_CONTROL) & CONTROL_RE) || len < MIN_RX_FRAME ||
        queue_push(&x->rx_fifo, frame, len, 4) < 0) {
        x->counters.frames_dropped++;
        if (x->rx_fifo.count == x->rx_fifo.capacity && (REG(x, DMA_MISS_FRAME_CTR) & 0xFFFF) != 0xFFFF)
            REG(x, DMA_MISS_FRAME_CTR)++;        /* [15:0]: missed for want of host buffers */
        return;
    }
    struct frame *f = &x->rx_fifo.slot[(x->rx_fifo.head + x->rx_fifo.count - 1) %
                                       x->rx_fifo.capacity];
    uint32_t fcs = crc32_ieee(frame, len);        /* the MAC delivers the FCS to memory too */
    for (int i = 0; i < 4; i++)
        f->data[len + i] = fcs >> (8 * i) & 0xFF;
    f->len = len + 4;
    /* A suspended receive DMA fetches the descriptor again when a frame arrives. */
    if (x->rx_state == RX_SUSPENDED || x->rx_state == RX_WAITING)
        x->rx_state = RX_RUNNING;
}

static int rx_active(const struct vfl_xgmac *x)
{
    return x->rx_state != RX_STOPPED && x->rx_state != RX_SUSPENDED &&
           (REG(x, DMA_CONTROL) & DMA_CONTROL_SR) && (REG(x, XGMAC_CONTROL) & CONTROL_RE);
}

/* One RX descriptor: 1 when something happened. */
static int rx_step(struct vfl_xgmac *x)
{
    if (!rx_active(x))
        return 0;
    struct frame *f = queue_front(&x->rx_fifo);
    if (!f) {
        x->rx_state = RX_WAITING;
        return 0;
    }
    uint32_t addr = REG(x, DMA_CUR_RX_DESC), w[4];
    if (read_desc(x, addr, w) < 0) {
        fatal_bus_error(x, 0, 1, 1);
        return 1;
    }
    if (!(w[0] & DESC_OWN)) {
        x->rx_state = RX_SUSPENDED;
        raise_status(x, STATUS_RU);
        return 1;
    }
    x->rx_state = RX_RUNNING;
    int chained = (w[1] & RXDESC1_CHAINED) != 0;
    uint32_t sizes[2] = { BUF1_SIZE(w[1]), chained ? 0 : BUF2_SIZE(w[1]) };
    for (int b = 0; b < 2 && x->rx_done < f->len; b++) {
        uint32_t n = f->len - x->rx_done;
        if (n > sizes[b])
            n = sizes[b];
        if (!n)
            continue;
        REG(x, DMA_CUR_RX_BUF) = w[2 + b];
        if (bus_write(x, w[2 + b], f->data + x->rx_done, n) < 0) {
            fatal_bus_error(x, 0, 0, 0);
            return 1;
        }
        x->rx_done += n;
    }
    uint32_t flags = x->rx_first ? RXDESC_FIRST_SEG : 0;
    int last = x->rx_done == f->len;
    if (last) {
        uint32_t type = f->len >= 18 ? (uint32_t)f->data[12] << 8 | f->data[13] : 0;
        flags |= RXDESC_LAST_SEG | (f->len & 0x3FFF) << RXDESC_FRAME_LEN_SHIFT |
                 (type >= 0x600 ? RXDESC_FRAME_TYPE : 0);
    }
    if (write_desc_flags(x, addr, flags) < 0) {
        fatal_bus_error(x, 0, 0, 1);
        return 1;
    }
    if (w[1] & RXDESC1_END_RING)
        REG(x, DMA_CUR_RX_DESC) = REG(x, DMA_RX_BASE_ADDR);
    else if (chained)
        REG(x, DMA_CUR_RX_DESC) = w[3];
    else
        REG(x, DMA_CUR_RX_DESC) = addr + DESC_SIZE;
    x->rx_first = last;
    if (last) {
        queue_pop(&x->rx_fifo);
        x->rx_done = 0;
        x->counters.frames_received++;
        if (!(w[1] & RXDESC1_DISABLE_IRQ))
            raise_status(x, STATUS_RI);
    }
    return 1;
}

/* ---------------------------------------------------------------- transmit path */

static void mac_transmit(struct vfl_xgmac *x, uint8_t *frame, uint32_t len, int pad)
{
    if (pad && len < MIN_TX_FRAME) {
        memset(frame + len, 0, MIN_TX_FRAME - len);
        len = MIN_TX_FRAME;
    }
    if (REG(x, XGMAC_CONTROL) & CONTROL_LM) {
        x->counters.frames_looped++;
        mac_receive(x, frame, len);
        return;
    }
    if (x->wire.count == x->wire.capacity) {
        queue_pop(&x->wire);
        x->counters.wire_overflow++;
    }
    if (queue_push(&x->wire, frame, len, 0) == 0)
        x->counters.frames_sent++;
}

static int tx_active(const struct vfl_xgmac *x)
{
    return x->tx_state == TX_RUNNING && (REG(x, DMA_CONTROL) & DMA_CONTROL_ST) &&
           (REG(x, XGMAC_CONTROL) & CONTROL_TE);
}

static int tx_gather(struct vfl_xgmac *x, uint32_t addr, uint32_t n)
{
    if (!n)
        return 0;
    REG(x, DMA_CUR_TX_BUF) = addr;
    if (x->tx_oversize || x->tx_len + n > VFL_XGMAC_MAX_FRAME) {
        x->tx_oversize = 1;                 /* the jabber timer cuts it off: never sent */
        return 0;
    }
    if (bus_read(x, addr, x->tx_frame + x->tx_len, n) < 0)
        return -1;
    x->tx_len += n;
    return 0;
}

/* One TX descriptor: 1 when something happened. */
static int tx_step(struct vfl_xgmac *x)
{
    if (!tx_active(x))
        return 0;
    uint32_t addr = REG(x, DMA_CUR_TX_DESC), w[4];
    if (read_desc(x, addr, w) < 0) {
        fatal_bus_error(x, 1, 1, 1);
        return 1;
    }
    if (!(w[0] & DESC_OWN)) {
        x->tx_state = TX_SUSPENDED;
        raise_status(x, STATUS_TU);
        return 1;
    }
    if ((w[0] & TXDESC_FIRST_SEG) || !x->tx_in_frame) {
        x->tx_in_frame = 1;
        x->tx_len = 0;
        x->tx_oversize = 0;
    }
    int chained = (w[0] & TXDESC_CHAINED) != 0;
    if (tx_gather(x, w[2], BUF1_SIZE(w[1])) < 0 ||
        (!chained && tx_gather(x, w[3], BUF2_SIZE(w[1])) < 0)) {
        fatal_bus_error(x, 1, 1, 0);
        return 1;
    }
    uint32_t flags = w[0] & ~(DESC_OWN | 0xFFFFu);
    int last = (w[0] & TXDESC_LAST_SEG) != 0;
    if (last && x->tx_oversize)
        flags |= TXDESC_ERROR_SUMMARY | TXDESC_JABBER_TIMEOUT;
    if (write_desc_flags(x, addr, flags) < 0) {
        fatal_bus_error(x, 1, 0, 1);
        return 1;
    }
    if (w[0] & TXDESC_END_RING)
        REG(x, DMA_CUR_TX_DESC) = REG(x, DMA_TX_BASE_ADDR);
    else if (chained)
        REG(x, DMA_CUR_TX_DESC) = w[3];
    else
        REG(x, DMA_CUR_TX_DESC) = addr + DESC_SIZE;
    if (last) {
        x->tx_in_frame = 0;
        if (x->tx_oversize)
            raise_status(x, STATUS_TJT);
        else
            mac_transmit(x, x->tx_frame, x->tx_len,
                         !(w[0] & TXDESC_DISABLE_PAD) && !(REG(x, XGMAC_CONTROL) & CONTROL_DP));
        if (w[0] & TXDESC_INTERRUPT)
            raise_status(x, STATUS_TI);
    }
    return 1;
}

/* ---------------------------------------------------------------- registers */

static void power_on(struct vfl_xgmac *x)
{
    memset(x->regs, 0, sizeof(x->regs));
    REG(x, XGMAC_ADDR_HIGH0) = (uint32_t)x->mac[5] << 8 | x->mac[4];
    REG(x, XGMAC_ADDR_LOW0) = (uint32_t)x->mac[3] << 24 | (uint32_t)x->mac[2] << 16 |
                              (uint32_t)x->mac[1] << 8 | x->mac[0];
    x->tx_state = TX_STOPPED;
    x->rx_state = RX_STOPPED;
    x->tx_dead = x->rx_dead = 0;
    x->error_bits = 0;
    x->tx_len = 0;
    x->tx_in_frame = x->tx_oversize = 0;
    x->rx_done = 0;
    x->rx_first = 1;
    queue_clear(&x->rx_fifo);
    update_irq(x);
}

struct vfl_xgmac *vfl_xgmac_new(const uint8_t *mac, struct vfl_bus bus)
{
    struct vfl_xgmac *x = calloc(1, sizeof(*x));
    if (!x)
        return NULL;
    if (queue_init(&x->rx_fifo, RX_FIFO_FRAMES) < 0 || queue_init(&x->wire, WIRE_FRAMES) < 0) {
        free(x->rx_fifo.slot);
        free(x);
        return NULL;
    }
    x->bus = bus;
    if (mac)
        memcpy(x->mac, mac, 6);
    power_on(x);
    return x;
}

void vfl_xgmac_free(struct vfl_xgmac *x)
{
    if (!x)
        return;
    queue_clear(&x->rx_fifo);
    queue_clear(&x->wire);
    free(x->rx_fifo.slot);
    free(x->wire.slot);
    free(x);
}

void vfl_xgmac_reset(struct vfl_xgmac *x)
{
    queue_clear(&x->wire);
    memset(&x->counters, 0, sizeof(x->counters));
    power_on(x);
}

uint32_t vfl_xgmac_readl(struct vfl_xgmac *x, uint32_t offset)
{
    offset &= ~3u;
    if (offset >= REGS_SIZE)
        return 0;
    switch (offset) {
    case XGMAC_VERSION:
        return VERSION_VALUE;
    case DMA_STATUS:
        return status_value(x);
    case DMA_TX_POLL:
    case DMA_RX_POLL:
        return 0;                       /* write-only demands */
    case DMA_MISS_FRAME_CTR: {
        uint32_t v = REG(x, DMA_MISS_FRAME_CTR);
        REG(x, DMA_MISS_FRAME_CTR) = 0;   /* cleared on read */
        return v;
    }
    default:
        return REG(x, offset);
    }
}

void vfl_xgmac_writel(struct vfl_xgmac *x, uint32_t offset, uint32_t value)
{
    offset &= ~3u;
    if (offset >= REGS_SIZE)
        return;
    switch (offset) {
    case XGMAC_VERSION:
    case DMA_MISS_FRAME_CTR:
    case DMA_CUR_TX_DESC:
    case DMA_CUR_RX_DESC:
    case DMA_CUR_TX_BUF:
    case DMA_CUR_RX_BUF:
    case DMA_HW_FEATURE:
        return;                         /* read-only */
    case DMA_BUS_MODE:
        if (value & BUS_MODE_SFT_RESET) {
            power_on(x);                /* completes at once: the bit reads back 0 */
            return;
        }
        REG(x, offset) = value;
        return;
    case DMA_TX_POLL:
        if (x->tx_state == TX_SUSPENDED)
            x->tx_state = TX_RUNNING;
        return;
    case DMA_RX_POLL:
        if (x->rx_state == RX_SUSPENDED)
            x->rx_state = RX_RUNNING;
        return;
    case DMA_RX_BASE_ADDR:
        REG(x, DMA_RX_BASE_ADDR) = REG(x, DMA_CUR_RX_DESC) = value;
        return;
    case DMA_TX_BASE_ADDR:
        REG(x, DMA_TX_BASE_ADDR) = REG(x, DMA_CUR_TX_DESC) = value;
        return;
    case DMA_STATUS:
        REG(x, DMA_STATUS) &= ~(value & STATUS_W1C);
        update_irq(x);
        return;
    case DMA_INTR_ENA:
        REG(x, DMA_INTR_ENA) = value & STATUS_W1C;
        update_irq(x);
        return;
    case DMA_CONTROL: {
        uint32_t old = REG(x, DMA_CONTROL);
        REG(x, DMA_CONTROL) = value;
        if ((value & ~old & DMA_CONTROL_ST) && !x->tx_dead)
            x->tx_state = TX_RUNNING;
        if (old & ~value & DMA_CONTROL_ST && x->tx_state != TX_STOPPED) {
            x->tx_state = TX_STOPPED;   /* the frame being gathered is dropped */
            x->tx_in_frame = 0;
            raise_status(x, STATUS_TPS);
        }
        if ((value & ~old & DMA_CONTROL_SR) && !x->rx_dead)
            x->rx_state = RX_RUNNING;
        if (old & ~value & DMA_CONTROL_SR && x->rx_state != RX_STOPPED) {
            x->rx_state = RX_STOPPED;   /* a partly written frame is written again from its start */
            x->rx_done = 0;
            x->rx_first = 1;
            raise_status(x, STATUS_RPS);
        }
        return;
    }
    default:
        REG(x, offset) = value;
        return;
    }
}

/* ---------------------------------------------------------------- running */

uint64_t vfl_xgmac_run(struct vfl_xgmac *x, uint64_t max_steps)
{
    uint64_t steps = 0;
    while (steps < max_steps) {
        int progress = tx_step(x);
        if (steps + progress < max_steps)
            progress += rx_step(x);
        if (!progress)
            break;
        steps += progress;
    }
    x->counters.steps += steps;
    return steps;
}

int vfl_xgmac_idle(struct vfl_xgmac *x)
{
    return !tx_active(x) && !(rx_active(x) && x->rx_fifo.count);
}

uint32_t vfl_xgmac_max_frame(void) { return VFL_XGMAC_MAX_FRAME; }

int vfl_xgmac_receive(struct vfl_xgmac *x, const uint8_t *frame, uint32_t len)
{
    if (len > VFL_XGMAC_MAX_FRAME)
        return -2;
    uint64_t dropped = x->counters.frames_dropped;
    mac_receive(x, frame, len);
    return x->counters.frames_dropped == dropped ? 0 : -1;
}

int vfl_xgmac_take_sent(struct vfl_xgmac *x, uint8_t *buf, uint32_t max)
{
    struct frame *f = queue_front(&x->wire);
    if (!f)
        return -1;
    int len = (int)f->len;
    memcpy(buf, f->data, f->len < max ? f->len : max);
    queue_pop(&x->wire);
    return len;
}

uint32_t vfl_xgmac_sent_queued(struct vfl_xgmac *x) { return x->wire.count; }
uint32_t vfl_xgmac_rx_fifo_frames(struct vfl_xgmac *x) { return x->rx_fifo.count; }

void vfl_xgmac_counters(struct vfl_xgmac *x, struct vfl_xgmac_counters *out) { *out = x->counters; }
int vfl_xgmac_irq_line(struct vfl_xgmac *x) { return x->irq_level; }

void vfl_xgmac_set_irq_callback(struct vfl_xgmac *x, vfl_xgmac_irq_fn fn, void *ctx)
{
    x->irq_fn = fn;
    x->irq_ctx = ctx;
}
