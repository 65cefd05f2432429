/* The ARM CoreLink DMA-330 (PL330) DMA controller: registers, threads, queues, MFIFO, one step.
 *
 * A model of the silicon as the DMA-330 TRM describes it: a manager thread and N channel threads
 * running microcode, a read queue and a write queue of AXI bursts (one beat each per cycle), a
 * shared MFIFO, events and interrupts, the fault registers, the debug interface and the peripheral
 * request interface. Every memory access (instruction fetch, data read, data write) goes through a
 * vfl_bus, so a bad address is a bus error recorded by the bus (e.g. the sim board's IOMMU) and a
 * fault on the channel, never a host access.
 *
 * One cycle: the manager and then each channel try their current instruction once; the read queue
 * moves one beat from memory into the MFIFO; the write queue moves one beat out of it.
 * vfl_pl330_run() steps until the budget is spent or a cycle makes no progress (every thread
 * stopped, faulting or waiting). With allow_fast, a loop that runs steadily (Linux's memcpy
 * microcode, with or without barriers, nested, on one channel or several) is skipped whole periods
 * at a time with bulk copies: the same memory, registers, faults, events and cycle count as
 * stepping (pl330.c, "fast path").
 */
#ifndef VFIOLAB_PL330_H
#define VFIOLAB_PL330_H
#include <stdint.h>
#include "bus.h"

/* cffi-begin */
struct vfl_pl330;

struct vfl_pl330_config {
    uint32_t channels;            /* 1..8 */
    uint32_t peripherals;         /* 0..32 request interfaces */
    uint32_t events;              /* 1..32 events and interrupt lines */
    uint32_t data_width_bits;     /* AXI data width: 32, 64 or 128 */
    uint32_t mfifo_lines;         /* MFIFO depth in lines of the data width (CRD data_buffer_dep) */
    uint32_t read_queue_depth;    /* 1..16 */
    uint32_t write_queue_depth;   /* 1..16 */
    uint32_t manager_nonsecure;   /* boot_manager_ns: DSR.DNS */
    uint32_t irq_nonsecure;       /* CR3: events a non-secure thread may use */
    uint32_t periph_nonsecure;    /* CR4: peripherals a non-secure thread may use */
    uint32_t boot_manager;        /* boot_from_pc: the manager starts executing at boot_address */
    uint32_t boot_address;
};

/* One thread, as a widget sees it (thread -1 is the manager). */
struct vfl_pl330_thread {
    uint32_t state;       /* CSR/DSR [3:0]: 0 stopped, 1 executing, 4 waiting for event, ... */
    uint32_t pc;
    uint32_t sar, dar, ccr;
    uint32_t lc0, lc1;
    uint32_t fault;       /* FTR(n) or FTRD */
    uint32_t wakeup;      /* event or peripheral being waited for */
    uint32_t nonsecure;
    uint32_t mfifo_bytes; /* bytes of this channel's data now in the MFIFO */
    uint32_t reads_queued, writes_queued;  /* bursts still in the read and write queues */
};

/* irq_lines bit n: interrupt n is high (INT_EVENT_RIS[n] and INTEN[n]); abort: some thread faults. */
typedef void (*vfl_pl330_irq_fn)(void *ctx, uint32_t irq_lines, int abort);

/* NULL when the configuration is out of range. */
struct vfl_pl330 *vfl_pl330_new(const struct vfl_pl330_config *config, struct vfl_bus bus);
void vfl_pl330_free(struct vfl_pl330 *dma);
void vfl_pl330_default_config(struct vfl_pl330_config *config);
void vfl_pl330_reset(struct vfl_pl330 *dma);

/* APB register file at the TRM's offsets (32-bit accesses). */
uint32_t vfl_pl330_readl(struct vfl_pl330 *dma, uint32_t offset);
void vfl_pl330_writel(struct vfl_pl330 *dma, uint32_t offset, uint32_t value);

/* Step up to max_cycles; returns the cycles run. Stops early when a cycle makes no progress. */
uint64_t vfl_pl330_run(struct vfl_pl330 *dma, uint64_t max_cycles, int allow_fast);
/* 1 when the last run stopped because nothing could make progress. */
int vfl_pl330_idle(struct vfl_pl330 *dma);
uint64_t vfl_pl330_cycles(struct vfl_pl330 *dma);
/* Iterations the fast path has done so far (tests use it to see that it ran). */
uint64_t vfl_pl330_fast_iterations(struct vfl_pl330 *dma);

/* thread: -1 manager, 0..channels-1 a channel. Returns -1 for no such thread. */
int vfl_pl330_thread_state(struct vfl_pl330 *dma, int thread, struct vfl_pl330_thread *out);

/* Peripheral request interface: peripheral `periph` asks for a single (burst = 0) or burst
 * transfer; `last` marks its last request (ends a DMALPFE loop). One request is held per
 * peripheral until a DMAWFP takes it; returns 0, or -1 when one is already pending / no such. */
int vfl_pl330_request(struct vfl_pl330 *dma, uint32_t periph, int burst, int last);
int vfl_pl330_request_pending(struct vfl_pl330 *dma, uint32_t periph);

uint32_t vfl_pl330_irq_lines(struct vfl_pl330 *dma);
int vfl_pl330_abort_line(struct vfl_pl330 *dma);
/* Called whenever the interrupt lines change (fn may be NULL). */
void vfl_pl330_set_irq_callback(struct vfl_pl330 *dma, vfl_pl330_irq_fn fn, void *ctx);
/* cffi-end */

#endif
