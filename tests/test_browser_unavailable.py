"""When the browser tests cannot run they say exactly why (and skip, or fail under
VFIOLAB_REQUIRE_BROWSER=1): no chromium, a path that is not one, a chromium that does not start."""

import pytest

from browser import chromium
from browser.session import browser_session
from vfiolab import workspace


def test_no_chromium_on_path_is_named(monkeypatch, tmp_path):
    monkeypatch.delenv("VFIOLAB_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert chromium.missing() == ("no chromium executable (apt-get install chromium; "
                                  "./bootstrap test installs it)")


def test_a_chromium_path_that_is_no_executable_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("VFIOLAB_CHROMIUM", str(tmp_path / "chromium"))
    assert chromium.missing() == f"VFIOLAB_CHROMIUM={tmp_path / 'chromium'} is not an executable file"


@pytest.mark.timeout(120)
def test_a_chromium_that_does_not_start_is_named(monkeypatch, tmp_path):
    pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\necho 'chromium: cannot open display' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("VFIOLAB_CHROMIUM", str(fake))
    assert chromium.missing() is None
    work = workspace.prepare(tmp_path / "work", labs=[])
    with pytest.raises(chromium.Unavailable, match=f"chromium \\({fake}\\) did not start: "):
        with browser_session(work, str(tmp_path)):
            pass


@pytest.mark.parametrize("value, required", [("", False), ("0", False), ("1", True)])
def test_require_browser_switch(monkeypatch, value, required):
    monkeypatch.setenv("VFIOLAB_REQUIRE_BROWSER", value)
    assert chromium.required() is required
