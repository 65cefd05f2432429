"""Debian's chromium, driven by Playwright for Python (never Playwright's own browser download,
which this machine cannot reach).

missing() says exactly why the browser tests cannot run here (Playwright missing, no chromium
executable), launch() raises Unavailable when chromium fails to start; the tests skip with that
reason. VFIOLAB_REQUIRE_BROWSER=1 (./bootstrap test sets it) makes it a failure instead.
"""
import os
import shutil

# As root chromium needs --no-sandbox. The rest keep it off the network this machine does not
# have (otherwise it retries connections for ever) and away from the GPU a server lacks.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage"]
VIEWPORT = {"width": 1400, "height": 1000}


def executable():
    """The system chromium: $VFIOLAB_CHROMIUM, or chromium / chromium-browser on PATH."""
    return os.environ.get("VFIOLAB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def required():
    """Whether a browser that cannot run is a failure rather than a skip (./bootstrap test sets
    it: it has just installed chromium and Playwright)."""
    return os.environ.get("VFIOLAB_REQUIRE_BROWSER", "") not in ("", "0")


def missing():
    """Why the browser cannot even be tried here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as e:
        return f"Playwright for Python is not installed ({e}): pip install -e '.[test]' (./bootstrap test does)"
    path = executable()
    if not path:
        return "no chromium executable (apt-get install chromium; ./bootstrap test installs it)"
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        return f"VFIOLAB_CHROMIUM={path} is not an executable file"
    return None


def launch(playwright, profile_dir):
    """A browser context on a fresh profile in profile_dir (closing it ends the browser)."""
    return playwright.chromium.launch_persistent_context(
        profile_dir, executable_path=executable(), headless=True, args=ARGS, viewport=VIEWPORT,
        timeout=60_000)


class Unavailable(Exception):
    """chromium is missing or cannot start here (the message says which)."""
