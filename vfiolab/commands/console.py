"""vfiolab console: a shell on the qemu board guest's serial console (busybox), for the curious."""
import glob
import os
import select
import socket
import sys
import termios
import tty

HELP = "open a shell on the running qemu board's guest console (Ctrl-] leaves; --boot starts a board)"
ESCAPE = b"\x1d"  # Ctrl-]


def add_arguments(parser):
    parser.add_argument("--boot", action="store_true",
                        help="boot a qemu board just for this console (closed when you leave)")
    parser.add_argument("--gic", choices=("its", "v2m"), default="its", help="with --boot: the GIC")
    parser.add_argument("--log", action="store_true",
                        help="print the console's log so far instead of attaching")


def running_boards():
    """[(run directory, QEMU pid)] of the qemu boards running on this machine (newest first)."""
    from ..board.qemu.machine import runtime_base
    boards = []
    for rundir in glob.glob(os.path.join(runtime_base(), "vfiolab-qemu-*")):
        try:
            pid = int(open(os.path.join(rundir, "qemu.pid")).read())
            os.kill(pid, 0)
        except (OSError, ValueError):
            continue
        boards.append((os.path.getmtime(rundir), rundir, pid))
    return [(rundir, pid) for _, rundir, pid in sorted(boards, reverse=True)]


def drain(sock, quiet_seconds=2.0):
    """Copy the console's output until it has been quiet for quiet_seconds."""
    while select.select([sock], [], [], quiet_seconds)[0]:
        data = sock.recv(4096)
        if not data:
            return
        os.write(sys.stdout.fileno(), data)


def attach(console_socket):
    """Relay this terminal to the console socket until Ctrl-] or the guest goes away."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(console_socket)
    except OSError as e:
        print(f"vfiolab console: cannot connect to {console_socket}: {e.strerror} "
              "(another console may be attached: QEMU takes one at a time)", file=sys.stderr)
        return 1
    print("connected to the guest console; Ctrl-] leaves (the board keeps running)", file=sys.stderr)
    sock.sendall(b"\n")  # a fresh prompt
    stdin = sys.stdin.fileno()
    saved = termios.tcgetattr(stdin) if os.isatty(stdin) else None
    try:
        if saved:
            tty.setraw(stdin)
        while True:
            readable, _, _ = select.select([sock, stdin], [], [])
            if sock in readable:
                data = sock.recv(4096)
                if not data:
                    break
                os.write(sys.stdout.fileno(), data)
            if stdin in readable:
                data = os.read(stdin, 1024)
                if not data and not saved:
                    drain(sock)  # piped input ended: show what the guest still answers
                    break
                if not data or ESCAPE in data:
                    break
                sock.sendall(data.replace(b"\n", b"\r") if not saved else data)
    finally:
        if saved:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        sock.close()
    print("\r\nleft the guest console", file=sys.stderr)
    return 0


def run(args):
    if args.boot:
        import vfiolab
        with vfiolab.open_board("qemu", gic=args.gic) as board:
            return attach(board.console_socket)
    boards = running_boards()
    if not boards:
        print("vfiolab console: no qemu board is running. Open one in a notebook "
              "(vfiolab.open_board('qemu')), or run `vfiolab console --boot`.", file=sys.stderr)
        return 1
    rundir, pid = boards[0]
    if len(boards) > 1:
        print(f"vfiolab console: {len(boards)} boards run; taking the newest (QEMU pid {pid})",
              file=sys.stderr)
    if args.log:
        sys.stdout.write(open(os.path.join(rundir, "console.log"), errors="replace").read())
        return 0
    return attach(os.path.join(rundir, "console.sock"))
