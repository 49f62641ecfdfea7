"""The image library: what it accepts, what it refuses (with a message naming the problem), where files end up.

Uses the real `qemu-img` to make the images; no root needed.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from netops import images
from netops.errors import TopologyError

pytestmark = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img (qemu-utils) is not installed")


def qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    return tmp_path / "library"


@pytest.fixture
def src(tmp_path: Path) -> Path:
    d = tmp_path / "uploads"
    d.mkdir()
    return d


def problems_of(exc: pytest.ExceptionInfo[TopologyError]) -> str:
    return "\n".join(str(p) for p in exc.value.problems)


def test_it_adds_a_standalone_qcow2_as_a_copy(lib: Path, src: Path) -> None:
    qemu_img("create", "-q", "-f", "qcow2", str(src / "deb.qcow2"), "64M")
    image = images.add_image("debian-12", src / "deb.qcow2", os_hint="debian", memory=512, directory=lib)
    assert image.format == "qcow2" and image.memory == 512 and image.os_hint == "debian"
    disk = image.file(image.disk)
    assert disk.parent == (lib / "debian-12").resolve()
    assert not disk.samefile(src / "deb.qcow2")
    manifest = json.loads((lib / "debian-12" / "manifest.json").read_text())
    assert manifest["sha256"][image.disk] == images._sha256(disk)
    assert [i.name for i in images.list_images(lib)] == ["debian-12"]
    assert images.get_image("debian-12", directory=lib) == image


def test_it_adds_a_raw_disk(lib: Path, src: Path) -> None:
    (src / "disk.raw").write_bytes(b"\0" * 1024 * 1024)
    image = images.add_image("rawdisk", src / "disk.raw", directory=lib)
    assert image.format == "raw" and image.disk == "disk.raw"


@pytest.mark.parametrize("name", ["../../etc/shadow", "/etc/shadow", "a,b", "Upper", "a..b", "", "-x", "a" * 65])
def test_it_rejects_bad_names(lib: Path, src: Path, name: str) -> None:
    qemu_img("create", "-q", "-f", "qcow2", str(src / "ok.qcow2"), "1M")
    with pytest.raises(TopologyError) as exc:
        images.add_image(name, src / "ok.qcow2", directory=lib)
    assert "image.name" in problems_of(exc) and "must match" in problems_of(exc)
    assert not lib.exists() or not any(lib.iterdir())


def test_it_rejects_a_symlink_pointing_out_of_the_source(lib: Path, src: Path) -> None:
    (src / "innocent.qcow2").symlink_to("/etc/shadow")
    with pytest.raises(TopologyError) as exc:
        images.add_image("sneaky", src / "innocent.qcow2", directory=lib)
    assert "resolves to /etc/shadow, outside the allowed source directory" in problems_of(exc)
    assert not (lib / "sneaky").exists()


def test_it_rejects_a_qcow2_backed_by_etc_passwd(lib: Path, src: Path) -> None:
    qemu_img("create", "-q", "-f", "qcow2", "-b", "/etc/passwd", "-F", "raw", str(src / "b.qcow2"))
    with pytest.raises(TopologyError) as exc:
        images.add_image("backed", src / "b.qcow2", directory=lib)
    assert "has a backing file ('/etc/passwd')" in problems_of(exc)
    assert not (lib / "backed").exists()


def test_it_rejects_an_external_data_file(lib: Path, src: Path) -> None:
    qemu_img("create", "-q", "-f", "qcow2", "-o", f"data_file={src / 'data.raw'}", str(src / "d.qcow2"), "1M")
    with pytest.raises(TopologyError) as exc:
        images.add_image("datafile", src / "d.qcow2", directory=lib)
    assert "external data file" in problems_of(exc)
    assert not (lib / "datafile").exists()


def test_it_rejects_a_vmdk(lib: Path, src: Path) -> None:
    qemu_img("create", "-q", "-f", "vmdk", str(src / "x.vmdk"), "1M")
    with pytest.raises(TopologyError) as exc:
        images.add_image("vmdk", src / "x.vmdk", directory=lib)
    assert "format 'vmdk' is not accepted" in problems_of(exc)
    assert not lib.exists() or not any(lib.iterdir())


def test_it_refuses_to_overwrite_an_image(lib: Path, src: Path) -> None:
    qemu_img("create", "-q", "-f", "qcow2", str(src / "a.qcow2"), "1M")
    images.add_image("one", src / "a.qcow2", directory=lib)
    with pytest.raises(TopologyError, match="already exists"):
        images.add_image("one", src / "a.qcow2", directory=lib)


def test_a_missing_image_names_the_node_element(lib: Path) -> None:
    with pytest.raises(TopologyError) as exc:
        images.get_image("nope", element="nodes.vm1.image", directory=lib)
    assert exc.value.problems[0].path == "nodes.vm1.image"
    assert "no image 'nope'" in exc.value.problems[0].message


def test_a_manifest_pointing_outside_the_image_is_refused(lib: Path) -> None:
    d = lib / "evil"
    d.mkdir(parents=True)
    (d / "disk.qcow2").symlink_to("/etc/passwd")
    (d / "manifest.json").write_text(json.dumps({"name": "evil", "format": "raw", "disk": "disk.qcow2"}))
    with pytest.raises(TopologyError) as exc:
        images.get_image("evil", element="nodes.vm1.image", directory=lib)
    assert "resolves to /etc/passwd, outside" in problems_of(exc)
    (d / "manifest.json").write_text(json.dumps({"name": "evil", "format": "raw", "disk": "../../x"}))
    with pytest.raises(TopologyError, match="must be a file name inside the image directory"):
        images.get_image("evil", directory=lib)
    assert images.list_images(lib) == []  # broken entries are left out of the listing


def test_a_library_entry_that_is_a_symlink_out_of_the_library_is_refused(lib: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "vmlinuz").write_bytes(b"k")
    (outside / "initrd.gz").write_bytes(b"i")
    (outside / "manifest.json").write_text(json.dumps(
        {"name": "out", "format": "kernel", "kernel": "vmlinuz", "initrd": "initrd.gz"}))
    lib.mkdir()
    (lib / "out").symlink_to(outside)
    with pytest.raises(TopologyError, match="resolves outside the library"):
        images.get_image("out", directory=lib)


def test_remove_deletes_the_image(lib: Path, src: Path) -> None:
    qemu_img("create", "-q", "-f", "qcow2", str(src / "a.qcow2"), "1M")
    images.add_image("gone", src / "a.qcow2", directory=lib)
    images.remove_image("gone", directory=lib)
    assert not (lib / "gone").exists()
    with pytest.raises(TopologyError):
        images.remove_image("../gone", directory=lib)


def test_the_cli_adds_lists_and_removes(lib: Path, src: Path) -> None:
    qemu_img("create", "-q", "-f", "qcow2", str(src / "a.qcow2"), "1M")
    env = dict(os.environ, TOPOLAB_IMAGE_DIR=str(lib))
    code = ("import argparse, sys; from netops import images; p = argparse.ArgumentParser(); "
            "images.add_cli(p.add_subparsers(dest='cmd')); a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))")
    repo = Path(images.__file__).resolve().parent.parent

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["python3", "-c", code, *args], env=env, cwd=repo, capture_output=True, text=True)

    assert cli("image", "add", "cli-img", str(src / "a.qcow2")).returncode == 0
    listed = cli("image", "list", "--json")
    assert [i["name"] for i in json.loads(listed.stdout)] == ["cli-img"]
    bad = cli("image", "add", "x,y", str(src / "a.qcow2"))
    assert bad.returncode == 1 and "must match" in bad.stdout
    assert cli("image", "remove", "cli-img").returncode == 0
    assert not (lib / "cli-img").exists()
