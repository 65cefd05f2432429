"""Kernel modules on the sim board: modprobe, rmmod, lsmod and /sys/module/<name>/parameters.

The VFIO modules of Debian 12's arm64 kernel (6.1, CONFIG_VFIO=m) with their dependencies and
parameters as the 6.1 sources declare them (module_param names, types and sysfs modes), plus the
vfio-platform ones a kernel with CONFIG_VFIO_PLATFORM=m has. A driver module registers its driver
when loaded (and binds devices that match, e.g. a driver_override already set) and unregisters it
when removed (unbinding its devices). A reset module registers its handler with vfio-platform.

As on Linux:
  - modprobe loads dependencies first; a name may use '-' or '_', or be an alias
    (vfio-reset:calxeda,hb-xgmac); a module already loaded is left as it is (its 0444 parameters
    cannot change after load); an unknown parameter is logged and ignored; a bad value fails the
    load with EINVAL ("`x' invalid for parameter `p'");
  - rmmod refuses a module another loaded module depends on, or one in use (an open VFIO device
    of its driver, a vfio-platform device holding its reset handler), with EBUSY as kmod does;
  - /sys/module/<name>/parameters/<param> shows each parameter; one with mode 0444 cannot be
    written (EACCES), a 0644 one takes a new value;
  - request_module (vfio-platform's reset lookup) loads an installed module by alias. A board made
    with missing_modules=(...) has those modules not installed: modprobe fails with ENOENT and the
    reset lookup finds nothing.
"""
import errno

from .errors import kernel_error


def kstrtobool(text):
    """param_set_bool: y/Y/1/on true, n/N/0/off false (kstrtobool), else EINVAL."""
    t = text.strip().lower()
    if t[:1] in ("y", "1") or t == "on":
        return True
    if t[:1] in ("n", "0") or t == "off":
        return False
    raise ValueError


def kstrtouint(text):
    """param_set_uint: kstrtouint(base 0): decimal, 0x hex or 0 octal, 0..2^32-1."""
    t = text.strip()
    value = int(t, 0) if not (t.startswith("0") and t[1:2].isdigit()) else int(t, 8)
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError
    return value


class Param:
    """One module_param: name, type ("bool", "uint", "string"), default, sysfs mode (0: none)."""

    def __init__(self, name, kind, default, mode):
        self.name, self.kind, self.default, self.mode = name, kind, default, mode

    def parse(self, value):
        if isinstance(value, bool) or (isinstance(value, int) and self.kind == "uint"):
            value = str(int(value))
        text = value.decode() if isinstance(value, (bytes, bytearray)) else str(value)
        if self.kind == "string":
            return text
        return kstrtobool(text) if self.kind == "bool" else kstrtouint(text)

    def show(self, value):
        if self.kind == "bool":
            return "Y\n" if value else "N\n"
        return f"{value}\n"


class ModuleSpec:
    """What a .ko under /lib/modules provides: dependencies, parameters, aliases, drivers."""

    def __init__(self, name, depends=(), params=(), aliases=(), drivers=(), reset=None,
                 description=""):
        self.name = name
        self.depends = tuple(depends)
        self.params = {p.name: p for p in params}
        self.aliases = tuple(aliases)
        self.drivers = tuple(drivers)        # (bus, driver name) it registers
        self.reset = reset                   # compatible whose vfio-platform reset it registers
        self.description = description


# drivers/vfio/{Makefile,vfio_iommu_type1.c,pci/vfio_pci.c,platform/*} in linux-source-6.1 (6.1.192):
# vfio.ko has no parameter without CONFIG_VFIO_NOIOMMU (Debian: not set); vfio_pci's `ids` has
# mode 0 (no sysfs file) and disable_vga exists only with CONFIG_VFIO_PCI_VGA (x86).
SPECS = [
    ModuleSpec("vfio", description="VFIO - User Level meta-driver"),
    ModuleSpec("vfio_iommu_type1", ["vfio"], [
        Param("allow_unsafe_interrupts", "bool", False, 0o644),
        Param("disable_hugepages", "bool", False, 0o644),
        Param("dma_entry_limit", "uint", 65535, 0o644)],
        description="Type1 IOMMU driver for VFIO"),
    ModuleSpec("vfio_platform_base", ["vfio"], description="VFIO platform base module"),
    ModuleSpec("vfio_platform", ["vfio", "vfio_platform_base"],
               [Param("reset_required", "bool", True, 0o444)],
               drivers=[("platform", "vfio-platform")],
               description="VFIO for platform devices - User Level meta-driver"),
    ModuleSpec("vfio_amba", ["vfio", "vfio_platform_base"], drivers=[("amba", "vfio-amba")],
               description="VFIO for AMBA devices - User Level meta-driver"),
    ModuleSpec("vfio_pci_core", ["vfio"], description="core module for VFIO PCI drivers"),
    ModuleSpec("vfio_pci", ["vfio", "vfio_pci_core"], [
        Param("ids", "string", "", 0),
        Param("nointxmask", "bool", False, 0o644),
        Param("disable_idle_d3", "bool", False, 0o644),
        Param("enable_sriov", "bool", False, 0o644),
        Param("disable_denylist", "bool", False, 0o444)],
        drivers=[("pci", "vfio-pci")], description="VFIO PCI - User Level meta-driver"),
    ModuleSpec("vfio_platform_calxedaxgmac", ["vfio_platform_base"],
               aliases=["vfio-reset:calxeda,hb-xgmac"], reset="calxeda,hb-xgmac",
               description="Reset support for Calxeda xgmac vfio platform device"),
]
# What the sim kernel has loaded once booted (the reset module is loaded on demand).
BOOT_MODULES = ["vfio", "vfio_iommu_type1", "vfio_platform_base", "vfio_platform", "vfio_amba",
                "vfio_pci_core", "vfio_pci"]


def module_name(name):
    return name.replace("-", "_")


class Modules:
    """The loaded modules of one sim kernel and the ones installed on its disk."""

    def __init__(self, board, boot_params=None, missing=()):
        self.board = board
        missing = {module_name(m) for m in missing}
        unknown = missing - {s.name for s in SPECS}
        if unknown:
            raise ValueError(f"missing_modules: no such module {sorted(unknown)}; the sim has "
                             f"{[s.name for s in SPECS]}")
        self.installed = {s.name: s for s in SPECS if s.name not in missing}
        self.loaded = {}                     # name -> {param: value}, in load order
        self.drivers = {}                    # (bus, name) -> Driver object, kept across reloads
        self._boot_params = boot_params or {}
        self._once = set()

    def once(self, key):
        """dev_err_once / pr_*_once: True the first time in this boot."""
        if key in self._once:
            return False
        self._once.add(key)
        return True

    # --- boot -------------------------------------------------------------------------------
    def boot(self, drivers):
        """Take the driver objects of the VFIO modules; load BOOT_MODULES with the board's
        options (as /etc/modprobe.d would give them)."""
        for driver in drivers:
            self.drivers[(driver.bus, driver.name)] = driver
        for name in BOOT_MODULES:
            if name in self.installed:
                self._load(self.installed[name], self._boot_params.get(name, {}), quiet=True)
        for spec in SPECS:                  # a driver whose module is not there is not either
            if spec.name not in self.loaded:
                for key in spec.drivers:
                    if key in self.drivers:
                        self._unregister_driver(self.drivers[key])
                self.board.vfs.remove(f"/sys/module/{spec.name}")

    # --- queries ----------------------------------------------------------------------------
    def is_loaded(self, name):
        return module_name(name) in self.loaded

    def param(self, module, name):
        """A loaded module's parameter value; the default when the module is not loaded."""
        module = module_name(module)
        if module in self.loaded:
            return self.loaded[module][name]
        spec = self.installed.get(module) or next(s for s in SPECS if s.name == module)
        return spec.params[name].default

    def set_param(self, module, name, value):
        self.loaded[module_name(module)][name] = value

    def driver_loaded(self, driver):
        spec = self._spec_of_driver(driver)
        return spec is None or spec.name in self.loaded

    def _spec_of_driver(self, driver):
        return next((s for s in SPECS if (driver.bus, driver.name) in s.drivers), None)

    def listing(self):
        """{name: {"params": {...}, "refcount": n, "used_by": [...]}}, as lsmod shows it; the
        parameters as /sys/module shows them ("Y", "65535"), as the host board gives them."""
        return {name: {"params": {p: self.installed[name].params[p].show(v).strip()
                                  for p, v in params.items() if self.installed[name].params[p].mode},
                       "refcount": self.refcount(name), "used_by": self.holders(name)}
                for name, params in self.loaded.items()}

    def holders(self, name):
        return [m for m in self.loaded if name in self.installed[m].depends]

    def refcount(self, name):
        """Module references: holders plus what holds it at run time."""
        board, spec = self.board, self.installed[name]
        count = len(self.holders(name))
        for bus, drv_name in spec.drivers:
            driver = self.drivers.get((bus, drv_name))
            for vdev in getattr(driver, "vdevs", {}).values():
                count += 1 if vdev.open_count else 0     # an open device fd pins its driver
        if spec.reset is not None:
            for group in board.vfio.groups.values():
                for vdev in group.devices:
                    if getattr(vdev, "reset_module", None) == name:
                        count += 1                      # vfio_platform_lookup_reset's try_module_get
        if name == "vfio_iommu_type1":
            count += sum(1 for g in board.vfio.groups.values()
                         if g.container is not None and g.container.iommu is not None)
        return count

    # --- modprobe / rmmod ------------------------------------------------------------------
    def resolve(self, name):
        """The installed module `name` names (module name with - or _, or an alias), or None."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"a module name is a non-empty str, not {name!r}")
        if module_name(name) in self.installed:
            return self.installed[module_name(name)]
        return next((s for s in self.installed.values() if name in s.aliases), None)

    def modprobe(self, name, params=None):
        spec = self.resolve(name)
        if spec is None:
            raise kernel_error(errno.ENOENT, f"modprobe: FATAL: Module {name} not found in directory "
                               f"/lib/modules/{self.board.kernel_release}")
        if spec.name in self.loaded:
            return spec.name                     # modprobe: already loaded, nothing to do
        for dep in spec.depends:
            if dep not in self.loaded:
                if dep not in self.installed:
                    raise kernel_error(errno.ENOENT, f"modprobe: FATAL: Module {dep} not found")
                self._load(self.installed[dep], {})
        self._load(spec, params or {})
        return spec.name

    def request_module(self, alias):
        """The kernel's request_module: modprobe -q; False when nothing could be loaded."""
        try:
            self.modprobe(alias)
            return True
        except OSError:
            return False

    def _load(self, spec, params, quiet=False):
        """init_module: parse parameters, make /sys/module/<name>, register drivers (quiet: at
        boot, when the driver core already has them). Loading prints nothing, as on Linux."""
        values = {p.name: p.default for p in spec.params.values()}
        for key, raw in params.items():
            param = spec.params.get(key)
            if param is None:
                self.board.log(f"{spec.name}: unknown parameter '{key}' ignored")
                continue
            try:
                values[key] = param.parse(raw)
            except (ValueError, TypeError):
                self.board.log(f"{spec.name}: `{raw}' invalid for parameter `{key}'")
                raise kernel_error(errno.EINVAL, f"modprobe: ERROR: could not insert '{spec.name}': "
                                   f"Invalid argument (`{raw}' invalid for parameter `{key}')") from None
        self.loaded[spec.name] = values
        self._sysfs_add(spec)
        for bus, drv_name in spec.drivers:
            driver = self.drivers.get((bus, drv_name))
            if driver is not None and not quiet:
                self._register_driver(driver)

    def rmmod(self, name):
        if not isinstance(name, str) or not name:
            raise TypeError(f"a module name is a non-empty str, not {name!r}")
        name = module_name(name)
        if name not in self.loaded:
            raise kernel_error(errno.ENOENT, f"rmmod: ERROR: Module {name} is not currently loaded")
        holders = self.holders(name)
        if holders:
            raise kernel_error(errno.EBUSY, f"rmmod: ERROR: Module {name} is in use by: "
                               + " ".join(holders))
        if self.refcount(name):
            raise kernel_error(errno.EBUSY, f"rmmod: ERROR: Module {name} is in use")
        spec = self.installed[name]
        for bus, drv_name in spec.drivers:
            driver = self.drivers.get((bus, drv_name))
            if driver is not None:
                self._unregister_driver(driver)
        del self.loaded[name]
        self.board.vfs.remove(f"/sys/module/{name}")
        for dep in spec.depends:
            self.board.vfs.remove(f"/sys/module/{dep}/holders/{name}")

    # --- drivers and sysfs -----------------------------------------------------------------
    def _register_driver(self, driver):
        """driver_register + driver_attach: bind every unbound device it matches."""
        core = self.board.drivers
        if driver not in core.drivers:
            core.drivers.append(driver)
            self.board.sysfs._driver(driver)
        for device in self.board.topology.on_bus(driver.bus):
            if device.driver is None and core.match(driver, device):
                core.probe(driver, device)

    def _unregister_driver(self, driver):
        """driver_unregister: unbind each device (release), then the driver's sysfs goes."""
        core = self.board.drivers
        for device in list(driver.devices):
            core.release(device)
        if driver in core.drivers:
            core.drivers.remove(driver)
        self.board.vfs.remove(driver.sysfs_path)

    def _sysfs_add(self, spec):
        vfs, base = self.board.vfs, f"/sys/module/{spec.name}"
        vfs.mkdir(f"{base}/holders")
        vfs.attr(f"{base}/initstate", show=lambda: "live\n")
        vfs.attr(f"{base}/refcnt", show=lambda: f"{self.refcount(spec.name)}\n")
        for param in spec.params.values():
            if not param.mode:
                continue
            show = (lambda p=param: p.show(self.loaded[spec.name][p.name]))
            store = None
            if param.mode & 0o200:
                def store(data, p=param):
                    try:
                        self.loaded[spec.name][p.name] = p.parse(bytes(data))
                    except (ValueError, TypeError):
                        raise kernel_error(errno.EINVAL, f"{p.name}: not a valid {p.kind}") from None
            vfs.attr(f"{base}/parameters/{param.name}", show=show, store=store)
        for dep in spec.depends:
            vfs.link(f"/sys/module/{dep}/holders/{spec.name}", base)
