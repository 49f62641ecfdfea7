"""Link delay in userspace, for kernels without sch_netem (such as the CI kernel, see FACTS.md).

A link with `delay`/`jitter` is not joined in the kernel: its two sides end on two interfaces of the lab's fabric
namespace, and this small relay copies every frame from one to the other after `delay ± jitter` milliseconds.
Frames are read and written with AF_PACKET sockets in PACKET_VNET_HDR mode, so segmentation offload (GSO) and
partial checksums pass through untouched, exactly as qemu does with a tap: TCP and UDP keep working without
turning offloads off anywhere. Order is kept per direction (a link does not reorder); a queue limit drops frames
beyond `--limit`, as netem's own limit does.

Stdlib only, run by path with `python -I` (procs.spawn, tagged with the lab), so nothing but this file is trusted.
"""
from __future__ import annotations

import argparse
import heapq
import os
import random
import re
import select
import signal
import socket
import sys
import time

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_VNET_HDR = 15
PACKET_IGNORE_OUTGOING = 23
PACKET_OUTGOING = 4
IFNAME_RE = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,14}\Z")
MAX_FRAME = 65536 + 64


def open_port(ifname: str) -> socket.socket:
    """A raw socket on `ifname` only (protocol 0 until bound, so no frame of another interface slips in)."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
    try:
        sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    except OSError:
        pass  # kernels before 4.20: outgoing frames are filtered by pkttype below instead
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind((ifname, ETH_P_ALL))
    sock.setblocking(False)
    return sock


class Relay:
    """Two ports, a heap of frames due for sending, and the per-direction order guarantee."""

    def __init__(self, a: str, b: str, delay_ms: float, jitter_ms: float, limit: int, seed: int | None = None):
        self.ports = {a: open_port(a), b: open_port(b)}
        self.peer = {a: b, b: a}
        self.delay = delay_ms / 1000.0
        self.jitter = jitter_ms / 1000.0
        self.limit = limit
        self.random = random.Random(seed)
        self.queue: list[tuple[float, int, str, bytes]] = []
        self.last_due = {a: 0.0, b: 0.0}
        self.seq = 0
        self.dropped = 0

    def receive(self, name: str, now: float) -> None:
        sock = self.ports[name]
        out = self.peer[name]
        for _ in range(256):  # drain a burst, then let the sender side run
            try:
                frame, addr = sock.recvfrom(MAX_FRAME)
            except BlockingIOError:
                return
            except OSError:
                return  # interface going away: the lab is being destroyed
            if addr[2] == PACKET_OUTGOING:
                continue
            if len(self.queue) >= self.limit:
                self.dropped += 1
                continue
            due = now + self.delay
            if self.jitter:
                due += self.random.uniform(-self.jitter, self.jitter)
            due = max(due, self.last_due[out], now)
            self.last_due[out] = due
            self.seq += 1
            heapq.heappush(self.queue, (due, self.seq, out, frame))

    def send_due(self, now: float) -> None:
        while self.queue and self.queue[0][0] <= now:
            _, _, out, frame = heapq.heappop(self.queue)
            try:
                self.ports[out].send(frame)
            except OSError:
                self.dropped += 1  # ENOBUFS, or the interface is down: a real link drops too

    def run(self, stop: list[bool]) -> None:
        names = {sock.fileno(): name for name, sock in self.ports.items()}
        poller = select.poll()
        for fd in names:
            poller.register(fd, select.POLLIN)
        while not stop:
            now = time.monotonic()
            timeout_ms = 1000 if not self.queue else max(0, int((self.queue[0][0] - now) * 1000))
            for fd, _ in poller.poll(timeout_ms):
                self.receive(names[fd], time.monotonic())
            self.send_due(time.monotonic())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", required=True, help="first interface")
    parser.add_argument("--b", required=True, help="second interface")
    parser.add_argument("--delay-ms", type=float, required=True)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--limit", type=int, default=1000, help="frames queued at most (both directions)")
    args = parser.parse_args(argv)
    for name in (args.a, args.b):
        if not IFNAME_RE.match(name):
            parser.error(f"{name!r} is not an interface name")
    if not 0 <= args.delay_ms <= 60_000 or not 0 <= args.jitter_ms <= 60_000 or args.limit < 1:
        parser.error("delay and jitter must be in [0, 60000] ms and limit positive")
    stop: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    relay = Relay(args.a, args.b, args.delay_ms, args.jitter_ms, args.limit)
    print(f"delayd {args.a} <-> {args.b}: {args.delay_ms:g} ms ± {args.jitter_ms:g} ms", flush=True)
    relay.run(stop)
    print(f"delayd stopped, {relay.dropped} frames dropped", flush=True)
    return 0


if __name__ == "__main__":
    os.umask(0o077)
    sys.exit(main())
