"""Where things live: the labs/ folder (a checkout, or $VFIOLAB_ROOT) and the download cache."""
import os


ROOT_VAR = "VFIOLAB_ROOT"


def project_root():
    """The folder holding labs/: $VFIOLAB_ROOT when set (vfiolab installed from a wheel, as in the
    workshop image, whose labs/ are the released ones), else the checkout vfiolab is installed
    editable from; None when neither holds labs/."""
    here = os.environ.get(ROOT_VAR) or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return here if os.path.isdir(os.path.join(here, "labs")) else None


def cache_dir(*parts):
    """$VFIOLAB_CACHE, or ~/.cache/vfiolab: board images and packages fetched on first use."""
    base = os.environ.get("VFIOLAB_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "vfiolab")
    return os.path.join(base, *parts)
