"""/dev/vfio/<N>: VFIO groups (drivers/vfio/group.c) and the registry of VFIO devices.

A VFIO group exists while at least one device of its IOMMU group is bound to a VFIO driver; its
character device /dev/vfio/<N> appears and disappears with it. Viability is the kernel's since
5.19: no device of the group is bound to a driver that uses the kernel's DMA API
(iommu_group_dma_owner_claimed); unbound devices and VFIO-bound devices are fine.
"""
import errno
import struct

from vfiolab import uapi

from . import uapi_layouts as L
from .errors import kernel_error
from .files import File
from .userbuf import UserBuffer, user_pointer
from .vfio_container import Container


class VfioGroup:
    """struct vfio_group: one per IOMMU group that has VFIO devices."""

    def __init__(self, board, iommu_group):
        self.board = board
        self.iommu_group = iommu_group
        self.devices = []               # VfioDevice objects registered by vfio-* probes
        self.file = None                # the open GroupFile (only one at a time)
        self.container = None
        self.device_opens = 0           # open device fds (6.1: container_users - 1)

    @property
    def id(self):
        return self.iommu_group.id

    def viable(self):
        """!iommu_group_dma_owner_claimed: no device bound to a driver that claims the DMA API."""
        return not any(d.driver is not None and not d.driver.driver_managed_dma for d in self.iommu_group.devices)

    def open(self, flags):
        """vfio_group_fops_open."""
        if self.file is not None:
            raise kernel_error(errno.EBUSY, f"vfio_group_fops_open: /dev/vfio/{self.id} is already open")
        self.file = GroupFile(self)
        return self.file


class GroupFile(File):
    def __init__(self, group):
        self.group = group
        self.name = f"/dev/vfio/{group.id}"
        self.refs = 1                   # the fd, plus one per open device fd (they hold the group)

    def ioctl(self, request, arg):
        if request == uapi.VFIO_GROUP_GET_STATUS:
            return self.get_status(user_pointer(arg, "VFIO_GROUP_GET_STATUS"))
        if request == uapi.VFIO_GROUP_SET_CONTAINER:
            return self.set_container(arg)
        if request == uapi.VFIO_GROUP_UNSET_CONTAINER:
            return self.unset_container()
        if request == uapi.VFIO_GROUP_GET_DEVICE_FD:
            return self.get_device_fd(arg)
        raise kernel_error(errno.ENOTTY, f"vfio_group_fops_unl_ioctl: unknown request {request:#x}")

    def get_status(self, buf):
        """vfio_group_ioctl_get_status."""
        argsz = struct.unpack("<I", buf.read(0, L.GROUP_STATUS_MINSZ)[:4])[0]
        if argsz < L.GROUP_STATUS_MINSZ:
            raise kernel_error(errno.EINVAL, "vfio_group_ioctl_get_status: argsz is smaller than vfio_group_status")
        group = self.group
        flags = 0
        if group.container is not None:
            flags = uapi.VFIO_GROUP_FLAGS_CONTAINER_SET | uapi.VFIO_GROUP_FLAGS_VIABLE
        elif group.viable():
            flags = uapi.VFIO_GROUP_FLAGS_VIABLE
        buf.put_u32(4, flags)
        return 0

    def set_container(self, arg):
        """vfio_group_ioctl_set_container: arg points to the container's fd (an int32)."""
        buf = user_pointer(arg, "VFIO_GROUP_SET_CONTAINER")      # get_user(fd, arg): EFAULT
        fd = buf.s32(0)
        target = self.group.board.fd_object(fd)
        if target is None:
            raise kernel_error(errno.EBADF, f"vfio_group_ioctl_set_container: fd {fd} is not open")
        if self.group.container is not None:
            raise kernel_error(errno.EINVAL, "vfio_group_ioctl_set_container: the group already has a container")
        if not isinstance(target, Container):
            # Not a container: 6.1 answers EINVAL; since 6.2 (iommufd compat) it is EBADFD.
            code = errno.EBADFD if self.group.board.since("set_container_not_a_container") else errno.EINVAL
            raise kernel_error(code, f"vfio_group_ioctl_set_container: fd {fd} is not /dev/vfio/vfio")
        target.attach_group(self.group)
        self.group.container = target
        return 0

    def unset_container(self):
        """vfio_group_ioctl_unset_container."""
        group = self.group
        if group.container is None:
            raise kernel_error(errno.EINVAL, "vfio_group_ioctl_unset_container: the group has no container")
        if group.device_opens:
            raise kernel_error(errno.EBUSY, "vfio_group_ioctl_unset_container: device fds are still open")
        group.container.detach_group(group)
        group.container = None
        return 0

    def get_device_fd(self, arg):
        """vfio_group_ioctl_get_device_fd: arg is the device's name, a C string."""
        if not isinstance(arg, UserBuffer):
            raise kernel_error(errno.EFAULT, "VFIO_GROUP_GET_DEVICE_FD takes the device name as bytes or str")
        name = arg.c_string().decode("utf-8", "replace")
        group = self.group
        vdev = next((v for v in group.devices if v.device.name == name), None)
        if vdev is None:
            raise kernel_error(errno.ENODEV, f"vfio_device_get_from_name: no device {name!r} in group {group.id}")
        if group.container is None or group.container.iommu is None:
            raise kernel_error(errno.EINVAL, "vfio_device_open_file: the group has no container with an "
                               "IOMMU set (SET_CONTAINER, then SET_IOMMU)")
        device_file = vdev.open_file()
        group.device_opens += 1
        self.refs += 1
        return self.group.board.install(device_file)

    def device_closed(self):
        self.group.device_opens -= 1
        self.put()

    def release(self):
        self.put()

    def put(self):
        """vfio_group_fops_release runs once the fd and every device fd are closed."""
        self.refs -= 1
        if self.refs:
            return
        group = self.group
        if group.container is not None:
            group.container.detach_group(group)
            group.container = None
        group.file = None
        group.board.vfio.group_released(group)


class VfioRegistry:
    """vfio_register_group_dev / vfio_unregister_group_dev, and the /dev/vfio nodes."""

    def __init__(self, board):
        self.board = board
        self.groups = {}                # IOMMU group id -> VfioGroup
        board.vfs.add("/dev/vfio/vfio", board.char_device(lambda flags: Container(board)))

    def register(self, vdev):
        iommu_group = vdev.device.group
        if iommu_group is None:
            # vfio_group_find_or_alloc: no IOMMU group and no noiommu mode.
            raise kernel_error(errno.EINVAL, f"{vdev.device.name}: no IOMMU group")
        group = self.groups.get(iommu_group.id)
        if group is None:
            group = VfioGroup(self.board, iommu_group)
            self.groups[iommu_group.id] = group
            self.board.vfs.add(f"/dev/vfio/{iommu_group.id}", self.board.char_device(group.open))
        group.devices.append(vdev)
        vdev.group = group

    def unregister(self, vdev):
        group = vdev.group
        if vdev.open_count:
            # The kernel blocks in vfio_unregister_group_dev until the fd is closed (and asks user
            # space to let go through the REQ IRQ). A sim call must not hang: refuse instead.
            vdev.request()
            raise kernel_error(errno.EBUSY, f"{vdev.device.name} is open through VFIO: the kernel would "
                               "wait here until its device fd is closed")
        group.devices.remove(vdev)
        vdev.group = None
        if not group.devices:
            self.board.vfs.remove(f"/dev/vfio/{group.id}")
            if group.file is None:
                self.groups.pop(group.id, None)

    def group_released(self, group):
        if not group.devices:
            self.groups.pop(group.id, None)
