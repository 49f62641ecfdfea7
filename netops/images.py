"""The VM image library: a directory of images that VM nodes name (`image: tiny`), never paths.

Layout: `<library>/<name>/manifest.json` plus the image's files, all inside `<library>/<name>/`. The library is
`$TOPOLAB_IMAGE_DIR`, else `<repo>/var/images`. Manifest fields: name, format (`qcow2` | `raw` | `kernel`), disk
(file name, disk formats), kernel + initrd + append (direct boot), memory (default MiB), os_hint, size (bytes),
sha256 (file name -> hex digest), added (UTC ISO time).

Listing: `index()` serves the library's public index (each image's `as_dict()`), kept in `<library>/.index/images.json`
and rebuilt only when the library's top directory changed (an image added, removed or renamed changes its mtime),
so the web tier does not read and check every manifest on every request. A manifest edited in place by hand shows
after the next change of the library (or `python -m netops image list`, which scans).

Safety: `add_image()` copies a file into the library only after `qemu-img info` of the copy shows a plain qcow2 or
raw image (no backing file, no external data file, not encrypted) and the source's real path (symlinks resolved)
lies inside the allowed source directory. Every path handed out (`Image.file()`) is re-resolved and must stay inside
the library, so a manifest or a symlink planted in the library cannot point qemu at another file.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import NetopsError, Problem, TopologyError

log = logging.getLogger(__name__)

IMAGE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}\Z")
DISK_FORMATS = ("qcow2", "raw")
FORMATS = (*DISK_FORMATS, "kernel")
MANIFEST = "manifest.json"
INDEX_DIR = ".index"  # inside the library; a dot name, so never taken for an image
INDEX_FILE = "images.json"
DEFAULT_DISK_MEMORY = 256  # MiB, for added disk images without `memory`
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Image:
    """One image of the library, as its manifest describes it (already validated)."""

    name: str
    format: str  # qcow2 | raw | kernel
    directory: Path  # <library>/<name>, resolved
    library: Path  # the library root, resolved
    disk: str | None = None  # file name inside `directory` (disk formats)
    kernel: str | None = None  # file names inside `directory` (format kernel)
    initrd: str | None = None
    append: str = ""  # kernel command line the image needs (console=ttyS0 ...)
    memory: int = DEFAULT_DISK_MEMORY
    os_hint: str | None = None
    size: int = 0
    sha256: dict[str, str] = field(default_factory=dict)
    added: str = ""

    @property
    def is_disk(self) -> bool:
        return self.format in DISK_FORMATS

    def file(self, member: str | None) -> Path:
        """Resolved path of one of the image's files; TopologyError unless it is a regular file inside the image's
        own directory (which itself lies inside the library)."""
        if member is None:
            raise TopologyError(Problem("", f"image {self.name} has no such file for its format {self.format}"))
        return checked_inside(self.directory / member, self.directory, what=f"image {self.name} file {member!r}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "format": self.format, "disk": self.disk, "kernel": self.kernel,
            "initrd": self.initrd, "append": self.append, "memory": self.memory, "os_hint": self.os_hint,
            "size": self.size, "sha256": dict(self.sha256), "added": self.added,
        }


# ---------------------------------------------------------------------------------------------- paths


def library_dir(directory: Path | str | None = None) -> Path:
    """The library root: `directory`, else $TOPOLAB_IMAGE_DIR, else <repo>/var/images."""
    if directory is None:
        directory = os.environ.get("TOPOLAB_IMAGE_DIR") or REPO_ROOT / "var" / "images"
    return Path(directory)


def is_inside(path: Path | str, root: Path | str) -> bool:
    """True when `path`, symlinks resolved, is `root` or below it (root resolved too)."""
    real = os.path.realpath(path)
    base = os.path.realpath(root)
    return os.path.commonpath([real, base]) == base


def checked_inside(path: Path | str, root: Path | str, *, what: str, element: str = "") -> Path:
    """`path` resolved; TopologyError when it leaves `root` or is not a regular file."""
    real = Path(os.path.realpath(path))
    if not is_inside(real, root):
        raise TopologyError(Problem(element, f"{what} resolves to {real}, outside {os.path.realpath(root)}"))
    if not real.is_file():
        raise TopologyError(Problem(element, f"{what} ({real}) is not a regular file"))
    return real


def check_name(name: str, *, element: str = "image") -> str:
    if not isinstance(name, str) or not IMAGE_NAME_RE.match(name) or ".." in name:
        raise TopologyError(Problem(
            element, f"image name {name!r} must match {IMAGE_NAME_RE.pattern} and must not contain '..'"))
    return name


# ---------------------------------------------------------------------------------------------- reading


def _load(directory: Path, library: Path, *, element: str) -> Image:
    name = directory.name
    if not is_inside(directory, library) or os.path.realpath(directory) == os.path.realpath(library):
        raise TopologyError(Problem(element, f"image {name}: {directory} resolves outside the library {library}"))
    manifest_path = checked_inside(directory / MANIFEST, library, what=f"manifest of image {name}", element=element)
    try:
        data = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        raise TopologyError(Problem(element, f"image {name}: unreadable manifest: {exc}")) from exc
    if not isinstance(data, dict):
        raise TopologyError(Problem(element, f"image {name}: manifest is not a JSON object"))
    problems = []
    if data.get("name") != name:
        problems.append(f"manifest name {data.get('name')!r} differs from the directory name {name!r}")
    fmt = data.get("format")
    if fmt not in FORMATS:
        problems.append(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    members = ("disk",) if fmt in DISK_FORMATS else ("kernel", "initrd")
    for key in members:
        member = data.get(key)
        if not isinstance(member, str) or not member or "/" in member or member in (".", ".."):
            problems.append(f"{key} must be a file name inside the image directory, got {member!r}")
    memory = data.get("memory", DEFAULT_DISK_MEMORY)
    if not isinstance(memory, int) or isinstance(memory, bool) or not 16 <= memory <= 1 << 20:
        problems.append(f"memory {memory!r} must be an integer number of MiB (16..1048576)")
    if problems:
        raise TopologyError([Problem(element, f"image {name}: {p}") for p in problems])
    image = Image(
        name=name, format=str(fmt), directory=Path(os.path.realpath(directory)), library=Path(os.path.realpath(library)),
        disk=data.get("disk") if fmt in DISK_FORMATS else None,
        kernel=data.get("kernel") if fmt == "kernel" else None,
        initrd=data.get("initrd") if fmt == "kernel" else None,
        append=str(data.get("append") or ""), memory=memory, os_hint=data.get("os_hint"),
        size=int(data.get("size") or 0), sha256=dict(data.get("sha256") or {}), added=str(data.get("added") or ""),
    )
    for key in members:
        image.file(getattr(image, key))  # raises when missing or escaping the library
    return image


def get_image(name: str, *, element: str = "", directory: Path | str | None = None) -> Image:
    """The image called `name`; TopologyError at `element` (e.g. `nodes.vm1.image`) when absent or broken."""
    check_name(name, element=element or "image")
    library = library_dir(directory)
    candidate = library / name
    if not (candidate / MANIFEST).exists():
        known = ", ".join(i.name for i in list_images(library)) or "none"
        raise TopologyError(Problem(element, f"no image {name!r} in the image library {library} (have: {known})"))
    return _load(candidate, library, element=element)


def list_images(directory: Path | str | None = None) -> list[Image]:
    """Every valid image of the library, by name. Broken entries are logged and left out."""
    library = library_dir(directory)
    if not library.is_dir():
        return []
    images = []
    for entry in sorted(library.iterdir()):
        if entry.name.startswith(".") or not (entry / MANIFEST).exists():
            continue
        try:
            images.append(_load(entry, library, element=f"image.{entry.name}"))
        except TopologyError as exc:
            log.warning("skipping broken image %s: %s", entry, exc)
    return images


_INDEXES: dict[str, tuple[int, list[dict[str, Any]]]] = {}  # library -> (its mtime_ns, index), per process


def index(directory: Path | str | None = None) -> list[dict[str, Any]]:
    """The library's images as `Image.as_dict()`, by name, from its index (rebuilt by a scan when the library's
    top directory changed since the index was written). Never raises for a broken entry (logged, left out)."""
    library = library_dir(directory)
    try:
        stamp = library.stat().st_mtime_ns
    except FileNotFoundError:
        return []
    cached = _INDEXES.get(str(library))
    if cached is not None and cached[0] == stamp:
        return cached[1]
    path = library / INDEX_DIR / INDEX_FILE
    try:
        stored = json.loads(path.read_text())
        entries = stored["images"] if stored.get("library_mtime_ns") == stamp else None
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        entries = None
    if entries is None:
        entries = [image.as_dict() for image in list_images(library)]
        stamp = _write_index(library, entries) or stamp
    _INDEXES[str(library)] = (stamp, entries)
    return entries


def _write_index(library: Path, entries: list[dict[str, Any]]) -> int | None:
    """Store the index (atomically, in its own directory so writing it leaves the library's mtime alone); the
    library mtime it is valid for, or None when this process may not write there (the web tier)."""
    try:
        (library / INDEX_DIR).mkdir(exist_ok=True)  # first time only: changes the library's mtime, read after
        stamp = library.stat().st_mtime_ns
        tmp = library / INDEX_DIR / f".{INDEX_FILE}.{os.getpid()}"
        tmp.write_text(json.dumps({"library_mtime_ns": stamp, "images": entries}, sort_keys=True))
        os.replace(tmp, library / INDEX_DIR / INDEX_FILE)
        return stamp
    except OSError as exc:
        log.info("image index of %s not written: %s", library, exc)
        return None


# ---------------------------------------------------------------------------------------------- checking disks


def qemu_img_info(path: Path | str, *, element: str = "image.file") -> dict[str, Any]:
    """`qemu-img info --output=json` of one file (format probed, no backing chain followed)."""
    argv = ["qemu-img", "info", "--output=json", "--force-share", "--", str(path)]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TopologyError(Problem(element, f"cannot inspect {path}: {exc}")) from exc
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip()
        raise TopologyError(Problem(element, f"{path} is not a disk image qemu-img can read: {err}"))
    try:
        info = json.loads(done.stdout)
    except ValueError as exc:
        raise TopologyError(Problem(element, f"qemu-img info of {path}: unreadable output: {exc}")) from exc
    if not isinstance(info, dict):
        raise TopologyError(Problem(element, f"qemu-img info of {path}: unexpected output"))
    return info


def check_disk(path: Path | str, *, element: str = "image.file") -> str:
    """The format of a standalone qcow2/raw disk; TopologyError naming what makes it unsafe otherwise."""
    info = qemu_img_info(path, element=element)
    fmt = info.get("format")
    problems = []
    if fmt not in DISK_FORMATS:
        problems.append(f"format {fmt!r} is not accepted (only {' or '.join(DISK_FORMATS)})")
    for key in ("backing-filename", "full-backing-filename", "backing-filename-format"):
        if key in info:
            problems.append(f"it has a backing file ({info.get(key)!r}); only standalone images are accepted")
            break
    specific = (info.get("format-specific") or {}).get("data") or {}
    if "data-file" in specific or specific.get("data-file-raw"):
        problems.append(f"it has an external data file ({specific.get('data-file')!r})")
    if info.get("encrypted"):
        problems.append("it is encrypted")
    if specific.get("corrupt"):
        problems.append("it is marked corrupt")
    if problems:
        raise TopologyError([Problem(element, f"{path}: {p}") for p in problems])
    return str(fmt)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------- adding/removing


def add_image(
    name: str,
    source_path: Path | str,
    *,
    os_hint: str | None = None,
    memory: int | None = None,
    directory: Path | str | None = None,
    allowed_source: Path | str | None = None,
) -> Image:
    """Copy a qcow2/raw disk into the library as image `name` and return it.

    `allowed_source` is the directory the file must really live in (symlinks resolved); by default the directory
    that `source_path` names, so a symlink there pointing elsewhere (/etc/shadow) is refused. The copy, not the
    source, is inspected with qemu-img, so the source changing after the check cannot smuggle anything in.
    """
    check_name(name, element="image.name")
    source = Path(os.path.abspath(source_path))
    allowed = Path(os.path.realpath(allowed_source if allowed_source is not None else source.parent))
    real = Path(os.path.realpath(source))
    if not is_inside(real, allowed):
        raise TopologyError(Problem(
            "image.file", f"{source_path} resolves to {real}, outside the allowed source directory {allowed}"))
    if not real.is_file():
        raise TopologyError(Problem("image.file", f"{source_path} is not a regular file"))
    check_disk(real, element="image.file")  # clear messages about the source; the copy is checked again below
    if memory is not None and (not isinstance(memory, int) or not 16 <= memory <= 1 << 20):
        raise TopologyError(Problem("image.memory", f"memory {memory!r} must be 16..1048576 MiB"))
    library = library_dir(directory)
    library.mkdir(parents=True, exist_ok=True)
    target = library / name
    if target.exists() or target.is_symlink():
        raise TopologyError(Problem("image.name", f"an image called {name!r} already exists in {library}"))

    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=library))
    try:
        copy = staging / "disk.img"
        done = subprocess.run(["cp", "--sparse=always", "--", str(real), str(copy)],
                              capture_output=True, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise TopologyError(Problem("image.file", f"cannot copy {real}: {done.stderr.decode().strip()}"))
        fmt = check_disk(copy, element="image.file")
        disk = f"disk.{fmt}"
        copy.rename(staging / disk)
        manifest = {
            "name": name, "format": fmt, "disk": disk,
            "memory": memory or DEFAULT_DISK_MEMORY, "os_hint": os_hint,
            "size": (staging / disk).stat().st_size, "sha256": {disk: _sha256(staging / disk)},
            "added": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        staging.chmod(0o755)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return get_image(name, directory=library, element="image.name")


def remove_image(name: str, *, directory: Path | str | None = None) -> None:
    """Delete image `name` from the library. Refused while a Topolab qemu process uses it."""
    from . import procs  # local: procs scans /proc, not needed for reading the library

    image = get_image(name, directory=directory, element="image.name")
    for proc in procs.find():
        if proc.role.startswith("qemu:") and any(str(image.directory) in arg for arg in proc.argv):
            raise TopologyError(Problem(
                "image.name", f"image {name} is in use by lab {proc.lab} ({proc.role}, pid {proc.pid})"))
    if not is_inside(image.directory, image.library) or image.directory == image.library:
        raise TopologyError(Problem("image.name", f"image {name} is not inside the library"))
    shutil.rmtree(image.directory)


# ---------------------------------------------------------------------------------------------- CLI


def add_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`python -m netops image list|add NAME FILE|remove NAME`; each command's `func(args) -> int`."""
    parser = subparsers.add_parser("image", help="the VM image library")
    parser.add_argument("--dir", default=None, help="library directory (default $TOPOLAB_IMAGE_DIR or var/images)")
    sub = parser.add_subparsers(dest="image_command", required=True)
    p_list = sub.add_parser("list", help="list images")
    p_list.add_argument("--json", action="store_true")
    p_list.set_defaults(func=_cli_list)
    p_add = sub.add_parser("add", help="copy a qcow2/raw disk into the library")
    p_add.add_argument("name")
    p_add.add_argument("file")
    p_add.add_argument("--memory", type=int, default=None, help="default memory in MiB")
    p_add.add_argument("--os-hint", default=None)
    p_add.set_defaults(func=_cli_add)
    p_rm = sub.add_parser("remove", help="delete an image")
    p_rm.add_argument("name")
    p_rm.set_defaults(func=_cli_remove)


def _cli_list(args: argparse.Namespace) -> int:
    images = list_images(args.dir)
    if args.json:
        print(json.dumps([i.as_dict() for i in images], indent=2))
        return 0
    for image in images:
        print(f"{image.name:<24} {image.format:<7} {image.memory:>6} MiB {image.size / 1e6:>9.1f} MB "
              f"{image.os_hint or ''}")
    return 0


def _cli_add(args: argparse.Namespace) -> int:
    try:
        image = add_image(args.name, args.file, os_hint=args.os_hint, memory=args.memory, directory=args.dir)
    except NetopsError as exc:
        print(f"error: {exc}")
        return 1
    print(f"added {image.name} ({image.format}, {image.size} bytes) in {image.directory}")
    return 0


def _cli_remove(args: argparse.Namespace) -> int:
    try:
        remove_image(args.name, directory=args.dir)
    except NetopsError as exc:
        print(f"error: {exc}")
        return 1
    print(f"removed {args.name}")
    return 0
