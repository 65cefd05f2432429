"""/dev/vfio/vfio: the container (drivers/vfio/container.c).

A container holds groups and, after VFIO_SET_IOMMU, an IOMMU backend (type1 here; no NOIOMMU,
as Debian's kernels build none). Ioctls the container does not know go to the backend, or fail
with EINVAL when there is none yet (vfio_fops_unl_ioctl).
"""
import errno

from vfiolab import uapi

from .errors import kernel_error
from .files import File
from .vfio_iommu_type1 import Type1Iommu, check_extension


class Container(File):
    name = "/dev/vfio/vfio"

    def __init__(self, board):
        self.board = board
        self.groups = []
        self.iommu = None

    def ioctl(self, request, arg):
        if request == uapi.VFIO_GET_API_VERSION:
            return uapi.VFIO_API_VERSION
        if request == uapi.VFIO_CHECK_EXTENSION:
            return self.check_extension(arg)
        if request == uapi.VFIO_SET_IOMMU:
            return self.set_iommu(arg)
        if self.iommu is None:
            raise kernel_error(errno.EINVAL, "vfio_fops_unl_ioctl: no IOMMU set on this container yet "
                               "(VFIO_SET_IOMMU first)")
        return self.iommu.ioctl(request, arg)

    def check_extension(self, arg):
        """vfio_container_ioctl_check_extension: ask the backend, or every registered one."""
        if not isinstance(arg, int):
            return 0      # the pointer's value is an unknown extension number
        if self.iommu is not None:
            return self.iommu.check_extension(arg)
        return check_extension(None, arg, self.board)

    def set_iommu(self, arg):
        """vfio_ioctl_set_iommu."""
        if not self.groups or self.iommu is not None:
            raise kernel_error(errno.EINVAL, "vfio_ioctl_set_iommu: needs at least one group and no IOMMU set yet")
        types = (uapi.VFIO_TYPE1_IOMMU, uapi.VFIO_TYPE1v2_IOMMU, uapi.VFIO_TYPE1_NESTING_IOMMU)
        if not isinstance(arg, int) or check_extension(None, arg, self.board) <= 0 or arg not in types:
            # No registered backend accepts this type: ret stays -ENODEV.
            raise kernel_error(errno.ENODEV, f"vfio_ioctl_set_iommu: no IOMMU backend for type {arg!r}")
        iommu = Type1Iommu(self.board, v2=arg != uapi.VFIO_TYPE1_IOMMU)
        try:
            for group in self.groups:          # __vfio_container_attach_groups
                iommu.attach_group(group)
        except OSError:
            iommu.release()
            raise
        self.iommu = iommu
        return 0

    def attach_group(self, group):
        """vfio_container_attach_group: claim DMA ownership, attach to the backend if any."""
        # iommu_group_claim_dma_owner: -EPERM while anyone holds DMA ownership (owner_cnt), be it
        # another user or a host driver (seen on the qemu board's 6.1 kernel: virtio-pci in the group).
        iommu_group = group.iommu_group
        if iommu_group.user_owner is not None:
            raise kernel_error(errno.EPERM, "iommu_group_claim_dma_owner: already owned")
        kernel_users = [d.name for d in iommu_group.devices if d.driver is not None and not d.driver.driver_managed_dma]
        if kernel_users:
            raise kernel_error(errno.EPERM, "iommu_group_claim_dma_owner: the group is not viable, "
                               f"{', '.join(kernel_users)} still bound to host drivers")
        if self.iommu is not None:
            self.iommu.attach_group(group)
        iommu_group.user_owner = self
        self.groups.append(group)

    def detach_group(self, group):
        """vfio_group_detach_container: the last group out releases the backend (all mappings)."""
        if self.iommu is not None:
            self.iommu.detach_group(group)
        group.iommu_group.user_owner = None
        self.groups.remove(group)
        if not self.groups and self.iommu is not None:
            self.iommu.release()
            self.iommu = None
