"""cffi builder for vfiolab._hw: every C kernel in this folder, one extension module.

Each kernel is `<name>.c` plus `<name>.h`; the part of the header between `/* cffi-begin */` and
`/* cffi-end */` is plain declarations that cffi can parse, so the header is the one place an API is
declared for both C and Python. Adding a kernel means adding its two files: nothing here changes.
"""
import glob
import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
BEGIN, END = "/* cffi-begin */", "/* cffi-end */"


def cdef_block(header_path):
    text = open(header_path).read()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{header_path}: needs a {BEGIN} ... {END} block of cffi declarations")
    return text.split(BEGIN, 1)[1].split(END, 1)[0]


headers = sorted(glob.glob(os.path.join(HERE, "*.h")))
sources = sorted(glob.glob(os.path.join(HERE, "*.c")))

ffibuilder = FFI()
ffibuilder.cdef("\n".join(cdef_block(h) for h in headers))
ffibuilder.set_source(
    "vfiolab._hw",
    "\n".join(f'#include "{os.path.basename(h)}"' for h in headers),
    sources=[os.path.relpath(s) for s in sources],
    include_dirs=[os.path.relpath(HERE)],
    extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
