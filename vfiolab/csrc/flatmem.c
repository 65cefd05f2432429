#define _DEFAULT_SOURCE
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "flatmem.h"

struct vfl_flatmem {
    uint8_t *base;
    uint64_t size;
};

static uint8_t *flat_translate(void *ctx, uint64_t addr, uint64_t *len, int access)
{
    struct vfl_flatmem *mem = ctx;
    if (addr >= mem->size)
        return NULL;
    if (*len > mem->size - addr)
        *len = mem->size - addr;
    return mem->base + addr;
}

struct vfl_flatmem *vfl_flatmem_new(uint64_t size)
{
    struct vfl_flatmem *mem = calloc(1, sizeof(*mem));
    if (!mem)
        return NULL;
    /* NORESERVE + anonymous: zero pages appear on first touch, nothing is committed up front. */
    void *p = mmap(NULL, size ? size : 1, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        free(mem);
        return NULL;
    }
    mem->base = p;
    mem->size = size;
    return mem;
}

void vfl_flatmem_free(struct vfl_flatmem *mem)
{
    if (!mem)
        return;
    munmap(mem->base, mem->size ? mem->size : 1);
    free(mem);
}

struct vfl_bus vfl_flatmem_bus(struct vfl_flatmem *mem)
{
    struct vfl_bus bus = { flat_translate, mem, NULL };
    return bus;
}

uint8_t *vfl_flatmem_base(struct vfl_flatmem *mem) { return mem->base; }
uint64_t vfl_flatmem_size(struct vfl_flatmem *mem) { return mem->size; }

int vfl_bus_copy(const struct vfl_bus *bus, uint64_t addr, uint64_t addr_mask, uint8_t *buf,
                 uint64_t n, int access)
{
    while (n) {
        uint64_t len = n;
        uint8_t *host = bus->translate ? bus->translate(bus->ctx, addr, &len, access) : NULL;
        if (!host || !len)
            return -1;
        if (len > n)
            len = n;
        if (access == VFL_BUS_WRITE) {
            memcpy(host, buf, len);
            if (bus->wrote)
                bus->wrote(bus->ctx, addr, len);
        } else
            memcpy(buf, host, len);
        addr = (addr + len) & addr_mask;
        buf += len;
        n -= len;
    }
    return 0;
}

int vfl_bus_read(const struct vfl_bus *bus, uint64_t addr, void *buf, uint64_t n)
{
    return vfl_bus_copy(bus, addr, UINT64_MAX, buf, n, VFL_BUS_READ);
}

int vfl_bus_write(const struct vfl_bus *bus, uint64_t addr, const void *buf, uint64_t n)
{
    return vfl_bus_copy(bus, addr, UINT64_MAX, (uint8_t *)buf, n, VFL_BUS_WRITE);
}
