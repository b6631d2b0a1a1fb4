"""``mksim inspect``: kernel image headers (and grub.cfg files, via boot.grubcfg)."""
from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mksim.cli import main

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data" / "boot"
VMLINUZ = DATA / "vmlinuz-6.1.0-50-cloud-amd64.head"
XEN_GZ = DATA / "xen-4.17-amd64.head.gz"
INVADERS = DATA / "invaders.exec.head"


def run(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc: int, err: str, fragment: str) -> None:
    assert rc == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mksim: error: "), err
    assert fragment in lines[0], err


def _has_grubcfg() -> bool:
    try:
        importlib.import_module("boot.grubcfg")
    except ModuleNotFoundError as e:
        if e.name == "boot.grubcfg":
            return False
        raise
    return True


def test_json_vmlinuz(capsys):
    rc, out, err = run(capsys, "inspect", VMLINUZ, "--json")
    assert rc == 0, err
    r = json.loads(out)
    assert set(r) == {"linux_setup_header", "compression", "format"}
    h = r["linux_setup_header"]
    assert h["version"] == 0x20F and h["header"] == 0x53726448
    assert h["kernel_version_string"].startswith("6.1.0-50-cloud-amd64")
    assert r["compression"] is None


def test_json_xen_gz(capsys):
    rc, out, err = run(capsys, "inspect", XEN_GZ, "--json")
    assert rc == 0, err
    r = json.loads(out)
    assert set(r) == {"multiboot1", "multiboot2", "elf", "compression", "format"}
    assert r["compression"] == "gzip"
    assert set(r["multiboot2"]) == {"offset", "architecture", "header_length", "checksum", "tags"}
    assert [t["type"] for t in r["multiboot2"]["tags"]] == [1, 6, 10, 4, 5, 7, 9, 0]
    assert set(r["elf"]) >= {"class", "machine", "entry", "segments"}


def test_text(capsys):
    rc, out, err = run(capsys, "inspect", INVADERS)
    assert rc == 0, err
    assert out.startswith(f"{INVADERS}: Multiboot1 (a.out kludge")
    assert "load_addr" in out and "0x100000" in out and "elf: ELF32" in out


@pytest.mark.parametrize("make,fragment", [
    (lambda p: p.write_bytes(VMLINUZ.read_bytes()[:0x210]), "truncated: Linux setup header"),
    (lambda p: p.write_bytes(bytes(4096)), "no known kernel image header"),
    (lambda p: p.write_bytes(b"\x1f\x8b" + bytes(30)), "gzip data corrupt"),
    (lambda p: None, "cannot read"),
    (lambda p: p.mkdir(), "is a directory"),
])
def test_bad_file_exit_2(capsys, tmp_path, make, fragment):
    p = tmp_path / "img"
    make(p)
    rc, out, err = run(capsys, "inspect", p, "--json")
    assert_one_line_error(rc, err, fragment)
    assert out == ""


def test_bad_checksum_exit_2(capsys, tmp_path):
    b = bytearray(INVADERS.read_bytes())
    b[0x84 + 8] ^= 0xFF
    p = tmp_path / "invaders.exec"
    p.write_bytes(bytes(b))
    rc, _, err = run(capsys, "inspect", p)
    assert_one_line_error(rc, err, "multiboot1 header at 0x84: checksum")


def test_grub_cfg_goes_to_grubcfg(capsys, tmp_path, monkeypatch):
    """*.cfg files, and text files that are no image, are handed to boot.grubcfg.inspect."""
    import types
    fake = types.ModuleType("boot.grubcfg")
    seen = []

    def inspect(path: str) -> dict:
        seen.append(path)
        return {"entries": [{"title": "Debian", "linux": "/vmlinuz"}], "default": 0}
    fake.inspect = inspect
    monkeypatch.setitem(sys.modules, "boot.grubcfg", fake)
    cfg = tmp_path / "grub.cfg"
    cfg.write_text("menuentry 'Debian' {\n  linux /vmlinuz\n}\n")
    txt = tmp_path / "menu.txt"
    txt.write_text("menuentry 'Debian' {\n  linux /vmlinuz\n}\n")
    rc, out, err = run(capsys, "inspect", cfg, "--json")
    assert rc == 0, err
    assert json.loads(out) == {"entries": [{"title": "Debian", "linux": "/vmlinuz"}], "default": 0}
    rc, out, err = run(capsys, "inspect", txt)
    assert rc == 0, err
    assert "Debian" in out
    assert seen == [str(cfg), str(txt)]
    rc, out, err = run(capsys, "inspect", VMLINUZ, "--json")     # images never go there
    assert rc == 0 and seen == [str(cfg), str(txt)]


def test_grub_cfg_without_grubcfg_module(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "boot.grubcfg", None)    # import fails like a missing module
    cfg = tmp_path / "grub.cfg"
    cfg.write_text("set default=0\n")
    rc, _, err = run(capsys, "inspect", cfg)
    # None in sys.modules raises ModuleNotFoundError(name="boot.grubcfg"): reported as missing support
    assert_one_line_error(rc, err, "grub.cfg support (boot.grubcfg) is not available")


@pytest.mark.skipif(not _has_grubcfg(), reason="boot.grubcfg not written yet")
def test_grub_cfg_error_is_one_line(capsys, tmp_path):
    cfg = tmp_path / "grub.cfg"
    cfg.write_bytes(b"menuentry 'x' {\n\x00\xff\n")
    rc, _, err = run(capsys, "inspect", cfg)
    assert rc in (0, 2), err
    assert "Traceback" not in err


def test_subprocess_help_and_json():
    r = subprocess.run([sys.executable, "-m", "mksim", "inspect", str(XEN_GZ), "--json"],
                       capture_output=True, text=True, cwd=REPO, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["multiboot2"]["offset"] == 0x98
    r = subprocess.run([sys.executable, "-m", "mksim", "inspect", "--help"],
                       capture_output=True, text=True, cwd=REPO, timeout=60, check=False)
    assert r.returncode == 0 and "--json" in r.stdout
