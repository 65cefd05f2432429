"""Debian's chromium, driven by Playwright for Python (never Playwright's own browser download,
which this machine cannot reach).

unavailable() says exactly why the browser tests cannot run here (Playwright missing, no chromium
executable, or chromium failing to start); the tests skip with that reason. Set
VFIOLAB_REQUIRE_BROWSER=1 (CI) to make it a failure instead.
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
    return os.environ.get("VFIOLAB_REQUIRE_BROWSER", "") not in ("", "0")


def missing():
    """Why the browser cannot even be tried here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as e:
        return f"Playwright for Python is not installed ({e}): pip install -e '.[test]' (./bootstrap test does)"
    if not executable():
        return "no chromium executable (apt-get install chromium; ./bootstrap test installs it)"
    return None


def launch(playwright, profile_dir):
    """A browser context on a fresh profile in profile_dir (closing it ends the browser)."""
    return playwright.chromium.launch_persistent_context(
        profile_dir, executable_path=executable(), headless=True, args=ARGS, viewport=VIEWPORT,
        timeout=60_000)


class Unavailable(Exception):
    """chromium is missing or cannot start here (the message says which)."""
