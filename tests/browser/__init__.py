"""Helpers of the browser tests (tests/test_browser*.py): JupyterLab, chromium, a notebook page."""
