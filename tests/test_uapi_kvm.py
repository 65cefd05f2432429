"""vfiolab.uapi_kvm against arm64's real <linux/kvm.h> and <asm/kvm.h>: a C probe prints every number,
size and offset (linux-libc-dev-arm64-cross; x86-64 and arm64 are both LP64 with the same alignment
rules for these structs, so the host compiler gives arm64's layout)."""
import ctypes
import os
import shutil
import subprocess

import pytest

from vfiolab import uapi_kvm as K

INCLUDE = os.environ.get("VFIOLAB_UAPI_KVM_INCLUDE", "/usr/aarch64-linux-gnu/include")
HEADER = os.path.join(INCLUDE, "asm", "kvm.h")

# ONE_REG ids, computed in C the kernel's way.
CORE_REGS = {"REG_PC": "regs.pc", "REG_PSTATE": "regs.pstate", "REG_SP": "regs.sp",
             "REG_SP_EL1": "sp_el1", "REG_ELR_EL1": "elr_el1", "REG_SPSR_EL1": "spsr[KVM_SPSR_EL1]"}
# kvm_run's exits live in an anonymous union: name them by path.
RUN_FIELDS = ["exit_reason", "immediate_exit", "mmio.phys_addr", "mmio.data", "mmio.len", "mmio.is_write",
              "internal.suberror", "internal.ndata", "internal.data", "arm_nisv.esr_iss",
              "arm_nisv.fault_ipa", "system_event.type", "kvm_valid_regs", "kvm_dirty_regs", "s"]


def ours_offset(path):
    kind, offset = K.kvm_run, 0
    for part in path.split("."):
        if part in dict(K.kvm_run_exit._fields_) and kind is K.kvm_run:
            offset += K.kvm_run.exit.offset
            kind = K.kvm_run_exit
        field = getattr(kind, part)
        offset += field.offset
        kind = dict(kind._fields_)[part]
    return offset


def probe_source():
    # asm/kvm.h's KVM_VGIC_V3_*_SIZE use the kernel's SZ_64K, which no uapi header defines.
    lines = ["#include <stdio.h>", "#include <stddef.h>", "#define SZ_64K 0x10000",
             "#include <linux/kvm.h>", "int main(void) {"]
    for name in K.header_constants():
        lines.append(f'  printf("const {name} %llu\\n", (unsigned long long)({name}));')
    for name, reg in CORE_REGS.items():
        lines.append(f'  printf("const {name} %llu\\n", (unsigned long long)(KVM_REG_ARM64 | '
                     f'KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | KVM_REG_ARM_CORE_REG({reg})));')
    for n in (0, 1, 17, 30):
        lines.append(f'  printf("const x{n} %llu\\n", (unsigned long long)(KVM_REG_ARM64 | '
                     f'KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | KVM_REG_ARM_CORE_REG(regs.regs[{n}])));')
    for name, struct in K.header_structs().items():
        lines.append(f'  printf("sizeof {name} %zu\\n", sizeof(struct {name}));')
        if struct is K.kvm_run:
            continue
        for field, _kind in struct._fields_:
            lines.append(f'  printf("offsetof {name}.{field} %zu\\n", offsetof(struct {name}, {field}));')
    for path in RUN_FIELDS:
        lines.append(f'  printf("offsetof kvm_run.{path} %zu\\n", offsetof(struct kvm_run, {path}));')
    lines += ["  return 0;", "}"]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def facts(tmp_path_factory):
    if not os.path.exists(HEADER):
        pytest.skip(f"{HEADER} is missing: install linux-libc-dev-arm64-cross (./bootstrap test does)")
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler")
    tmp = tmp_path_factory.mktemp("kvmprobe")
    src, exe = tmp / "probe.c", tmp / "probe"
    src.write_text(probe_source())
    # arm64's kernel headers first; the C library's own headers (stdio.h) from the host.
    subprocess.run([cc, "-isystem", INCLUDE, str(src), "-o", str(exe)], check=True)
    out = {}
    for line in subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.splitlines():
        kind, name, value = line.split()
        out[(kind, name)] = int(value)
    return out


@pytest.mark.parametrize("name", K.header_constants())
def test_constant(facts, name):
    assert getattr(K, name) == facts[("const", name)], name


@pytest.mark.parametrize("name", sorted(CORE_REGS))
def test_one_reg_ids(facts, name):
    assert getattr(K, name) == facts[("const", name)]


def test_x_register_ids(facts):
    for n in (0, 1, 17, 30):
        assert K.x_reg(n) == facts[("const", f"x{n}")]
    with pytest.raises(ValueError):
        K.x_reg(31)


@pytest.mark.parametrize("name", sorted(K.header_structs()))
def test_struct_layout(facts, name):
    struct = K.header_structs()[name]
    assert ctypes.sizeof(struct) == facts[("sizeof", name)]
    if struct is K.kvm_run:
        for path in RUN_FIELDS:
            assert ours_offset(path) == facts[("offsetof", f"kvm_run.{path}")], path
        return
    for field, _kind in struct._fields_:
        assert getattr(struct, field).offset == facts[("offsetof", f"{name}.{field}")], field


def test_the_numbers_seen_on_the_qemu_boards_kvm():
    # REFERENCE.md section 10, read off the real kernel inside the qemu board.
    assert (K.KVM_CREATE_VM, K.KVM_SET_USER_MEMORY_REGION, K.KVM_IRQFD, K.KVM_IRQ_LINE) == \
        (0xAE01, 0x4020AE46, 0x4020AE76, 0x4008AE61)
    assert (K.KVM_ARM_PREFERRED_TARGET, K.KVM_CREATE_DEVICE, K.REG_PC) == \
        (0x8020AEAF, 0xC00CAEE0, 0x6030000000100040)
    assert K.irq_line(K.KVM_ARM_IRQ_TYPE_SPI, 37) == 0x01000025
