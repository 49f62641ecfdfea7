"""Helper run as a fresh, single-threaded interpreter by `netops.kernel.userns.Maker` (never imported by netops).

argv: MODE SOCKFD [USERNSFD]   where MODE is `new` (make a user namespace: unshare(CLONE_NEWUSER), then wait for the
agent to write its uid/gid maps) or `join` (enter the user namespace behind the inherited USERNSFD with setns).

A process may only enter or make a user namespace while it is single-threaded, which the agent (a threaded Celery
worker) never is; so this small process does it and makes the lab's network namespaces from inside, where they are
owned by the lab's user namespace. The agent, still root in the initial user namespace, pins each one with a bind
mount and builds in it as before.

Protocol on SOCKFD (a SOCK_SEQPACKET socket): it sends b"ready" once in the namespace (after `new`, the agent then
writes the maps and answers b"mapped"); then for each request b"N<count>" it makes <count> network namespaces,
sending each as b"ns" with the fd of /proc/self/ns/net attached (SCM_RIGHTS). Any failure is sent as b"E<text>".
EOF on the socket ends it. Only the standard library: it runs with `python -I -S`, by path.
"""
import ctypes
import os
import socket
import sys

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000


def _check(libc: ctypes.CDLL, result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def main(mode: str, sockfd: int, userns_fd: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    sock = socket.socket(fileno=sockfd)
    try:
        if mode == "new":
            _check(libc, libc.unshare(CLONE_NEWUSER), "unshare(CLONE_NEWUSER)")
        elif mode == "join":
            _check(libc, libc.setns(userns_fd, CLONE_NEWUSER), "setns(user namespace)")
            os.close(userns_fd)
        else:
            raise ValueError(f"unknown mode {mode!r}")
        sock.send(b"ready")
        if mode == "new" and sock.recv(16) != b"mapped":
            return 1
        # nested user namespaces would let a lab's processes make namespaces with every capability there: this
        # lab's limit is zero (the agent never needs one inside a lab)
        if mode == "new":
            with open("/proc/sys/user/max_user_namespaces", "w") as f:
                f.write("0")
    except OSError as exc:
        sock.send(f"E{exc}".encode()[:4000])
        return 1
    while True:
        request = sock.recv(64)
        if not request:
            return 0
        try:
            count = int(request[1:]) if request[:1] == b"N" else 0
            for _ in range(count):
                _check(libc, libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
                fd = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
                try:
                    socket.send_fds(sock, [b"ns"], [fd])
                finally:
                    os.close(fd)
        except OSError as exc:
            sock.send(f"E{exc}".encode()[:4000])


if __name__ == "__main__":
    args = sys.argv[1:] + ["-1", "-1"]
    sys.exit(main(args[0], int(args[1]), int(args[2])))
