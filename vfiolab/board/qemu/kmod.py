"""Kernel modules of an unpacked Debian kernel package: find them and the order to load them.

Debian ships no modules.dep (depmod runs at install time), so dependencies are read from each
module's own ".modinfo" ELF section ("depends=a,b"), as depmod itself does.
"""
import os
import struct


def module_name(filename):
    """Module name as the kernel writes it: file name without .ko, '-' -> '_'."""
    return os.path.basename(filename).split(".ko")[0].replace("-", "_")


def find_modules(moddir):
    """{module name: path} for every .ko under the kernel's module directory."""
    found = {}
    for dirpath, _, filenames in os.walk(moddir):
        for f in filenames:
            if f.endswith(".ko"):
                found[module_name(f)] = os.path.join(dirpath, f)
    return found


def modinfo(path):
    """The key=value pairs of a module's .modinfo section (little-endian ELF64, as on arm64)."""
    with open(path, "rb") as f:
        elf = f.read()
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        raise ValueError(f"{path} is not an ELF64 module (compressed modules are not handled)")
    shoff, = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)
    sections = [struct.unpack_from("<IIQQQQ", elf, shoff + i * shentsize) for i in range(shnum)]
    strtab_off = sections[shstrndx][4]
    info = {}
    for name_off, _, _, _, offset, size in sections:
        name = elf[strtab_off + name_off:elf.index(b"\0", strtab_off + name_off)]
        if name == b".modinfo":
            for item in elf[offset:offset + size].split(b"\0"):
                key, sep, value = item.decode(errors="replace").partition("=")
                if sep:
                    info.setdefault(key, value)
    return info


def load_order(wanted, modules):
    """`wanted` module names and everything they depend on, dependencies first."""
    order, seen = [], set()

    def visit(name):
        name = name.replace("-", "_")
        if name in seen:
            return
        seen.add(name)
        if name not in modules:
            raise LookupError(f"kernel module {name} is not in the kernel package")
        for dep in filter(None, modinfo(modules[name]).get("depends", "").split(",")):
            visit(dep)
        order.append(name)

    for name in wanted:
        visit(name)
    return order
