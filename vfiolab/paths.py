"""Where things live: the checkout's labs/ and the download cache."""
import os


def project_root():
    """The checkout holding labs/ (vfiolab is installed editable from it), or None."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return here if os.path.isdir(os.path.join(here, "labs")) else None


def cache_dir(*parts):
    """$VFIOLAB_CACHE, or ~/.cache/vfiolab: board images and packages fetched on first use."""
    base = os.environ.get("VFIOLAB_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "vfiolab")
    return os.path.join(base, *parts)
