/* The Calxeda xgmac (a Synopsys DesignWare 10G MAC + DMA): registers, descriptor rings, a wire.
 *
 * Registers and descriptor bits as drivers/net/ethernet/calxeda/xgmac.c uses them (REFERENCE.md
 * section 5). The DMA walks a TX and an RX ring of 32-byte descriptors:
 *   word0 flags: OWN bit31; TX: INTERRUPT 30, LAST 29, FIRST 28, DISABLE_PAD 26, END_RING 21,
 *                CHAINED 20, ERROR_SUMMARY 15; RX: frame length [29:16] (FCS included),
 *                ERROR_SUMMARY 15, DESCRIPTOR_ERR 14, FIRST 9, LAST 8, FRAME_TYPE 5
 *   word1 sizes: buffer 1 [12:0], buffer 2 [28:16]; RX: END_RING bit15, CHAINED bit14,
 *                DISABLE_INTERRUPT bit31
 *   word2 buffer 1 address, word3 buffer 2 address (or the next descriptor when CHAINED)
 * Every descriptor and buffer access goes through the vfl_bus (the sim board's SMMU): a fault is
 * a fatal bus error (DMA_STATUS FBI, error bits EB) and stops that DMA, never a host access.
 *
 * The TX DMA runs while DMA_CONTROL.ST and MAC CONTROL.TE are set; the RX DMA while SR and RE.
 * A sent frame goes out on the wire (vfl_xgmac_take_sent), or, with CONTROL.LM (loopback), into
 * the receive FIFO; vfl_xgmac_receive puts a frame from the wire there. One step handles one
 * descriptor of one DMA; vfl_xgmac_run steps until both DMAs are idle or the budget is spent.
 */
#ifndef VFIOLAB_XGMAC_H
#define VFIOLAB_XGMAC_H
#include <stdint.h>
#include "bus.h"

/* cffi-begin */
struct vfl_xgmac;

/* The main interrupt line is level-triggered: high while DMA_STATUS & DMA_INTR_ENA. */
typedef void (*vfl_xgmac_irq_fn)(void *ctx, int level);

struct vfl_xgmac_counters {
    uint64_t frames_sent;        /* onto the wire */
    uint64_t frames_looped;      /* sent with CONTROL.LM: into our own receive FIFO */
    uint64_t frames_received;    /* written into the RX ring */
    uint64_t frames_dropped;     /* arrived with the receiver off, FIFO full, or undersized */
    uint64_t wire_overflow;      /* sent frames the wire queue dropped (oldest first) */
    uint64_t steps;
};

/* mac: 6 bytes (ADDR_HIGH/LOW(0) at power-on). NULL when out of memory. */
struct vfl_xgmac *vfl_xgmac_new(const uint8_t *mac, struct vfl_bus bus);
void vfl_xgmac_free(struct vfl_xgmac *x);
/* Power-on state: every register at reset value, FIFO and wire queues empty. */
void vfl_xgmac_reset(struct vfl_xgmac *x);

uint32_t vfl_xgmac_readl(struct vfl_xgmac *x, uint32_t offset);
void vfl_xgmac_writel(struct vfl_xgmac *x, uint32_t offset, uint32_t value);

/* Step up to max_steps descriptors; returns the steps run. Stops early when both DMAs are idle
 * (stopped, suspended, or waiting for a frame). */
uint64_t vfl_xgmac_run(struct vfl_xgmac *x, uint64_t max_steps);
int vfl_xgmac_idle(struct vfl_xgmac *x);

/* A frame from the wire (without FCS). 0 queued; -1 dropped (receiver off, FIFO full,
 * shorter than 14 bytes); -2 longer than VFL_XGMAC_MAX_FRAME (never queued). */
int vfl_xgmac_receive(struct vfl_xgmac *x, const uint8_t *frame, uint32_t len);
uint32_t vfl_xgmac_max_frame(void);
/* Frames sent onto the wire, oldest first: copies the oldest into buf (at most max bytes),
 * removes it and returns its length; -1 when none is queued. */
int vfl_xgmac_take_sent(struct vfl_xgmac *x, uint8_t *buf, uint32_t max);
uint32_t vfl_xgmac_sent_queued(struct vfl_xgmac *x);
uint32_t vfl_xgmac_rx_fifo_frames(struct vfl_xgmac *x);

void vfl_xgmac_counters(struct vfl_xgmac *x, struct vfl_xgmac_counters *out);
int vfl_xgmac_irq_line(struct vfl_xgmac *x);
void vfl_xgmac_set_irq_callback(struct vfl_xgmac *x, vfl_xgmac_irq_fn fn, void *ctx);
/* cffi-end */

#define VFL_XGMAC_MAX_FRAME 16384u

#endif
