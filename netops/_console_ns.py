"""Helper run between `nsenter --net` and `setpriv` for a console shell (never imported by netops).

argv: HOSTNAME -- PROGRAM ARGS...

Still root and already in the node's network namespace, it gives what follows a UTS namespace of its own named
after the node (so `hostname` and the prompt say where you are) and a mount namespace of its own where /sys is
remounted for the node's network namespace, as `ip netns exec` does (so /sys/class/net lists the node's interfaces,
not the host's). Mounts are made slaves of the host's first, so nothing propagates back. Then it execs PROGRAM.
Only the standard library: it runs with `python -I -S`, by path.
"""
import ctypes
import os
import re
import socket
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
MS_REC = 0x4000
MS_SLAVE = 1 << 19
MNT_DETACH = 2
HOSTNAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")  # a node name (netops.naming.NODE_NAME_RE)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--" or not HOSTNAME_RE.fullmatch(argv[1]):
        print("usage: _console_ns.py NODE -- PROGRAM ARGS...", file=sys.stderr)
        return 2
    libc = ctypes.CDLL(None, use_errno=True)
    _check(libc.unshare(CLONE_NEWNS | CLONE_NEWUTS), "unshare")
    _check(libc.mount(b"none", b"/", None, MS_REC | MS_SLAVE, None), "make / a slave")
    if libc.umount2(b"/sys", MNT_DETACH) != 0 and ctypes.get_errno() != 22:  # EINVAL: /sys was not mounted
        _check(-1, "umount /sys")
    _check(libc.mount(b"sysfs", b"/sys", b"sysfs", 0, None), "mount sysfs")
    socket.sethostname(argv[1])
    os.execvp(argv[3], argv[3:])
    return 127  # not reached


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except OSError as exc:
        print(f"console: {exc}", file=sys.stderr)
        sys.exit(1)
