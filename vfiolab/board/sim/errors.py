"""OSError with a Linux errno, the only way the sim board fails a system call."""
import os


def kernel_error(errno_value, detail=None, path=None):
    """OSError(errno, strerror (detail), path): the errno is the kernel's, the detail is ours."""
    message = os.strerror(errno_value)
    if detail:
        message = f"{message} ({detail})"
    if path is not None:
        return OSError(errno_value, message, path)
    return OSError(errno_value, message)
