"""A one-line progress bar on a terminal; one line per step elsewhere (CI logs, pipes). Both show
the count, the time so far and an estimate of the time left (from the pace so far)."""
import sys
import time


def clock(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    def __init__(self, total, stream=None, width=30):
        self.total, self.done, self.width = total, 0, width
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.monotonic()

    def step(self, label):
        self.done += 1
        elapsed = time.monotonic() - self.start
        eta = elapsed / self.done * (self.total - self.done)
        times = f"{clock(elapsed)} so far, ~{clock(eta)} left"
        if self.tty:
            filled = int(self.width * self.done / max(self.total, 1))
            self.stream.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] "
                              f"{self.done}/{self.total} {times}  {label[:50]:<50}")
            if self.done == self.total:
                self.stream.write("\n")
        else:
            self.stream.write(f"[{self.done}/{self.total}] {times}  {label}\n")
        self.stream.flush()
