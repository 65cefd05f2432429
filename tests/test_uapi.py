"""vfiolab.uapi against the real <linux/vfio.h>: a C probe prints every size, offset and number."""
import ctypes
import os
import shutil
import subprocess

import pytest

from vfiolab import uapi

# Another header set can be probed with VFIOLAB_UAPI_INCLUDE=<dir holding linux/vfio.h>, e.g. one
# unpacked from a newer linux-libc-dev (dpkg-deb -x linux-libc-dev_*.deb root; root/usr/include).
INCLUDE = os.environ.get("VFIOLAB_UAPI_INCLUDE", "/usr/include")
HEADER = os.path.join(INCLUDE, "linux", "vfio.h")


def is_flexible(kind):
    return issubclass(kind, ctypes.Array) and kind._length_ == 0


def probe_source():
    lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <linux/version.h>",
             "#include <linux/vfio.h>", "int main(void) {",
             '  printf("const LINUX_VERSION_CODE %llu\\n", (unsigned long long)LINUX_VERSION_CODE);']
    for name in uapi.header_constants():
        lines.append(f'  printf("const {name} %llu\\n", (unsigned long long)({name}));')
    for name, struct in uapi.header_structs().items():
        lines.append(f'  printf("sizeof {name} %zu\\n", sizeof(struct {name}));')
        for field, kind in struct._fields_:
            lines.append(f'  printf("offsetof {name}.{field} %zu\\n", offsetof(struct {name}, {field}));')
            # A flexible array member (data[]) has no size; compare its element's size instead.
            element = "[0]" if is_flexible(kind) else ""
            lines.append(f'  printf("fieldsize {name}.{field} %zu\\n", '
                         f'sizeof(((struct {name} *)0)->{field}{element}));')
    lines += ["  return 0;", "}"]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def header_facts(tmp_path_factory):
    if not os.path.exists(HEADER):
        pytest.fail(f"{HEADER} is missing: sudo apt install linux-libc-dev (the README's test command does)")
    cc = shutil.which("cc") or shutil.which("gcc")
    work = tmp_path_factory.mktemp("probe")
    (work / "probe.c").write_text(probe_source())
    build = subprocess.run([cc, "-I", INCLUDE, "-o", str(work / "probe"), str(work / "probe.c")],
                           capture_output=True, text=True)
    assert build.returncode == 0, f"the probe does not compile against {HEADER}:\n{build.stderr}"
    out = subprocess.run([str(work / "probe")], capture_output=True, text=True, check=True).stdout
    return {" ".join(line.split()[:2]): int(line.split()[2]) for line in out.splitlines()}


def test_every_constant_and_ioctl_number_matches_the_header(header_facts):
    ours = uapi.header_constants()
    assert len(ours) > 80
    wrong = {n: (v, header_facts[f"const {n}"]) for n, v in ours.items() if header_facts[f"const {n}"] != v}
    assert not wrong, f"(ours, header) differ: {wrong}"


# Structs that newer headers grew at the tail: (Linux version, size there). Ours follow Debian 12's
# header; the kernel needs only argsz >= offsetofend(last field it reads), so the shorter struct
# stays valid on newer kernels (checked here against trixie's 6.12 header with VFIOLAB_UAPI_INCLUDE).
GREW_LATER = {"vfio_device_info": ((6, 8), 24)}  # + __u32 pad


def header_version(header_facts):
    code = header_facts["const LINUX_VERSION_CODE"]
    return code >> 16, (code >> 8) & 0xFF


@pytest.mark.parametrize("name", sorted(uapi.header_structs()))
def test_struct_layout_matches_the_header(header_facts, name):
    struct = uapi.header_structs()[name]
    theirs = header_facts[f"sizeof {name}"]
    since, grown = GREW_LATER.get(name, (None, None))
    if since and header_version(header_facts) >= since and theirs == grown:
        theirs = ctypes.sizeof(struct)  # the newer header's tail; every field we define is compared below
    assert ctypes.sizeof(struct) == theirs, f"sizeof(struct {name})"
    for field, kind in struct._fields_:
        assert getattr(struct, field).offset == header_facts[f"offsetof {name}.{field}"], f"{name}.{field}"
        size = ctypes.sizeof(kind._type_ if is_flexible(kind) else kind)
        assert size == header_facts[f"fieldsize {name}.{field}"], f"size of {name}.{field}"


def test_the_reference_numbers():
    # REFERENCE.md section 1: every VFIO ioctl is _IO(';', 100 + n) = 0x3B64 + n.
    assert uapi.VFIO_GET_API_VERSION == 0x3B64
    assert uapi.VFIO_IOMMU_UNMAP_DMA == 0x3B64 + 14
    assert uapi.region_offset(3) == 3 << 40


def test_argsz_defaults_to_the_struct_size():
    assert uapi.vfio_region_info(index=2).argsz == 32
    arg = uapi.irq_set_eventfds(0, [7])
    assert arg.argsz == 24 and arg.count == 1 and arg.fds[0] == 7
    assert uapi.vfio_irq_set.data.offset == 20


def test_a_value_that_does_not_fit_its_field_is_refused_not_truncated():
    # ctypes alone would keep the low 64 bits: MAP_DMA at 2**64 + 0x200000 would map 0x200000.
    with pytest.raises(ValueError, match=r"iova = 0x10000000000200000 does not fit its u64 field"):
        uapi.vfio_iommu_type1_dma_map(iova=(1 << 64) + 0x200000)
    arg = uapi.vfio_iommu_type1_dma_map()
    with pytest.raises(ValueError, match="size = -0x1000"):
        arg.size = -0x1000
    with pytest.raises(TypeError, match="must be an int, not str"):
        arg.iova = "0x1000"
    assert uapi.irq_set_eventfds(0, [-1]).fds[0] == -1  # s32 eventfds: -1 is valid (tear down)
