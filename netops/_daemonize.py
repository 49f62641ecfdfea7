"""Helper run as a fresh, single-threaded interpreter by `procs.spawn` (never imported by netops).

argv: NETNS_PATH LOG_PATH CWD -- PROGRAM ARGS...   (empty strings mean "none")

It starts a new session, forks the daemon (so the daemon is reparented and never becomes a zombie of the caller),
enters the network namespace with setns(2), points stdin at /dev/null and stdout/stderr at the log, and execs.
It prints one line of JSON on stdout: {"pid": N} once the exec succeeded, or {"error": "..."} and exits 1.
Only the standard library, because it runs with `python -I -S`.
"""
import ctypes
import json
import os
import sys

CLONE_NEWNET = 0x40000000


def _child(netns: str, log: str, cwd: str, argv: list[str], errw: int) -> None:
    try:
        if netns:
            fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns {netns}: {os.strerror(err)}")
            os.close(fd)
        null = os.open(os.devnull, os.O_RDWR)
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640) if log else null
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        if cwd:
            os.chdir(cwd)
        else:
            os.chdir("/")
        os.umask(0o022)
        os.execvpe(argv[0], argv, os.environ)
    except BaseException as exc:  # report any failure before exec to the middle process, then die
        os.write(errw, f"{type(exc).__name__}: {exc}".encode()[:4000])
        os._exit(127)


def main() -> int:
    netns, log, cwd, sep, *argv = sys.argv[1:]
    if sep != "--" or not argv:
        print(json.dumps({"error": "usage: NETNS LOG CWD -- ARGV..."}), flush=True)
        return 1
    os.setsid()
    errr, errw = os.pipe()  # O_CLOEXEC: reads EOF as soon as the exec succeeds
    pid = os.fork()
    if pid == 0:
        os.close(errr)
        _child(netns, log, cwd, argv, errw)
    os.close(errw)
    chunks = []
    while True:
        chunk = os.read(errr, 4096)
        if not chunk:
            break
        chunks.append(chunk)
    if chunks:
        os.waitpid(pid, 0)  # it is our child and already dead: reap it
        print(json.dumps({"error": b"".join(chunks).decode(errors="replace")}), flush=True)
        return 1
    print(json.dumps({"pid": pid}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
