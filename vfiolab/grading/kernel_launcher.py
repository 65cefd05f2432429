"""The kernel command when the grader's kernel factory runs (zygote.py): `python -I -S
kernel_launcher.py SOCKET CONFIG CONNECTION_FILE`.

jupyter_client starts this small process as if it were the kernel. It hands its stdin/stdout/stderr
and the sandbox config to the factory, which forks a sandboxed kernel from a process that has
ipykernel and vfiolab imported already; then it stands in for that kernel: an interrupt (SIGINT,
jupyter_client signals our process group) or SIGTERM is passed on, its exit is the kernel's exit,
and when this process is killed (SIGKILL: nbclient's shutdown, the runner's watchdog) or its
parent dies, the kernel is killed too, because the factory's keeper sees our socket close.
Standard library only, and quick to start (no site-packages: -I -S).
"""
import ctypes
import json
import os
import signal
import socket
import sys

PR_SET_PDEATHSIG = 1


def main(argv):
    socket_path, config, connection_file = argv
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # the runner took us along
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        conn.connect(socket_path)
        request = {"config": config, "connection_file": connection_file, "env": dict(os.environ)}
        socket.send_fds(conn, [json.dumps(request).encode()], [0, 1, 2])
    except OSError as e:
        print(f"vfiolab kernel launcher: the grader's kernel factory at {socket_path} does not "
              f"answer ({e})", file=sys.stderr)
        return 127

    def forward(code):
        def handler(_signum, _frame):
            try:
                conn.send(code)
            except OSError:
                pass
        return handler

    signal.signal(signal.SIGINT, forward(b"i"))
    signal.signal(signal.SIGTERM, forward(b"t"))
    while True:
        try:
            reply = conn.recv(64)
        except InterruptedError:
            continue
        except OSError:
            return 1
        if not reply:
            return 1  # the keeper went away without a word
        if reply.startswith(b"x"):
            return int(reply[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
