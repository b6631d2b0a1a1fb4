"""boot.grubcfg: grub.cfg as grub-mkconfig writes it, and mksim's multi-kernel extension."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from boot.grubcfg import MAX_CALL_DEPTH, KernelPlan, MenuEntry, inspect, parse, plan
from hwmodel.errors import MksimError

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "grub"
EXAMPLES = ROOT / "examples"
UUID = "5c1ae3a6-2b4e-4c1b-9d0e-36b3c8f0e2a1"
SEARCH = ["search", "--no-floppy", "--fs-uuid", "--set=root", "--hint-bios=hd0,gpt2",
          "--hint-efi=hd0,gpt2", "--hint-baremetal=ahci0,gpt2", UUID]
CLASSES = ["debian", "gnu-linux", "gnu", "os"]


def _entries(name: str, **kw) -> list[MenuEntry]:
    p = DATA / name
    return parse(p.read_text(), str(p), **kw)


def _linux_entry_commands(version: str, args: list[str]) -> list[list[str]]:
    return [
        ["insmod", "all_video"],            # load_video, feature_all_video_module=y
        ["insmod", "gzio"],
        ["insmod", "xzio"],                 # grub_platform unknown: the xen branch is kept
        ["insmod", "lzopio"],
        ["insmod", "part_gpt"],
        ["insmod", "ext2"],
        ["set", "root=hd0,gpt2"],
        SEARCH,                             # feature_platform_search_hint=y
        ["echo", f"Loading Linux {version} ..."],
        ["linux", f"/boot/vmlinuz-{version}", f"root=UUID={UUID}", "ro", *args],
        ["echo", "Loading initial ramdisk ..."],
        ["initrd", f"/boot/initrd.img-{version}"],
    ]


# ------------------------------------------------------------------ grub-mkconfig output

def test_debian_menu_titles_ids_classes():
    es = _entries("debian12-bios.cfg")
    assert [(e.title, e.id, e.submenu) for e in es] == [
        ("Debian GNU/Linux", f"gnulinux-simple-{UUID}", []),
        ("Debian GNU/Linux, with Linux 6.1.0-18-amd64",
         f"gnulinux-6.1.0-18-amd64-advanced-{UUID}", ["Advanced options for Debian GNU/Linux"]),
        ("Debian GNU/Linux, with Linux 6.1.0-18-amd64 (recovery mode)",
         f"gnulinux-6.1.0-18-amd64-recovery-{UUID}", ["Advanced options for Debian GNU/Linux"]),
        ("Debian GNU/Linux, with Linux 6.1.0-17-amd64",
         f"gnulinux-6.1.0-17-amd64-advanced-{UUID}", ["Advanced options for Debian GNU/Linux"]),
        ("Debian GNU/Linux, with Xen hypervisor", f"xen-gnulinux-simple-{UUID}", []),
        ("Windows Boot Manager (on /dev/sda1)", "osprober-efi-A1B2-C3D4", []),
        ("UEFI Firmware Settings", "uefi-firmware", []),   # grub_platform unknown: kept
    ]
    assert es[0].classes == CLASSES
    assert es[4].classes == CLASSES + ["xen"]
    assert es[5].classes == ["windows", "os"]
    assert es[6].classes == []


def test_debian_linux_entries_commands():
    es = _entries("debian12-bios.cfg")
    assert es[0].commands == _linux_entry_commands("6.1.0-18-amd64", ["quiet"])
    assert es[1].commands == _linux_entry_commands("6.1.0-18-amd64", ["quiet"])
    assert es[2].commands == _linux_entry_commands("6.1.0-18-amd64", ["single"])
    assert es[3].commands == _linux_entry_commands("6.1.0-17-amd64", ["quiet"])
    assert es[0].line == 120
    assert es[0].command_where[-1].endswith("debian12-bios.cfg:135")


def test_debian_xen_and_chainloader_entries():
    es = _entries("debian12-bios.cfg")
    xen = es[4].commands
    assert ["multiboot2", "/boot/xen-4.17-amd64.gz", "placeholder", "${xen_rm_opts}"] in xen
    assert ["module2", "/boot/vmlinuz-6.1.0-18-amd64", "placeholder", f"root=UUID={UUID}",
            "ro", "quiet"] in xen
    assert xen[-1] == ["module2", "--nounzip", "/boot/initrd.img-6.1.0-18-amd64"]
    assert es[5].commands[-1] == ["chainloader", "/EFI/Microsoft/Boot/bootmgfw.efi"]
    (k,) = plan(es[4])
    assert (k.loader, k.image, k.cmdline) == ("multiboot2", "/boot/xen-4.17-amd64.gz",
                                              "placeholder ${xen_rm_opts}")
    assert k.modules == [("/boot/vmlinuz-6.1.0-18-amd64",
                          f"placeholder root=UUID={UUID} ro quiet"),
                         ("/boot/initrd.img-6.1.0-18-amd64", "")]
    with pytest.raises(MksimError, match=r"debian12-bios\.cfg:229: chainloader"):
        plan(es[5])


def test_known_platform_evaluates_conditions():
    es = _entries("debian12-bios.cfg", env={"grub_platform": "pc"})
    assert "UEFI Firmware Settings" not in [e.title for e in es]
    assert ["insmod", "xzio"] not in es[0].commands
    # "$grub_platform" = "pc": xen_rm_opts is empty, the unquoted expansion gives no word
    assert ["multiboot2", "/boot/xen-4.17-amd64.gz", "placeholder"] in es[4].commands
    efi = _entries("debian12-bios.cfg", env={"grub_platform": "efi"})
    assert efi[-1].title == "UEFI Firmware Settings"
    assert ["multiboot2", "/boot/xen-4.17-amd64.gz", "placeholder", "no-real-mode",
            "edd=off"] in efi[4].commands


def test_plain_linux_entry_plans_as_whole_machine():
    (k,) = plan(_entries("debian12-bios.cfg")[0])
    assert k == KernelPlan("k0", [], [], "grub", None, "linux", "/boot/vmlinuz-6.1.0-18-amd64",
                           f"root=UUID={UUID} ro quiet", [], ["/boot/initrd.img-6.1.0-18-amd64"],
                           None, k.where)


def test_ubuntu_quoting_functions_and_load_env():
    es = _entries("ubuntu-efi.cfg")
    assert [e.title for e in es] == [
        "Ubuntu", "Ubuntu, with Linux 6.5.0-21-generic",
        "Ubuntu, with Linux 6.5.0-21-generic (recovery mode)",
        "Fedora Linux 39 (Workstation Edition) (on /dev/nvme0n1p5)",
        "Tom's \"test\" kernel", "UEFI Firmware Settings"]
    ub = es[0].commands
    # recordfail and gfxmode are functions: their bodies replace the calls
    assert ub[:3] == [["set", "recordfail=1"], ["save_env", "recordfail"], ["insmod", "all_video"]]
    # after load_env, linux_gfx_mode (and so $1 of gfxmode, and vt_handoff) are unknown
    assert ["set", "gfxpayload=${1}"] in ub
    assert ub[-2][-1] == "${vt_handoff}"
    quoted = es[4]
    assert quoted.id == "custom-quoted" and quoted.classes == ["os"]
    assert quoted.commands == [
        ["set", "extra=console=ttyS0,115200 earlyprintk=serial"],
        ["linux", "/boot/vmlinuz-test", "root=/dev/sda2", "console=ttyS0,115200",
         "earlyprintk=serial", "single arg with spaces", "$literal", "last=1"]]


def test_handwritten_functions_loops_multiboot():
    es = _entries("handwritten.cfg")
    assert [e.title for e in es] == ["Lab kernel (quiet)", "Lab kernel (verbose)",
                                     "Lab Multiboot kernel"]       # "never shown": 3 -gt 5
    assert es[1].commands == [
        ["echo", "Booting 6.1.0-18-amd64 with 2 arguments"],
        ["linux", "/boot/vmlinuz-6.1.0-18-amd64", f"root=UUID={UUID}", "ro", "verbose"],
        ["initrd", "/boot/initrd.img-6.1.0-18-amd64"]]
    assert es[2].id == "lab-mb1"
    (k,) = plan(es[2])
    assert (k.loader, k.image, k.cmdline) == ("multiboot", "/boot/lab.elf", "console=com1")
    assert k.modules == [("/boot/lab-initrd.cpio", "initrd"), ("/boot/lab-data.bin", "")]


def test_inspect_is_json(tmp_path):
    d = inspect(str(DATA / "debian12-bios.cfg"))
    assert json.loads(json.dumps(d)) == d
    first = d["menuentries"][0]
    assert {"title", "id", "classes", "commands"} <= set(first)
    assert first["title"] == "Debian GNU/Linux"
    assert first["commands"][-1] == ["initrd", "/boot/initrd.img-6.1.0-18-amd64"]
    with pytest.raises(MksimError, match="cannot read"):
        inspect(str(tmp_path / "missing.cfg"))


def test_source_follows_files_next_to_the_config(tmp_path):
    (tmp_path / "custom.cfg").write_text("menuentry 'custom' { linux /vmlinuz-custom; }\n")
    main = tmp_path / "grub.cfg"
    main.write_text("set config_directory=/boot/grub\n"
                    "menuentry first { linux /a; }\n"
                    "if [ -f ${config_directory}/custom.cfg ]; then\n"
                    "  source ${config_directory}/custom.cfg\nfi\n")
    assert [e.title for e in inspect_entries(main)] == ["first", "custom"]
    # a text without a real file does not read the disk
    assert [e.title for e in parse(main.read_text())] == ["first"]
    (tmp_path / "loop.cfg").write_text("source loop.cfg\n")
    with pytest.raises(MksimError, match=r"loop\.cfg:1: 'source' nested"):
        parse((tmp_path / "loop.cfg").read_text(), str(tmp_path / "loop.cfg"))


def inspect_entries(path: Path) -> list[MenuEntry]:
    return parse(path.read_text(), str(path))


# ------------------------------------------------------------------ lexing and evaluation

@pytest.mark.parametrize("text, expected", [
    ("menuentry 'a b' { echo 'x  y' \"z  $v\" w\\ v; }", ["echo", "x  y", "z  1 2", "w v"]),
    ('menuentry a { echo "a\\$b \\"q\\" \\\\ \\n"; }', ["echo", 'a$b "q" \\ \\n']),
    ("menuentry a { echo $v${v}x; }", ["echo", "1", "21", "2x"]),
    ("menuentry a { echo \"$empty\" $empty ''; }", ["echo", "", ""]),
    ("menuentry a { echo one\\\ntwo th\\\n  ree; }", ["echo", "onetwo", "th", "ree"]),
    ("menuentry a { echo a#b # comment\n}", ["echo", "a#b"]),
    ("menuentry a { echo $1 $2 $#; } # c", ["echo", "a", "1"]),
])
def test_lexing(text, expected):
    (e,) = parse("set v='1 2'\n" + text)
    assert e.commands == [expected]


def test_menuentry_options_and_id_option():
    (e,) = parse("menuentry --class=c1 'T' --unrestricted --users root --class c2 "
                 "$menuentry_id_option my-id extra { echo $2; }")
    assert (e.title, e.id, e.classes, e.commands) == ("T", "my-id", ["c1", "c2"], [["echo", "extra"]])
    with pytest.raises(MksimError, match=r"<grub.cfg>:1: unknown menuentry option '--bogus'"):
        parse("menuentry T --bogus { true; }")
    with pytest.raises(MksimError, match="without a title"):
        parse("menuentry --class x { true; }")


@pytest.mark.parametrize("cond, taken", [
    ('[ "$a" = "1" ]', "then"), ('[ x$a != x1 ]', "else"), ('[ -n "$a" ]', "then"),
    ('[ -z "$a" ]', "else"), ('[ -z "$nothing" ]', "then"), ('test $a -eq 1', "then"),
    ('[ $a -lt 0 -o $a -ge 1 ]', "then"), ('[ ! $a = 1 ]', "else"),
    ('[ ( $a = 2 ) -a -n x ]', "else"), ('[ $a = 1', "else"), ('true', "then"),
    ('false', "else"), ('! false', "then"), ('[ "$root" = x ]', "both"),
    ('[ -e /boot/x ]', "both"), ('loadfont unicode', "both"),
])
def test_condition_evaluation(cond, taken):
    text = (f"set a=1\nif {cond}; then\n menuentry then {{ true; }}\n"
            "else\n menuentry else { true; }\nfi\n")
    titles = [e.title for e in parse(text)]
    assert titles == {"then": ["then"], "else": ["else"], "both": ["then", "else"]}[taken]


def test_elif_and_uncertain_merge():
    text = ("if [ -e /x ]; then set k=a; elif [ 1 = 1 ]; then set k=b; else set k=c; fi\n"
            "set same=1\nif [ -e /y ]; then set same=1; fi\n"
            "menuentry m { echo $k $same; }")
    (e,) = parse(text)
    assert e.commands == [["echo", "${k}", "1"]]


def test_deferred_body_sees_final_variables():
    (e,) = parse("set v=early\nmenuentry \"t $v\" { echo $v; }\nset v=late\n")
    assert (e.title, e.commands) == ("t early", [["echo", "late"]])


def test_recursive_function_is_an_error():
    with pytest.raises(MksimError, match=rf"<grub.cfg>:1: function calls nested deeper than "
                                         rf"{MAX_CALL_DEPTH}"):
        parse("function f { f; }\nf\n")
    with pytest.raises(MksimError, match="more than"):
        parse("function a { b; b; b; b; }\nfunction b { c; c; c; c; }\n"
              "function c { d; d; d; d; }\nfunction d { e; e; e; e; }\n"
              "function e { g; g; g; g; }\nfunction g { h; h; h; h; }\n"
              "function h { i; i; i; i; }\nfunction i { j; j; j; j; }\n"
              "function j { true; true; true; true; }\na\n")


# ------------------------------------------------------------------ syntax errors

@pytest.mark.parametrize("text, line, pattern", [
    ("set a=1\necho 'abc\n\n", 2, r"unterminated single quote: \"'abc\""),
    ('\n\nmenuentry "abc { x }\n', 3, r"unterminated double quote"),
    ("menuentry a {\n  linux /x\n", 1, r"unbalanced braces: '\{' of menuentry is never closed"),
    ("set a=1\n}\n", 2, r"unbalanced braces: '\}' without '\{'"),
    ("set a=1\nfi\n", 2, r"'fi' without if"),
    ("if true; then\n echo\n", 1, r"'if' without 'fi'"),
    ("if true; then\n menuentry a { fi }\nfi\n", 2, r"'fi' without if"),
    ("echo ${a\n", 1, r"unterminated variable reference"),
    ("echo ${a-b}\n", 1, r"bad variable name"),
    ("\necho {\n", 2, r"unexpected '\{'"),
    ("menuentry a\n{ true; }\n", 1, r"needs a '\{ ... \}' body"),
    ("for x; do; done\n", 1, r"expected 'in'"),
    ("\n\ndone\n", 3, r"'done' without a loop"),
    ("if; then true; fi", 1, r"empty condition"),
])
def test_syntax_errors_name_file_and_line(text, line, pattern):
    with pytest.raises(MksimError) as ei:
        parse(text, "bad.cfg")
    msg = str(ei.value)
    assert msg.startswith(f"bad.cfg:{line}: "), msg
    assert re.search(pattern, msg), msg


def test_deep_nesting_is_an_error():
    with pytest.raises(MksimError, match="nested deeper"):
        parse("if true; then " * 500 + "true; " + "fi; " * 500)


# ------------------------------------------------------------------ the extension

EXAMPLE_NAMES = ["twin-linux.cfg", "barrelfish.cfg", "popcorn.cfg", "linux-multikernel.cfg", "mckernel.cfg",
                 "rainforest.cfg"]


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_examples_parse_and_plan(name):
    p = EXAMPLES / name
    entries = parse(p.read_text(), str(p))
    assert entries
    readme = (EXAMPLES / "README.md").read_text()
    for e in entries:
        kernels = plan(e)
        assert len(kernels) >= 2
        assert kernels[0].flow == "grub"
        for k in kernels:
            assert k.cores and k.memory and k.image and k.personality
            for lo, hi in k.memory:
                assert lo < hi and lo % 4096 == 0 and hi % 4096 == 0
            for f in [k.image, *k.initrd, *(m for m, _ in k.modules)]:
                assert f.startswith("examples/images/") and f"`{f}`" in readme


def test_example_shapes():
    def kernels(name):
        p = EXAMPLES / name
        (e,) = parse(p.read_text(), str(p))
        return plan(e)

    twin = kernels("twin-linux.cfg")
    assert [(k.cores, k.memory, k.loader) for k in twin] == [
        ([0], [(0, 1 << 30)], "linux"), ([1], [(1 << 30, 2 << 30)], "linux")]
    assert twin[1].cmdline.endswith("memmap=1G$0")
    bf = kernels("barrelfish.cfg")
    assert [k.cores for k in bf] == [[c] for c in range(16)]
    assert all(k.loader == "multiboot2" and len(k.modules) == 1 for k in bf)
    assert {k.parent for k in bf[1:]} == {"cpu0"}
    pop = kernels("popcorn.cfg")
    assert [k.flow for k in pop] == ["grub", "kexec", "kexec", "kexec"]
    mck = kernels("mckernel.cfg")
    assert (mck[1].cores, mck[1].loader, mck[1].parent) == ([2, 3, 4, 5, 6, 7], "multiboot2", "linux")
    rf = kernels("rainforest.cfg")
    assert rf[0].memory == [(16 << 20, 256 << 20)] and rf[3].memory == [(3 << 30, 4 << 30)]
    assert [k.flow for k in rf] == ["grub"] + ["trampoline"] * 3


def _kernel_entry(body: str) -> MenuEntry:
    (e,) = parse("function mksim_kernel { true; }\nmenuentry mk {\n" + body + "}\n", "mk.cfg")
    return e


@pytest.mark.parametrize("body, line, pattern", [
    (("mksim_kernel --name a --cores 0-1 --memory 0x0-0x2000\nlinux /a\n"
     "mksim_kernel --name b --cores 2 --memory 0x1000-0x3000\nlinux /b\n"),
     5, r"overlapping memory partitions: \[0x0, 0x2000\) and \[0x1000, 0x3000\) of kernels a and b"),
    (("mksim_kernel --name a --cores 0-3 --memory 0-1M\nlinux /a\n"
     "mksim_kernel --name b --cores 3,4 --memory 1M-2M\nlinux /b\n"),
     5, r"core 3 given twice: kernels a and b"),
    ("mksim_kernel --cores 0,1,0 --memory 0-1M\nlinux /a\n", 3, r"core 0 given twice in '0,1,0'"),
    (("mksim_kernel --name a --cores 0 --memory 0-1M\n"
     "mksim_kernel --name b --cores 1 --memory 1M-2M\nlinux /b\n"), 3, r"mksim_kernel a has no image"),
    ("mksim_kernel --name a --cores 0 --memory 0-1M\n", 3, r"mksim_kernel a has no image"),
    ("mksim_kernel --cores 0 --memory 0x1000-0x800\nlinux /a\n", 3, r"reversed memory range '0x1000-0x800'"),
    ("mksim_kernel --cores 0 --memory 0x10-0x2000\nlinux /a\n", 3, r"not 4096-byte aligned"),
    ("mksim_kernel --cores 0 --memory 12Q-1G\nlinux /a\n", 3, r"bad number '12Q'"),
    ("mksim_kernel --cores 0 --memory 1G\nlinux /a\n", 3, r"bad memory range '1G'"),
    ("mksim_kernel --cores 2-x --memory 0-1M\nlinux /a\n", 3, r"bad core list '2-x'"),
    ("mksim_kernel --cores 3-1 --memory 0-1M\nlinux /a\n", 3, r"bad core range '3-1'"),
    ("mksim_kernel --memory 0-1M\nlinux /a\n", 3, r"missing --cores"),
    ("mksim_kernel --cores 0 --memory 0-1M --colour red\nlinux /a\n", 3, r"unknown argument '--colour'"),
    ("mksim_kernel --cores 0 --memory 0-1M --flow pxe\nlinux /a\n", 3, r"bad --flow 'pxe'"),
    ("mksim_kernel --cores 0 --memory 0-1M --flow kexec\nlinux /a\n", 3, r"first kernel must use"),
    (("mksim_kernel --name a --cores 0 --memory 0-1M\nlinux /a\n"
     "mksim_kernel --cores 1 --memory 1M-2M --flow kexec --by z\nlinux /b\n"), 5, r"--by 'z' names no"),
    ("linux /a\nmksim_kernel --cores 0 --memory 0-1M\n", 3, r"'linux' before any mksim_kernel"),
    ("mksim_kernel --cores 0 --memory 0-1M\nlinux /a\nlinux /b\n", 5, r"two image commands"),
    ("mksim_kernel --cores 0 --memory 0-1M\nmultiboot2 /a\ninitrd /i\n", 5, r"initrd '/i' needs a linux"),
    ("mksim_kernel --cores 0 --memory 0-1M\nmultiboot /a\nmodule2 /m\n", 5, r"module2 '/m' needs a multiboot2"),
    (("mksim_kernel --name a --cores 0 --memory 0-1M\nlinux /a\n"
     "mksim_kernel --name a --cores 1 --memory 1M-2M\nlinux /b\n"), 5, r"name 'a' used twice"),
])
def test_plan_errors_name_file_line_and_value(body, line, pattern):
    e = _kernel_entry(body)
    with pytest.raises(MksimError) as ei:
        plan(e)
    msg = str(ei.value)
    assert msg.startswith(f"mk.cfg:{line}: "), msg
    assert re.search(pattern, msg), msg


def test_plan_memory_syntax():
    e = _kernel_entry("mksim_kernel --name=x --cores=0-1,4 --memory=2G+4K,0x1000-8K,16M+1M\n"
                      "multiboot2 /k a b\nmodule2 --nounzip /m c\n")
    (k,) = plan(e)
    assert k.name == "x" and k.cores == [0, 1, 4]
    assert k.memory == [(0x1000, 0x2000), (16 << 20, 17 << 20), (2 << 30, (2 << 30) + 4096)]
    assert (k.cmdline, k.modules) == ("a b", [("/m", "c")])
    # overlap inside one kernel
    with pytest.raises(MksimError, match="of kernel y"):
        plan(_kernel_entry("mksim_kernel --name y --cores 0 --memory 0-8K,4K-12K\nlinux /a\n"))


# ------------------------------------------------------------------ fuzzing

_FIXTURES = [p.read_text() for p in sorted(DATA.glob("*.cfg"))] + \
            [(EXAMPLES / n).read_text() for n in EXAMPLE_NAMES]
_ALPHABET = st.sampled_from(list("ab$ {};\n\\'\"#=[]-x01") +
                            ["if ", "then ", "fi", "else ", "elif ", "menuentry ", "submenu ",
                             "function f ", "f", "for v in a b; do ", "done", "while ", "do ",
                             "${", "$1", "--class ", "--id ", "source ", "load_env", "search --set=a",
                             "[ ", " ]", " = ", "-n ", "mksim_kernel ", "linux "])


def _check(text: str) -> None:
    try:
        entries = parse(text, "fuzz.cfg")
    except MksimError as e:
        assert str(e).startswith("fuzz.cfg")
        return
    for e in entries:
        assert isinstance(e.title, str)
        try:
            plan(e)
        except MksimError:
            pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_ALPHABET, max_size=60).map("".join))
def test_fuzz_token_soup(text):
    _check(text)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_random_text(text):
    _check(text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_FIXTURES), st.data())
def test_fuzz_mutated_fixtures(text, data):
    n = len(text)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, n))
        j = data.draw(st.integers(i, min(n, i + 8)))
        repl = data.draw(st.sampled_from(["", "{", "}", "'", '"', "\\", "$", "fi", ";", "\n",
                                          "if ", "${", "f; ", "#"]))
        text = text[:i] + repl + text[j:]
        n = len(text)
    _check(text)


def test_growing_values_are_an_error():
    with pytest.raises(MksimError, match=r"<grub.cfg>:2[0-9]: value of 'a' longer than"):
        parse("set a=xx\n" + "a=$a$a\n" * 40)
    with pytest.raises(MksimError, match="a word longer than"):
        parse("setparams xx\n" + "setparams $1$1\n" * 40)
