"""Sizes the kernel checks argsz against (offsetofend of the last required field), from uapi."""
import ctypes

from vfiolab import uapi


def offsetofend(struct, field):
    f = getattr(struct, field)
    return f.offset + f.size


GROUP_STATUS_MINSZ = offsetofend(uapi.vfio_group_status, "flags")
DEVICE_INFO_MINSZ = offsetofend(uapi.vfio_device_info, "num_irqs")
REGION_INFO_MINSZ = offsetofend(uapi.vfio_region_info, "offset")
IRQ_INFO_MINSZ = offsetofend(uapi.vfio_irq_info, "count")
IRQ_SET_MINSZ = offsetofend(uapi.vfio_irq_set, "count")
TYPE1_INFO_MINSZ = offsetofend(uapi.vfio_iommu_type1_info, "iova_pgsizes")
TYPE1_INFO_SIZE = ctypes.sizeof(uapi.vfio_iommu_type1_info)
DMA_MAP_MINSZ = offsetofend(uapi.vfio_iommu_type1_dma_map, "size")
DMA_UNMAP_MINSZ = offsetofend(uapi.vfio_iommu_type1_dma_unmap, "size")
