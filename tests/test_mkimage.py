"""mksim's own small images are real images: the inspector reads back every field written."""
from __future__ import annotations

import os

import pytest

from boot import images, mkimage

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(os.path.dirname(HERE), "examples", "images")


def test_multiboot2_elf_reads_back():
    r = images.inspect_image(mkimage.multiboot2_elf(entry=0x101000, load=0x100000), "mb2")
    mb2 = r["multiboot2"]
    assert mb2["offset"] < 32768 and mb2["offset"] % 8 == 0 and mb2["architecture"] == 0
    tags = {t["type"]: t for t in mb2["tags"]}
    assert tags[1]["mbi_tag_types"] == [1, 3, 6] and tags[3]["entry_addr"] == 0x101000 and 0 in tags
    assert r["elf"]["entry"] == 0x101000 and r["elf"]["machine"] == 62
    seg = r["elf"]["segments"][0]
    assert seg["paddr"] == 0x100000 and seg["memsz"] >= seg["filesz"]


def test_multiboot1_elf_reads_back():
    r = images.inspect_image(mkimage.multiboot1_elf(), "mb1")
    assert r["multiboot1"]["flags"] == 3 and r["multiboot1"]["offset"] < 8192


def test_bzimage_reads_back():
    h = images.inspect_image(mkimage.bzimage(version="6.9.9-test", setup_sects=7), "bz")["linux_setup_header"]
    assert h["header"] == int.from_bytes(b"HdrS", "little") and h["version"] == 0x020F
    assert h["setup_sects"] == 7 and h["relocatable_kernel"] == 1 and h["kernel_alignment"] == 0x200000
    assert h["kernel_version_string"].startswith("6.9.9-test") and h["pref_address"] == 0x1000000


@pytest.mark.parametrize("name", sorted(mkimage.IMAGES))
def test_shipped_example_images_are_what_the_generator_writes(name):
    with open(os.path.join(EXAMPLES, name), "rb") as f:
        assert f.read() == mkimage.IMAGES[name]()
