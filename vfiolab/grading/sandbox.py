"""Start a learner's kernel where it cannot reach the instructor's files: `python -m
vfiolab.grading.sandbox CONFIG -- KERNEL ARGV...` is the grader's kernel command.

What it does, in order, where Linux allows it (Linux namespaces through libc; no extra package):
  - a new mount namespace in which the folders where people keep files (/tmp, /root, /home, /srv,
    /opt, every top-level folder that is not the system's, and vfiolab's own source checkout) are
    empty tmpfs, except for what the kernel needs (Python, vfiolab's package,
    its scratch folder), bound back in; then the instructor's folders given in the config (labs
    with hidden checks, the class's submissions, the gradebook) are covered too, if still visible;
  - a new PID namespace with its own /proc, so the kernel sees no other process and whatever the
    notebook starts dies with it;
  - as root: the kernel runs as the unprivileged user `nobody` (it cannot undo the mounts, write
    vfiolab's installed code or read root-only files); otherwise an unprivileged user namespace
    provides the mounts and the kernel keeps the caller's uid;
  - resource limits (processes, file size, core dumps) and a parent-death signal.
The isolation that applied is written to the file named by the config's "report" before the kernel
starts. If no namespace can be had (some containers), the kernel runs as is, and the report says
"none" and why (the grader then warns in the gradebook). Once a namespace exists, any failure stops
the kernel instead of running it half isolated.
Limits: no network isolation (the kernel talks to the grader over localhost TCP); system folders
(/usr, /etc, ...) stay readable; a copy of hidden checks left world-readable in a system folder
would be readable; this is no defence against Linux kernel exploits.
"""
import ctypes
import json
import os
import signal
import sys

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID = 0x00020000, 0x10000000, 0x20000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
PR_SET_PDEATHSIG = 1
NOBODY = 65534
_libc = ctypes.CDLL(None, use_errno=True)


def _check(result, what):
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source, target, fstype, flags, data=None):
    _check(_libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None,
                       flags, data.encode() if data else None), f"mount {target}")


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def enter_namespaces():
    """Unshare mount and PID namespaces; returns how ("root" or "userns"), or raises OSError."""
    if os.geteuid() == 0:
        _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWPID), "unshare")
        how = "root"
    else:
        uid, gid = os.geteuid(), os.getegid()
        _check(_libc.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID), "unshare (user namespace)")
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{uid} {uid} 1")
        _write("/proc/self/gid_map", f"{gid} {gid} 1")
        how = "userns"
    _mount("none", "/", None, MS_REC | MS_PRIVATE)
    return how


# Folders where people and programs keep their files: the kernel sees them empty, except for the
# paths it needs (Python, vfiolab, its scratch folder), which are bound back in.
PRIVATE_ROOTS = ["/tmp", "/var/tmp", "/dev/shm", "/root", "/home", "/srv", "/mnt", "/media", "/opt"]
# Top-level folders of the system itself; every other top-level folder (/work, /builds, a CI
# runner's checkout folder, ...) is private too, since we cannot know what people keep there.
SYSTEM_ROOTS = {"bin", "boot", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "run",
                "sbin", "sys", "usr", "var",
                "nix", "gnu", "snap"}      # NixOS's and Guix's stores, snaps: shared libraries live there


def _checkout():
    """The source checkout vfiolab runs from, or None when it is installed (site-packages)."""
    import vfiolab
    checkout = os.path.dirname(os.path.dirname(os.path.realpath(vfiolab.__file__)))
    return checkout if os.path.exists(os.path.join(checkout, "pyproject.toml")) else None


def private_roots():
    """PRIVATE_ROOTS, every non-system top-level folder, and the source checkout vfiolab runs from
    (where labs/*/hidden_checks.py live, wherever it was cloned: seen in CI, whose clone was
    outside every folder listed above)."""
    tops = [os.path.join("/", name) for name in sorted(os.listdir("/")) if name not in SYSTEM_ROOTS]
    checkout = _checkout()
    return (PRIVATE_ROOTS + [t for t in tops if os.path.isdir(t) and not os.path.islink(t)]
            + ([checkout] if checkout else []))


def python_paths():
    """sys.path's folders the kernel needs bound back in: not the current folder, and not the
    checkout or a folder above it (PYTHONPATH=checkout, or a path .pth of an older editable
    install, would otherwise bring every lab's hidden_checks.py back; vfiolab's own package
    folder is bound in on its own)."""
    checkout = _checkout()
    return [p for p in sys.path if os.path.isabs(p) and p != os.getcwd()
            and not (checkout and _under(checkout, os.path.realpath(p)))]


def _blocked_ancestor(path):
    """The first folder above path that others may not traverse, or None."""
    parts = path.strip(os.sep).split(os.sep)
    for i in range(1, len(parts)):
        folder = os.sep + os.path.join(*parts[:i])
        if not os.stat(folder).st_mode & 0o001:
            return folder
    return None


def _under(path, folder):
    return path == folder or path.startswith(os.path.join(folder, ""))


def expose_only(needed, roots=None):
    """Cover each private root (and any folder `nobody` may not traverse above a needed path) with
    an empty tmpfs, then bind the needed paths back into it; returns the covered folders."""
    roots = private_roots() if roots is None else roots
    needed = sorted({os.path.realpath(p) for p in needed if os.path.exists(p)}, key=len)
    needed = [p for i, p in enumerate(needed) if not any(_under(p, q) for q in needed[:i])]
    covers = [os.path.realpath(r) for r in roots if os.path.isdir(r)]
    covers = [c for c in covers if c != "/" and not any(_under(c, p) for p in needed)]
    for path in needed:
        blocked = _blocked_ancestor(path)
        if blocked and not any(_under(blocked, c) for c in covers):
            covers.append(blocked)
    covers = sorted(set(covers), key=len)
    covers = [c for i, c in enumerate(covers) if not any(_under(c, q) for q in covers[:i])]
    # O_PATH descriptors keep each needed path reachable after its folder is covered.
    handles = {p: os.open(p, os.O_PATH) for p in needed if any(_under(p, c) for c in covers)}
    try:
        for cover in covers:
            mode = "1777" if cover in ("/tmp", "/var/tmp", "/dev/shm") else "0755"
            _mount("tmpfs", cover, "tmpfs", 0, f"size=1m,mode={mode}")
            for path, fd in handles.items():
                if _under(path, cover):
                    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
                    if not os.path.exists(path):
                        _mount_point(path, os.path.isdir(f"/proc/self/fd/{fd}"))
                    _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
    finally:
        for fd in handles.values():
            os.close(fd)
    return covers


def _mount_point(path, folder):
    if folder:
        os.mkdir(path)
    else:
        open(path, "w").close()


def hide(paths, keep):
    """Cover each path (folder: empty tmpfs; file: /dev/null), unless it holds a path in `keep`."""
    keep = [os.path.join(os.path.realpath(k), "") for k in keep]
    hidden = []
    for path in paths:
        path = os.path.realpath(path)
        if not os.path.exists(path):
            continue
        if os.path.isdir(path):
            if any(k.startswith(os.path.join(path, "")) for k in keep):
                continue  # covering it would hide Python or the scratch folder itself
            _mount("tmpfs", path, "tmpfs", MS_RDONLY, "size=4k,mode=0555")
        else:
            _mount("/dev/null", path, None, MS_BIND)
        hidden.append(path)
    return hidden


def _limit_resources():
    import resource
    for limit, value in ((resource.RLIMIT_CORE, 0), (resource.RLIMIT_NPROC, 512),
                         (resource.RLIMIT_FSIZE, 1 << 30)):
        try:
            resource.setrlimit(limit, (value, value))
        except (ValueError, OSError):
            pass


def _become_nobody(scratch):
    for folder, dirs, files in os.walk(scratch):
        for name in [folder] + [os.path.join(folder, f) for f in dirs + files]:
            os.lchown(name, NOBODY, NOBODY)
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def copy_connection_file(path, scratch):
    """ipykernel reads its connection file after we drop privileges: give it a copy it may read."""
    copy = os.path.join(scratch, ".kernel.json")
    with open(path) as src, open(copy, "w") as dst:
        dst.write(src.read())
    return copy


def isolate(config):
    """Enter the namespaces and cover what the kernel must not see; returns the report, written
    to config["report"] (opened first: its folder is hidden below)."""
    scratch = config["scratch"]
    report_file = open(config["report"], "w")
    report = {"isolation": "none", "hidden": [], "user": os.geteuid(), "why": ""}
    try:
        how = enter_namespaces()
    except OSError as e:  # no namespaces here (a container without them): run unisolated, say so
        report["why"] = str(e)
    else:  # from here on a failure stops the kernel: never run half-isolated
        import vfiolab
        needed = [scratch, sys.prefix, sys.base_prefix, os.path.realpath(sys.executable),
                  os.path.dirname(vfiolab.__file__), *python_paths(),
                  *config.get("keep", [])]
        report["private"] = expose_only(needed)
        report["hidden"] = hide(config["hide"], keep=needed)
        report["isolation"] = how
    report["user"] = NOBODY if report["isolation"] == "root" else os.geteuid()
    with report_file:
        report_file.write(json.dumps(report))
    return report


GRADED_KERNEL = "VFIOLAB_GRADED_KERNEL"  # set in every kernel the grader runs (learner.py reads it)


def kernel_env(scratch, environ=None):
    env = dict(os.environ if environ is None else environ, HOME=scratch,
               **{GRADED_KERNEL: "1"},
               IPYTHONDIR=os.path.join(scratch, ".ipython"),
               JUPYTER_RUNTIME_DIR=os.path.join(scratch, ".runtime"), TMPDIR=scratch,
               MPLCONFIGDIR=os.path.join(scratch, ".mpl"))
    env.pop("JUPYTER_PATH", None)
    return env


def become_kernel(report, scratch):
    """In the kernel's process (pid 1 of the new PID namespace, when there is one), before the
    kernel's code runs: limits, its own /proc, the user nobody, the scratch folder."""
    _limit_resources()
    if report["isolation"] != "none":  # this process is pid 1: show only its own tree
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    if report["isolation"] == "root":
        _become_nobody(scratch)
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    os.chdir(scratch)


def main(argv):
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # a killed runner takes us along
    config_path, kernel_argv = argv[0], argv[argv.index("--") + 1:]
    with open(config_path) as f:
        config = json.load(f)
    scratch = config["scratch"]
    if "-f" in kernel_argv:
        i = kernel_argv.index("-f") + 1
        kernel_argv[i] = copy_connection_file(kernel_argv[i], scratch)
    report = isolate(config)
    env = kernel_env(scratch)
    child = os.fork()
    if child == 0:  # pid 1 of the new PID namespace, when there is one
        try:
            become_kernel(report, scratch)
            os.execve(kernel_argv[0], kernel_argv, env)
        except BaseException as e:
            print(f"vfiolab sandbox: cannot start the kernel: {type(e).__name__}: {e}", file=sys.stderr)
        finally:
            os._exit(127)
    # Stay as the kernel's parent and mirror its exit. Interrupts (nbclient's timeouts) reach the
    # kernel directly: jupyter_client signals the whole process group, which it shares with us.
    signal.signal(signal.SIGINT, lambda s, _f: None)
    for sig in (signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP):
        signal.signal(sig, lambda s, _f: os.kill(child, s))
    os._exit(wait_exit_code(child))


def wait_exit_code(child):
    """Wait for child to end; its exit status as an exit code (1 if a signal ended it)."""
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except ChildProcessError:
            return 0
        except InterruptedError:
            continue
    return os.waitstatus_to_exitcode(status) & 0xff if os.WIFEXITED(status) else 1


if __name__ == "__main__":
    main(sys.argv[1:])
