"""grub.cfg: GRUB's shell-like script language, read statically, plus mksim's multi-kernel extension.

This module reads the grub.cfg files that ``grub-mkconfig`` (00_header, 10_linux,
20_linux_xen, 30_os-prober, 41_custom) writes, and hand-written ones, and returns
the menu entries with the commands each would run. It is written from the script
syntax GRUB documents ("Shell-like scripting" in the GRUB manual); it does not
boot anything. The boot emulator turns an entry into a kernel plan with
:func:`plan`.

API
---
``parse(text, path="<grub.cfg>", env=None) -> list[MenuEntry]``
    Every menu entry, in menu order; entries of a ``submenu`` follow in its
    place, with ``MenuEntry.submenu`` naming the enclosing submenu titles.
``inspect(path) -> dict``
    ``{"file": path, "menuentries": [{"title", "id", "classes", "commands",
    "submenu", "line"}, ...]}``, plain JSON-able values.
``plan(entry) -> list[KernelPlan]``
    The kernels an entry boots (see "multi-kernel extension" below).

Every bad input raises :class:`hwmodel.errors.MksimError` whose text starts
with ``FILE:LINE:`` and quotes the offending text.

Lexing (GRUB manual, "Shell-like scripting")
--------------------------------------------
* Words are separated by blanks, newlines and ``;``. Unquoted ``{`` and ``}``
  are tokens of their own. ``|``, ``&``, ``<`` and ``>`` are kept as ordinary
  characters (GRUB reserves them but implements no pipes or redirections).
* ``'...'`` is literal; ``"..."`` expands ``$name``/``${name}`` and honours the
  backslash escapes ``\\$ \\" \\\\`` and backslash-newline (removed); any
  other backslash in double quotes is kept. Outside quotes a backslash makes
  the next character literal, and backslash-newline joins lines.
* ``#`` at the start of a word starts a comment to the end of the line.
* Variables: ``$name``/``${name}`` with names ``[A-Za-z_][A-Za-z0-9_]*``,
  positional ``$1``.., and ``$# $* $@ $?``. An unquoted expansion is split
  into fields on blanks; an unquoted expansion that is empty gives no word.
  ``name=value`` alone on a line is an assignment, like ``set name=value``.

Evaluation (static)
-------------------
The top level runs once, in order. The variables start from
:data:`DEFAULT_ENV` (GRUB 2.06 on x86_64: every ``feature_*`` is ``y``;
``grub_platform``, ``prefix``, ``root``, ``cmdpath`` and ``config_directory``
are *unknown*), updated by ``parse(..., env=...)`` (``None`` = unknown).
Values are strings or *unknown*. An unknown variable expands to the text
``${name}`` (one word, never split).

* ``set``/``name=value``/``unset``/``export``/``setparams``/``shift`` act on
  the variables. ``search ... --set=VAR`` (``--set`` alone or ``-s``: root;
  ``search.fs_uuid UUID VAR``) makes VAR unknown. ``load_env`` with variable
  names makes those unknown; without names every variable (and every unset
  one) becomes unknown, except ``feature_*``, ``grub_*`` and
  ``menuentry_id_option``. ``$menuentry_id_option`` is ``--id`` unless the
  script sets it otherwise (Debian sets it to ``--id`` when
  ``feature_menuentry_id`` is ``y``, which it is here).
* ``if``/``elif``/``else``/``fi``: each condition is a command list; its last
  command decides. ``[ ... ]``/``test`` are evaluated when all their words
  are known: ``-n``/``-z``, a lone string, ``= == != < <= > >=`` on strings,
  ``-eq -ne -lt -le -gt -ge -pgt -plt`` on integers, ``!``, ``-a``, ``-o``,
  ``( )``; ``true``/``false`` are known too. File tests (``-e -f -d -s``),
  other commands, function calls and anything with an unknown word are
  *unknown*. **Rule:** a true clause runs alone and ends the ``if``; a false
  clause is skipped; an unknown clause runs *and* the next clauses are still
  considered, so the entries and commands of every branch that may run are
  kept, in source order. After an uncertain ``if`` a variable keeps its value
  only if every branch that may run agrees on it, else it becomes unknown. A
  malformed test is false (GRUB reports an error and the test fails).
* ``for V in WORDS; do ...; done`` runs per known word (once with V unknown
  if the words are unknown). ``while``/``until`` run their body at most once
  (skipped when the condition is known to stop the loop).
  ``break``/``continue``/``return`` are ignored.
* ``function NAME { ... }`` defines; a later command ``NAME args`` runs the
  body with ``$1``.. set to the arguments (the call is replaced by the body's
  commands). Calls nested deeper than :data:`MAX_CALL_DEPTH`, scripts that
  take more than :data:`MAX_STEPS` steps and values longer than
  :data:`MAX_VALUE` raise MksimError.
* ``menuentry TITLE [--class C] [--id ID] [--users U] [--unrestricted]
  [--hotkey K] [ARG...] { ... }`` (options also as ``--opt=value``) defines an
  entry; ``submenu`` likewise defines a nested menu. As in GRUB, the title and
  options are expanded where the entry is defined, but the body runs when the
  entry is chosen, i.e. after the whole file ran: bodies see the final
  variables and functions, with ``$1`` = title, ``$2``.. = extra ARGs.
* An entry's ``commands`` are the simple commands its body runs, after quote
  removal and expansion, function calls replaced by the function's commands.
  Conditions of ``if``/``while`` are not recorded (they decide, they do not
  load). A ``menuentry`` inside a menuentry body is ignored.
* ``source FILE`` / ``. FILE`` runs FILE in place when ``parse`` was given the
  path of a real file and FILE, with any ``(device)`` prefix and leading ``/``
  removed, names a file relative to that file's folder, or else FILE's last
  component names a file in that folder (``source $prefix/custom.cfg`` finds
  custom.cfg beside grub.cfg, as on the boot disk); otherwise it is only
  recorded. ``configfile`` is only recorded.

Multi-kernel extension (Twin-Linux style)
-----------------------------------------
Inside a menu entry, ``mksim_kernel`` starts a kernel; the image lines that
follow belong to it, up to the next ``mksim_kernel``::

    mksim_kernel --name NAME --cores LIST --memory RANGES
                 [--flow grub|kexec|trampoline] [--by PARENT]
                 [--personality NAME]

* ``--cores``: comma-separated core numbers or inclusive ranges, ``0-3,8``.
* ``--memory``: comma-separated half-open physical ranges ``LO-HI`` or
  ``LO+SIZE``; numbers are decimal or ``0x`` hex with an optional ``K``,
  ``M``, ``G`` or ``T`` suffix (powers of 1024); both ends 4 KiB aligned.
* ``--flow``: ``grub`` (the boot loader loads and starts it; the default for
  the first kernel), ``kexec`` (an earlier kernel of the entry loads it with
  kexec) or ``trampoline`` (an earlier kernel starts it through the two-stage
  trampoline). ``--by`` names that earlier kernel; the default is the first
  kernel of the entry.
* Image lines: ``linux``/``linuxefi``/``linux16`` IMAGE CMDLINE...,
  ``initrd``/``initrdefi``/``initrd16`` FILE..., ``multiboot`` IMAGE CMDLINE +
  ``module [--nounzip] FILE CMDLINE``, ``multiboot2`` IMAGE CMDLINE +
  ``module2 [--nounzip] FILE CMDLINE``.

Real GRUB tolerates the extension when the file defines
``function mksim_kernel { true; }`` (the examples do): each ``mksim_kernel``
is then a no-op, and GRUB boots the last image the entry loaded. mksim never
expands a function called ``mksim_kernel``. An entry without ``mksim_kernel``
plans as one kernel ``k0`` with ``cores == []`` and ``memory == []``, meaning
the whole machine.
"""
from __future__ import annotations

import itertools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from hwmodel.errors import MksimError

__all__ = [
    "DEFAULT_ENV",
    "MAX_CALL_DEPTH",
    "MAX_NESTING",
    "MAX_STEPS",
    "MAX_VALUE",
    "PAGE_SIZE",
    "KernelPlan",
    "MenuEntry",
    "inspect",
    "parse",
    "plan",
]

MAX_CALL_DEPTH = 32     # nested function calls
MAX_SOURCE_DEPTH = 8    # nested `source`
MAX_NESTING = 64        # nested if/for/while/{...} in the source text
MAX_STEPS = 200_000     # statements executed in one parse (guards exponential call trees)
MAX_VALUE = 1 << 20     # characters in one variable's value (guards `a=$a$a` doubling)
PAGE_SIZE = 4096


class _Unknown:
    """A value the static reader cannot know (set by `search`, `load_env`, the firmware...)."""

    _inst = None

    def __new__(cls):
        if cls._inst is None:
            cls._inst = super().__new__(cls)
        return cls._inst

    def __repr__(self):
        return "UNKNOWN"


UNKNOWN = _Unknown()

DEFAULT_ENV: dict[str, object] = {
    "grub_cpu": "x86_64",
    "grub_platform": UNKNOWN,
    "feature_200_final": "y",
    "feature_all_video_module": "y",
    "feature_chainloader_bpb": "y",
    "feature_default_font_path": "y",
    "feature_menuentry_id": "y",
    "feature_menuentry_options": "y",
    "feature_nativedisk_cmd": "y",
    "feature_ntldr": "y",
    "feature_platform_search_hint": "y",
    "feature_timeout_style": "y",
    "menuentry_id_option": "--id",
    "prefix": UNKNOWN,
    "root": UNKNOWN,
    "cmdpath": UNKNOWN,
    "config_directory": UNKNOWN,
    "config_file": UNKNOWN,
}

EXTENSION_COMMANDS = frozenset({"mksim_kernel"})
_RESERVED_CLOSERS = {"then": "if", "elif": "if", "else": "if", "fi": "if", "do": "a loop", "done": "a loop"}
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_VARNAME_RE = re.compile(r"(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+|[?#*@])\Z")
_ASSIGN_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=")
_BLANKS = " \t\r\f\v"


def _err(message: str, where: str) -> MksimError:
    return MksimError(message, where=where)


def _snippet(text: str, i: int, limit: int = 60) -> str:
    end = text.find("\n", i)
    s = text[i:] if end < 0 else text[i:end]
    return s if len(s) <= limit else s[:limit] + "..."


# --------------------------------------------------------------------------- lexer

@dataclass(frozen=True)
class _Word:
    segs: tuple          # ("raw"|"lit", text) | ("var"|"qvar", name)
    line: int
    text: str            # source text, for messages

    def plain(self) -> str | None:
        """The word if it is one unquoted literal (keywords must be written so)."""
        if len(self.segs) == 1 and self.segs[0][0] == "raw":
            return self.segs[0][1]
        return None


@dataclass(frozen=True)
class _Tok:
    kind: str            # "word" | "sep" | "{" | "}" | "eof"
    line: int
    word: _Word | None = None


def _lex(text: str, path: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n, line = 0, len(text), 1
    while i < n:
        c = text[i]
        if c in _BLANKS:
            i += 1
        elif c == "\\" and i + 1 < n and text[i + 1] == "\n":
            i += 2
            line += 1
        elif c == "\n":
            toks.append(_Tok("sep", line))
            line += 1
            i += 1
        elif c == ";":
            toks.append(_Tok("sep", line))
            i += 1
        elif c == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif c in "{}":
            toks.append(_Tok(c, line))
            i += 1
        else:
            word, i, line = _lex_word(text, i, line, path)
            toks.append(_Tok("word", word.line, word))
    toks.append(_Tok("eof", line))
    return toks


def _lex_var(text: str, i: int, line: int, path: str) -> tuple[str | None, int]:
    """At text[i] == '$': (name, index after) or (None, i + 1) for a literal '$'."""
    n = len(text)
    if i + 1 < n and text[i + 1] == "{":
        j = text.find("}", i + 2)
        nl = text.find("\n", i + 2)
        if j < 0 or (0 <= nl < j):
            raise _err(f"unterminated variable reference: {_snippet(text, i)!r}", f"{path}:{line}")
        name = text[i + 2:j]
        if not _VARNAME_RE.match(name):
            raise _err(f"bad variable name in {text[i:j + 1]!r}", f"{path}:{line}")
        return name, j + 1
    if i + 1 < n:
        c = text[i + 1]
        if c.isascii() and (c.isalpha() or c == "_"):
            m = _NAME_RE.match(text, i + 1)
            return m.group(0), m.end()
        if c.isascii() and c.isdigit():
            j = i + 1
            while j < n and text[j].isascii() and text[j].isdigit():
                j += 1
            return text[i + 1:j], j
        if c in "?#*@":
            return c, i + 2
    return None, i + 1


def _lex_word(text: str, i: int, line: int, path: str) -> tuple[_Word, int, int]:
    n = len(text)
    start, start_line = i, line
    segs: list[tuple[str, str]] = []

    def add(kind: str, s: str) -> None:
        if segs and segs[-1][0] == kind and kind in ("raw", "lit"):
            segs[-1] = (kind, segs[-1][1] + s)
        else:
            segs.append((kind, s))

    while i < n:
        c = text[i]
        if c in _BLANKS or c in "\n;{}":
            break
        if c == "\\":
            if i + 1 >= n:
                add("raw", "\\")
                i += 1
            elif text[i + 1] == "\n":
                i += 2
                line += 1
            else:
                add("lit", text[i + 1])
                i += 2
        elif c == "'":
            j = text.find("'", i + 1)
            if j < 0:
                raise _err(f"unterminated single quote: {_snippet(text, i)!r}", f"{path}:{line}")
            add("lit", text[i + 1:j])
            line += text.count("\n", i, j)
            i = j + 1
        elif c == '"':
            q_line = line
            q_start = i
            i += 1
            buf: list[str] = []
            while True:
                if i >= n:
                    raise _err(f"unterminated double quote: {_snippet(text, q_start)!r}",
                               f"{path}:{q_line}")
                d = text[i]
                if d == '"':
                    i += 1
                    break
                if d == "\\" and i + 1 < n and text[i + 1] in '$"\\\n':
                    if text[i + 1] == "\n":
                        line += 1
                    else:
                        buf.append(text[i + 1])
                    i += 2
                elif d == "$":
                    name, j = _lex_var(text, i, line, path)
                    if name is None:
                        buf.append("$")
                    else:
                        if buf:
                            add("lit", "".join(buf))
                            buf = []
                        segs.append(("qvar", name))
                    i = j
                else:
                    if d == "\n":
                        line += 1
                    buf.append(d)
                    i += 1
            # an empty "" still makes a (possibly empty) word
            add("lit", "".join(buf))
        elif c == "$":
            name, j = _lex_var(text, i, line, path)
            if name is None:
                add("raw", "$")
            else:
                segs.append(("var", name))
            i = j
        else:
            add("raw", c)
            i += 1
    return _Word(tuple(segs), start_line, text[start:i]), i, line


# --------------------------------------------------------------------------- parser

@dataclass
class _Simple:
    words: list
    where: str
    line: int


@dataclass
class _Assign:
    name: str
    value: _Word
    where: str


@dataclass
class _If:
    clauses: list        # [(cond nodes, body nodes)]
    else_body: list | None
    where: str


@dataclass
class _For:
    var: str
    words: list
    body: list
    where: str


@dataclass
class _While:
    cond: list
    body: list
    until: bool
    where: str


@dataclass
class _Func:
    name: str
    body: list
    where: str


@dataclass
class _Menu:
    kind: str            # "menuentry" | "submenu"
    args: list
    body: list
    where: str
    line: int


class _Parser:
    def __init__(self, toks: list[_Tok], path: str):
        self.toks = toks
        self.pos = 0
        self.path = path
        self.depth = 0

    def where(self, line: int) -> str:
        return f"{self.path}:{line}"

    def peek(self) -> _Tok:
        return self.toks[self.pos]

    def take(self) -> _Tok:
        t = self.toks[self.pos]
        if t.kind != "eof":
            self.pos += 1
        return t

    def skip_seps(self) -> None:
        while self.toks[self.pos].kind == "sep":
            self.pos += 1

    def enter(self, line: int) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise _err(f"blocks nested deeper than {MAX_NESTING}", self.where(line))

    def parse_script(self) -> list:
        nodes, _ = self.parse_list(frozenset(), None)
        return nodes

    def parse_list(self, terms: frozenset, opener: tuple[str, int] | None,
                   in_braces: bool = False) -> tuple[list, str | None]:
        """Commands up to one of `terms` (consumed, returned), or up to '}' when
        in_braces (not consumed), or to the end of input at top level."""
        nodes: list = []
        while True:
            self.skip_seps()
            t = self.peek()
            if t.kind == "eof":
                if opener is not None:
                    what, line = opener
                    if in_braces:
                        raise _err(f"unbalanced braces: '{{' of {what} is never closed",
                                   self.where(line))
                    closer = {"if": "fi", "for": "done", "while": "done", "until": "done"}.get(what, "?")
                    raise _err(f"'{what}' without '{closer}'", self.where(line))
                return nodes, None
            if t.kind == "}":
                if in_braces:
                    return nodes, None
                if opener is not None:
                    raise _err(f"unexpected '}}' inside '{opener[0]}' opened at line {opener[1]}",
                               self.where(t.line))
                raise _err("unbalanced braces: '}' without '{'", self.where(t.line))
            if t.kind == "{":
                raise _err("unexpected '{' (a block must follow menuentry, submenu or function)",
                           self.where(t.line))
            kw = t.word.plain()
            if kw is not None and kw in terms:
                self.take()
                return nodes, kw
            if kw is not None and kw in _RESERVED_CLOSERS:
                raise _err(f"'{kw}' without {_RESERVED_CLOSERS[kw]}", self.where(t.line))
            nodes.append(self.parse_command())

    def parse_command(self):
        t = self.peek()
        kw = t.word.plain()
        if kw == "if":
            return self.parse_if()
        if kw == "for":
            return self.parse_for()
        if kw in ("while", "until"):
            return self.parse_while(kw)
        if kw == "function":
            return self.parse_function()
        if kw in ("menuentry", "submenu"):
            return self.parse_menu(kw)
        words: list[_Word] = []
        while True:
            u = self.peek()
            if u.kind == "word":
                words.append(self.take().word)
            elif u.kind == "{":
                raise _err(f"unexpected '{{' after {words[0].text!r} "
                           "(a block must follow menuentry, submenu or function)", self.where(u.line))
            else:
                break
        first = words[0]
        if len(words) == 1 and first.segs and first.segs[0][0] == "raw":
            m = _ASSIGN_RE.match(first.segs[0][1])
            if m:
                rest = first.segs[0][1][m.end():]
                segs = ((("raw", rest),) if rest else ()) + first.segs[1:]
                return _Assign(m.group(1), _Word(segs, first.line, first.text), self.where(first.line))
        return _Simple(words, self.where(first.line), first.line)

    def parse_if(self):
        line = self.take().line
        self.enter(line)
        clauses = []
        else_body = None
        opener = ("if", line)
        while True:
            cond, _ = self.parse_list(frozenset({"then"}), opener)
            if not cond:
                raise _err("'if' or 'elif' with an empty condition", self.where(line))
            body, term = self.parse_list(frozenset({"elif", "else", "fi"}), opener)
            clauses.append((cond, body))
            if term == "elif":
                continue
            if term == "else":
                else_body, _ = self.parse_list(frozenset({"fi"}), opener)
            break
        self.depth -= 1
        return _If(clauses, else_body, self.where(line))

    def parse_for(self):
        line = self.take().line
        self.enter(line)
        t = self.take()
        name = t.word.plain() if t.kind == "word" else None
        if name is None or not _NAME_RE.fullmatch(name):
            raise _err("'for' needs a variable name", self.where(line))
        t = self.take()
        if t.kind != "word" or t.word.plain() != "in":
            raise _err(f"expected 'in' after 'for {name}'", self.where(line))
        words = []
        while self.peek().kind == "word":
            words.append(self.take().word)
        self.skip_seps()
        t = self.take()
        if t.kind != "word" or t.word.plain() != "do":
            raise _err("expected 'do' in 'for' loop", self.where(t.line))
        body, _ = self.parse_list(frozenset({"done"}), ("for", line))
        self.depth -= 1
        return _For(name, words, body, self.where(line))

    def parse_while(self, kw: str):
        line = self.take().line
        self.enter(line)
        cond, _ = self.parse_list(frozenset({"do"}), (kw, line))
        if not cond:
            raise _err(f"'{kw}' with an empty condition", self.where(line))
        body, _ = self.parse_list(frozenset({"done"}), (kw, line))
        self.depth -= 1
        return _While(cond, body, kw == "until", self.where(line))

    def parse_block(self, what: str, line: int) -> list:
        self.skip_seps()
        t = self.take()
        if t.kind != "{":
            raise _err(f"expected '{{' to open the body of {what}", self.where(t.line))
        self.enter(t.line)
        body, _ = self.parse_list(frozenset(), (what, t.line), in_braces=True)
        self.take()  # the '}'
        self.depth -= 1
        return body

    def parse_function(self):
        line = self.take().line
        t = self.take()
        name = t.word.plain() if t.kind == "word" else None
        if not name or not _NAME_RE.fullmatch(name):
            raise _err("'function' needs a name", self.where(line))
        body = self.parse_block(f"function {name}", line)
        return _Func(name, body, self.where(line))

    def parse_menu(self, kw: str):
        line = self.take().line
        args = []
        while self.peek().kind == "word":
            args.append(self.take().word)
        t = self.peek()
        if t.kind != "{":
            raise _err(f"'{kw}' needs a '{{ ... }}' body on the same line", self.where(line))
        body = self.parse_block(kw, line)
        return _Menu(kw, args, body, self.where(line), line)


def _parse_text(text: str, path: str) -> list:
    return _Parser(_lex(text, path), path).parse_script()


# --------------------------------------------------------------------------- evaluation

_PROTECTED_PREFIXES = ("feature_", "grub_")


def _protected(name: str) -> bool:
    return name.startswith(_PROTECTED_PREFIXES) or name == "menuentry_id_option"


class _Env:
    __slots__ = ("positional", "vars", "wild")

    def __init__(self, vars_: dict, wild: bool = False, positional: list | None = None):
        self.vars = vars_
        self.wild = wild
        self.positional = positional if positional is not None else []

    def copy(self) -> _Env:
        return _Env(dict(self.vars), self.wild, list(self.positional))

    def assign_from(self, other: _Env) -> None:
        self.vars, self.wild, self.positional = other.vars, other.wild, other.positional

    def get(self, name: str):
        if name.isdigit():
            k = int(name)
            if k == 0:
                return UNKNOWN
            return self.positional[k - 1] if k <= len(self.positional) else ""
        if name == "#":
            return str(len(self.positional))
        if name in ("*", "@"):
            if any(p is UNKNOWN for p in self.positional):
                return UNKNOWN
            return " ".join(self.positional)
        if name == "?":
            return UNKNOWN
        if name in self.vars:
            return self.vars[name]
        if self.wild and not _protected(name):
            return UNKNOWN
        return ""


def _merge(paths: list[_Env]) -> _Env:
    if len(paths) == 1:
        return paths[0]
    names = set()
    for p in paths:
        names.update(p.vars)
    out = {}
    for k in names:
        vals = [p.get(k) for p in paths]
        v0 = vals[0]
        out[k] = v0 if all(v is v0 or (v is not UNKNOWN and v0 is not UNKNOWN and v == v0)
                           for v in vals) else UNKNOWN
    return _Env(out, any(p.wild for p in paths), list(paths[0].positional))


@dataclass
class _Sink:
    commands: list | None       # [(fields, where)] inside a menu entry body
    menus: list | None          # [_MenuDef] where entries may be defined


@dataclass
class _MenuDef:
    kind: str
    title: str
    id: str | None
    classes: list
    extra: list
    body: list
    file: str
    line: int


class _Ctx:
    def __init__(self, path: str):
        self.path = path
        self.functions: dict[str, list] = {}
        self.steps = 0
        self.call_depth = 0
        self.source_depth = 0


def _expand(word: _Word, env: _Env) -> list[tuple[str, bool]]:
    """Fields of one word: [(text, unknown)]; unquoted expansions are split on blanks."""
    fields: list[tuple[str, bool]] = []
    cur: list[str] | None = None
    unk = False
    for kind, s in word.segs:
        if kind in ("raw", "lit"):
            cur = (cur or []) + [s]
            continue
        val = env.get(s)
        if val is UNKNOWN:
            cur = (cur or []) + ["${" + s + "}"]
            unk = True
            continue
        if kind == "qvar":
            cur = (cur or []) + [val]
            continue
        parts = val.split()
        if not parts:
            if val and cur is not None:          # only blanks: ends the field
                fields.append(("".join(cur), unk))
                cur, unk = None, False
            continue
        if val[0] in " \t\n" and cur is not None:
            fields.append(("".join(cur), unk))
            cur, unk = None, False
        for k, part in enumerate(parts):
            if k > 0:
                fields.append(("".join(cur), unk))
                cur, unk = None, False
            cur = (cur or []) + [part]
        if val[-1] in " \t\n":
            fields.append(("".join(cur), unk))
            cur, unk = None, False
    if cur is not None:
        fields.append(("".join(cur), unk))
    return fields


def _expand_words(words: list[_Word], env: _Env) -> list[tuple[str, bool]]:
    out: list[tuple[str, bool]] = []
    for w in words:
        out.extend(_expand(w, env))
    return out


def _expand_joined(word: _Word, env: _Env):
    """An assignment value: no field splitting; UNKNOWN if any part is unknown."""
    parts = []
    for kind, s in word.segs:
        if kind in ("raw", "lit"):
            parts.append(s)
        else:
            v = env.get(s)
            if v is UNKNOWN:
                return UNKNOWN
            parts.append(v)
    return "".join(parts)


# ---- test / [ ... ]

_STR_OPS = {"=", "==", "!=", "<", "<=", ">", ">="}
_INT_OPS = {"-eq", "-ne", "-lt", "-le", "-gt", "-ge", "-pgt", "-plt"}
_FILE_BIN_OPS = {"-nt", "-ot"}
_UNARY = {"-n", "-z", "-e", "-f", "-d", "-s"}


class _BadTest(Exception):
    pass


def _and(a, b):
    if a is False or b is False:
        return False
    if a is None or b is None:
        return None
    return True


def _or(a, b):
    if a is True or b is True:
        return True
    if a is None or b is None:
        return None
    return False


def _int(s: str, prefixed: bool) -> int:
    if prefixed:
        s = re.sub(r"^[^0-9-]*", "", s)
    m = re.match(r"-?[0-9]+", s.strip())
    if not m:
        raise _BadTest
    return int(m.group(0))


def _eval_test(args: list[str]):
    pos = 0

    def peek(k=0):
        return args[pos + k] if pos + k < len(args) else None

    def expr_or():
        nonlocal pos
        v = expr_and()
        while peek() == "-o":
            pos += 1
            v = _or(v, expr_and())
        return v

    def expr_and():
        nonlocal pos
        v = expr_not()
        while peek() == "-a":
            pos += 1
            v = _and(v, expr_not())
        return v

    def expr_not():
        nonlocal pos
        if peek() == "!" and peek(1) is not None and peek(1) not in _STR_OPS:
            pos += 1
            v = expr_not()
            return None if v is None else not v
        return primary()

    def primary():
        nonlocal pos
        a = peek()
        if a is None:
            raise _BadTest
        if a == "(" and peek(1) is not None and peek(1) not in _STR_OPS | _INT_OPS:
            pos += 1
            v = expr_or()
            if peek() != ")":
                raise _BadTest
            pos += 1
            return v
        op = peek(1)
        if op is not None and peek(2) is not None and (op in _STR_OPS or op in _INT_OPS
                                                       or op in _FILE_BIN_OPS):
            b = peek(2)
            pos += 3
            if op in ("=", "=="):
                return a == b
            if op == "!=":
                return a != b
            if op == "<":
                return a < b
            if op == "<=":
                return a <= b
            if op == ">":
                return a > b
            if op == ">=":
                return a >= b
            if op in _FILE_BIN_OPS:
                return None
            pre = op in ("-pgt", "-plt")
            x, y = _int(a, pre), _int(b, pre)
            return {"-eq": x == y, "-ne": x != y, "-lt": x < y, "-le": x <= y,
                    "-gt": x > y, "-ge": x >= y, "-pgt": x > y, "-plt": x < y}[op]
        if a in _UNARY and op is not None:
            pos += 2
            if a == "-n":
                return op != ""
            if a == "-z":
                return op == ""
            return None                  # file tests: the static reader has no disk
        pos += 1
        return a != ""

    try:
        if not args:
            return False
        v = expr_or()
        if pos != len(args):
            return False
        return v
    except _BadTest:
        return False


# ---- statements

def _step(ctx: _Ctx, where: str) -> None:
    ctx.steps += 1
    if ctx.steps > MAX_STEPS:
        raise _err(f"script takes more than {MAX_STEPS} steps (runaway function calls or loops?)",
                   where)


def _exec_list(nodes: list, env: _Env, sink: _Sink, ctx: _Ctx) -> None:
    for node in nodes:
        _exec(node, env, sink, ctx)


def _set(env: _Env, name: str, value, where: str) -> None:
    if value is not UNKNOWN and len(value) > MAX_VALUE:
        raise _err(f"value of {name!r} longer than {MAX_VALUE} characters", where)
    env.vars[name] = value


def _exec(node, env: _Env, sink: _Sink, ctx: _Ctx) -> None:
    _step(ctx, node.where)
    if isinstance(node, _Simple):
        _exec_simple(node, env, sink, ctx, record=True)
    elif isinstance(node, _Assign):
        _set(env, node.name, _expand_joined(node.value, env), node.where)
    elif isinstance(node, _If):
        _exec_if(node, env, sink, ctx)
    elif isinstance(node, _For):
        fields = _expand_words(node.words, env)
        if any(u for _, u in fields):
            b = env.copy()
            b.vars[node.var] = UNKNOWN
            _exec_list(node.body, b, sink, ctx)
            env.assign_from(_merge([env, b]))
        else:
            for text, _ in fields:
                env.vars[node.var] = text
                _exec_list(node.body, env, sink, ctx)
    elif isinstance(node, _While):
        r = _eval_cond(node.cond, env, sink, ctx)
        stops = (r is True) if node.until else (r is False)
        if not stops:
            b = env.copy()
            _exec_list(node.body, b, sink, ctx)
            env.assign_from(b if r is not None else _merge([env, b]))
    elif isinstance(node, _Func):
        ctx.functions[node.name] = node.body
    elif isinstance(node, _Menu):
        _define_menu(node, env, sink, ctx)
    else:  # pragma: no cover
        raise TypeError(f"not a script node: {node!r}")


def _exec_if(node: _If, env: _Env, sink: _Sink, ctx: _Ctx) -> None:
    paths: list[_Env] = []
    taken = False
    for cond, body in node.clauses:
        r = _eval_cond(cond, env, sink, ctx)
        if r is False:
            continue
        b = env.copy()
        _exec_list(body, b, sink, ctx)
        paths.append(b)
        if r is True:
            taken = True
            break
    if not taken:
        if node.else_body is not None:
            b = env.copy()
            _exec_list(node.else_body, b, sink, ctx)
            paths.append(b)
        else:
            paths.append(env.copy())
    env.assign_from(_merge(paths))


def _eval_cond(nodes: list, env: _Env, sink: _Sink, ctx: _Ctx):
    """Run a condition list (not recorded); True/False/None from its last command."""
    quiet = _Sink(None, None)
    for node in nodes[:-1]:
        _exec(node, env, quiet, ctx)
    last = nodes[-1]
    _step(ctx, last.where)
    if not isinstance(last, _Simple):
        _exec(last, env, quiet, ctx)
        return True if isinstance(last, _Assign) else None
    return _exec_simple(last, env, quiet, ctx, record=False)


def _exec_simple(node: _Simple, env: _Env, sink: _Sink, ctx: _Ctx, record: bool):
    """Run one simple command; return its status when known (True/False) else None."""
    fields = _expand_words(node.words, env)
    if not fields:
        return True
    if any(len(t) > MAX_VALUE for t, _ in fields):
        raise _err(f"a word longer than {MAX_VALUE} characters", node.where)
    negate = False
    if fields[0] == ("!", False) and len(fields) > 1:
        negate = True
        fields = fields[1:]
    name = fields[0][0]
    args = [t for t, _ in fields[1:]]
    status = None

    if name in ("[", "test"):
        if any(u for _, u in fields[1:]):
            status = None
        elif name == "[":
            status = _eval_test(args[:-1]) if args and args[-1] == "]" else False
        else:
            status = _eval_test(args)
    elif name == "true":
        status = True
    elif name == "false":
        status = False
    elif name == "set":
        for a, (_, unk) in zip(args, fields[1:]):
            k, eq, v = a.partition("=")
            if not _NAME_RE.fullmatch(k):
                continue
            _set(env, k, UNKNOWN if unk else (v if eq else ""), node.where)
        status = True
    elif name == "unset":
        for a in args:
            env.vars.pop(a, None)
            if env.wild and not _protected(a):
                env.vars[a] = ""
        status = True
    elif name == "setparams":
        env.positional = [UNKNOWN if u else t for t, u in fields[1:]]
        status = True
    elif name == "shift":
        if env.positional:
            env.positional = env.positional[1:]
        status = True
    elif name == "search" or name.startswith("search."):
        _search_sets(name, args, env)
    elif name == "load_env":
        names = [a for a in _drop_options(args, {"-f", "--file"}) if _NAME_RE.fullmatch(a)]
        if names:
            for k in names:
                if not _protected(k):
                    env.vars[k] = UNKNOWN
        else:
            env.wild = True
            for k in list(env.vars):
                if not _protected(k):
                    env.vars[k] = UNKNOWN
    elif name in ("source", ".") and args:
        _source(node, fields[1], env, sink, ctx)
    elif name in ctx.functions and name not in EXTENSION_COMMANDS:
        _call(node, name, fields[1:], env, sink, ctx)
        return None
    elif name in ("break", "continue", "return"):
        return None
    if record and sink.commands is not None:
        sink.commands.append(([t for t, _ in fields], node.where))
    if negate and status is not None:
        status = not status
    return status


def _drop_options(args: list[str], with_value: set) -> list[str]:
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a in with_value:
            skip = True
        elif not a.startswith("-"):
            out.append(a)
    return out


def _search_sets(name: str, args: list[str], env: _Env) -> None:
    target = None
    if name.startswith("search."):
        rest = [a for a in args if not a.startswith("-")]
        target = rest[1] if len(rest) > 1 else "root"
    else:
        for a in args:
            if a.startswith("--set="):
                target = a[len("--set="):] or "root"
            elif a in ("--set", "-s"):
                target = "root"
    if target and _NAME_RE.fullmatch(target) and not _protected(target):
        env.vars[target] = UNKNOWN


def _call(node: _Simple, name: str, args, env: _Env, sink: _Sink, ctx: _Ctx) -> None:
    if ctx.call_depth >= MAX_CALL_DEPTH:
        raise _err(f"function calls nested deeper than {MAX_CALL_DEPTH} "
                   f"(recursive function {name!r}?)", node.where)
    ctx.call_depth += 1
    saved = env.positional
    env.positional = [UNKNOWN if u else t for t, u in args]
    try:
        _exec_list(ctx.functions[name], env, sink, ctx)
    finally:
        env.positional = saved
        ctx.call_depth -= 1


def _source(node: _Simple, arg: tuple[str, bool], env: _Env, sink: _Sink, ctx: _Ctx) -> None:
    text, unk = arg
    file_part = node.where.rsplit(":", 1)[0]
    if unk or not os.path.isfile(file_part):
        return
    rel = re.sub(r"^\([^)]*\)", "", text).lstrip("/")
    if not rel:
        return
    base = os.path.dirname(file_part)
    target = os.path.join(base, rel)
    if not os.path.isfile(target):
        target = os.path.join(base, os.path.basename(rel))
        if not os.path.isfile(target):
            return
    if ctx.source_depth >= MAX_SOURCE_DEPTH:
        raise _err(f"'source' nested deeper than {MAX_SOURCE_DEPTH}: {text!r}", node.where)
    try:
        with open(target, "rb") as f:
            data = f.read().decode("utf-8", errors="replace")
    except OSError as e:
        raise _err(f"cannot read sourced file {text!r}: {e.strerror}", node.where) from None
    nodes = _parse_text(data, target)
    ctx.source_depth += 1
    try:
        _exec_list(nodes, env, sink, ctx)
    finally:
        ctx.source_depth -= 1


_MENU_OPTS_VALUE = {"--class", "--users", "--hotkey", "--id", "--source"}
_MENU_OPTS_FLAG = {"--unrestricted"}


def _define_menu(node: _Menu, env: _Env, sink: _Sink, ctx: _Ctx) -> None:
    fields = _expand_words(node.args, env)
    words = []
    for t, u in fields:
        if u and t == "${menuentry_id_option}":
            t = "--id"
        words.append(t)
    classes: list[str] = []
    ident = None
    positional: list[str] = []
    i = 0
    while i < len(words):
        a = words[i]
        if a == "--":
            positional.extend(words[i + 1:])
            break
        if a.startswith("--") and len(a) > 2:
            opt, eq, val = a.partition("=")
            if opt in _MENU_OPTS_VALUE:
                if not eq:
                    if i + 1 >= len(words):
                        raise _err(f"{node.kind} option {opt} needs a value", node.where)
                    i += 1
                    val = words[i]
                if opt == "--class":
                    classes.append(val)
                elif opt == "--id":
                    ident = val
            elif opt in _MENU_OPTS_FLAG:
                if eq:
                    raise _err(f"{node.kind} option {opt} takes no value: {a!r}", node.where)
            else:
                raise _err(f"unknown {node.kind} option {a!r}", node.where)
        else:
            positional.append(a)
        i += 1
    if not positional:
        raise _err(f"{node.kind} without a title", node.where)
    if sink.menus is not None:
        file_part = node.where.rsplit(":", 1)[0]
        sink.menus.append(_MenuDef(node.kind, positional[0], ident, classes, positional[1:],
                                   node.body, file_part, node.line))


@dataclass
class MenuEntry:
    """One menu entry: what GRUB shows and the commands it runs when chosen."""

    title: str
    id: str | None
    classes: list[str]
    commands: list[list[str]]
    submenu: list[str] = field(default_factory=list)   # titles of the enclosing submenus
    file: str = "<grub.cfg>"
    line: int = 0                                       # line of the `menuentry`
    command_where: list[str] = field(default_factory=list, repr=False)  # "FILE:LINE" per command

    def as_dict(self) -> dict:
        return {"title": self.title, "id": self.id, "classes": list(self.classes),
                "commands": [list(c) for c in self.commands], "submenu": list(self.submenu),
                "line": self.line}


def _realize(defs: list[_MenuDef], env: _Env, ctx: _Ctx, titles: list[str]) -> list[MenuEntry]:
    out: list[MenuEntry] = []
    for d in defs:
        e = env.copy()
        e.positional = [d.title] + list(d.extra)
        if d.kind == "menuentry":
            sink = _Sink([], None)
            _exec_list(d.body, e, sink, ctx)
            out.append(MenuEntry(d.title, d.id, list(d.classes), [c for c, _ in sink.commands],
                                 list(titles), d.file, d.line, [w for _, w in sink.commands]))
        else:
            sink = _Sink(None, [])
            _exec_list(d.body, e, sink, ctx)
            out.extend(_realize(sink.menus, e, ctx, titles + [d.title]))
    return out


def parse(text: str, path: str = "<grub.cfg>", env: Mapping[str, str | None] | None = None
          ) -> list[MenuEntry]:
    """Parse grub.cfg text; return its menu entries in menu order (see the module doc)."""
    nodes = _parse_text(text, path)
    start = dict(DEFAULT_ENV)
    for k, v in (env or {}).items():
        start[k] = UNKNOWN if v is None else str(v)
    e = _Env(start)
    ctx = _Ctx(path)
    sink = _Sink(None, [])
    try:
        _exec_list(nodes, e, sink, ctx)
        return _realize(sink.menus, e, ctx, [])
    except RecursionError:  # pragma: no cover - guarded by the limits above
        raise _err("script nests too deeply", path) from None


def inspect(path: str) -> dict:
    """Read a grub.cfg file; return {"file", "menuentries": [{title, id, classes, commands, ...}]}."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise _err(f"cannot read grub.cfg: {e.strerror}", path) from None
    text = data.decode("utf-8", errors="replace")
    entries = parse(text, path)
    return {"file": path, "menuentries": [m.as_dict() for m in entries]}


# --------------------------------------------------------------------------- multi-kernel plan

FLOWS = ("grub", "kexec", "trampoline")
_LINUX_CMDS = {"linux", "linuxefi", "linux16"}
_INITRD_CMDS = {"initrd", "initrdefi", "initrd16"}
_MB_CMDS = {"multiboot": "multiboot", "multiboot2": "multiboot2"}
_MOD_CMDS = {"module": "multiboot", "module2": "multiboot2"}
_PERSONALITY_RE = re.compile(r"[a-z][a-z0-9_-]*\Z")
_NUM_RE = re.compile(r"(0[xX][0-9a-fA-F]+|[0-9]+)([kKmMgGtT])?\Z")
_SUFFIX = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
MAX_CORE = 65535
MAX_ADDR = 1 << 64


@dataclass
class KernelPlan:
    """One kernel of an entry: where it runs, what image, how it is started."""

    name: str
    cores: list[int]                     # [] = the whole machine (entry without mksim_kernel)
    memory: list[tuple[int, int]]        # half-open [lo, hi), page aligned, sorted; [] = whole machine
    flow: str                            # grub | kexec | trampoline
    personality: str | None
    loader: str | None                   # linux | multiboot | multiboot2
    image: str | None
    cmdline: str
    modules: list[tuple[str, str]] = field(default_factory=list)
    initrd: list[str] = field(default_factory=list)
    parent: str | None = None            # the kernel that starts it (kexec / trampoline)
    where: str = ""                      # FILE:LINE of its mksim_kernel (or entry)


def _parse_cores(value: str, where: str) -> list[int]:
    cores: list[int] = []
    if not value:
        raise _err("empty --cores", where)
    for item in value.split(","):
        m = re.fullmatch(r"([0-9]+)(?:-([0-9]+))?", item.strip())
        if not m:
            raise _err(f"bad core list {value!r}: {item!r} is not N or N-M", where)
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise _err(f"bad core range {item!r} in {value!r}: end below start", where)
        if hi > MAX_CORE:
            raise _err(f"core {hi} in {value!r} out of range (0..{MAX_CORE})", where)
        for c in range(lo, hi + 1):
            if c in cores:
                raise _err(f"core {c} given twice in {value!r}", where)
            cores.append(c)
    return cores


def _num(s: str, value: str, where: str) -> int:
    m = _NUM_RE.fullmatch(s.strip())
    if not m:
        raise _err(f"bad number {s!r} in memory ranges {value!r}", where)
    n = int(m.group(1), 0) * (_SUFFIX[m.group(2).lower()] if m.group(2) else 1)
    if n > MAX_ADDR:
        raise _err(f"address {s!r} in {value!r} beyond 2**64", where)
    return n


def _parse_memory(value: str, where: str) -> list[tuple[int, int]]:
    if not value:
        raise _err("empty --memory", where)
    out: list[tuple[int, int]] = []
    for item in value.split(","):
        if "+" in item:
            a, _, b = item.partition("+")
            lo = _num(a, value, where)
            hi = lo + _num(b, value, where)
        elif "-" in item:
            a, _, b = item.partition("-")
            lo, hi = _num(a, value, where), _num(b, value, where)
        else:
            raise _err(f"bad memory range {item!r} in {value!r}: use LO-HI or LO+SIZE", where)
        if hi <= lo:
            raise _err(f"empty or reversed memory range {item!r} in {value!r}", where)
        if hi > MAX_ADDR:
            raise _err(f"memory range {item!r} in {value!r} ends beyond 2**64", where)
        if lo % PAGE_SIZE or hi % PAGE_SIZE:
            raise _err(f"memory range {item!r} in {value!r} is not {PAGE_SIZE}-byte aligned", where)
        out.append((lo, hi))
    return sorted(out)


def _kernel_opts(args: list[str], where: str) -> dict:
    known = {"--name", "--cores", "--memory", "--flow", "--by", "--personality"}
    opts: dict[str, str] = {}
    i = 0
    while i < len(args):
        a = args[i]
        opt, eq, val = a.partition("=")
        if opt not in known:
            raise _err(f"mksim_kernel: unknown argument {a!r}", where)
        if not eq:
            if i + 1 >= len(args):
                raise _err(f"mksim_kernel: {opt} needs a value", where)
            i += 1
            val = args[i]
        if opt in opts:
            raise _err(f"mksim_kernel: {opt} given twice ({opts[opt]!r} and {val!r})", where)
        opts[opt] = val
        i += 1
    return opts


def plan(entry: MenuEntry, personalities=None) -> list[KernelPlan]:
    """The kernels `entry` boots, validated (see "Multi-kernel extension" in the module doc).

    ``personalities``: the names ``--personality`` may take (the caller's registry: boot does not import
    kernels); None checks only the syntax."""
    wheres = entry.command_where or [f"{entry.file}:{entry.line}"] * len(entry.commands)
    entry_where = f"{entry.file}:{entry.line}"
    extended = any(c and c[0] in EXTENSION_COMMANDS for c in entry.commands)
    kernels: list[KernelPlan] = []
    cur: KernelPlan | None = None
    if not extended:
        cur = KernelPlan("k0", [], [], "grub", None, None, None, "", where=entry_where)
        kernels.append(cur)
    for cmd, where in zip(entry.commands, wheres):
        if not cmd:
            continue
        name, args = cmd[0], cmd[1:]
        if name == "mksim_kernel":
            opts = _kernel_opts(args, where)
            kname = opts.get("--name", f"k{len(kernels)}")
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", kname):
                raise _err(f"mksim_kernel: bad name {kname!r}", where)
            if any(k.name == kname for k in kernels):
                raise _err(f"mksim_kernel: name {kname!r} used twice in entry {entry.title!r}", where)
            if "--cores" not in opts:
                raise _err(f"mksim_kernel {kname}: missing --cores", where)
            if "--memory" not in opts:
                raise _err(f"mksim_kernel {kname}: missing --memory", where)
            flow = opts.get("--flow", "grub")
            if flow not in FLOWS:
                raise _err(f"mksim_kernel {kname}: bad --flow {flow!r} (grub, kexec or trampoline)",
                           where)
            pers = opts.get("--personality")
            if pers is not None and not _PERSONALITY_RE.match(pers):
                raise _err(f"mksim_kernel {kname}: bad --personality {pers!r}", where)
            parent = None
            if flow == "grub":
                if "--by" in opts:
                    raise _err(f"mksim_kernel {kname}: --by {opts['--by']!r} needs --flow kexec "
                               "or trampoline", where)
            else:
                if not kernels:
                    raise _err(f"mksim_kernel {kname}: the first kernel must use --flow grub "
                               f"(got {flow!r})", where)
                parent = opts.get("--by", kernels[0].name)
                if not any(k.name == parent for k in kernels):
                    raise _err(f"mksim_kernel {kname}: --by {parent!r} names no earlier kernel",
                               where)
            if cur is not None and cur.image is None:
                raise _err(f"mksim_kernel {cur.name} has no image command "
                           "(linux, multiboot or multiboot2)", cur.where)
            cur = KernelPlan(kname, _parse_cores(opts["--cores"], where),
                             _parse_memory(opts["--memory"], where), flow, pers, None, None, "",
                             parent=parent, where=where)
            kernels.append(cur)
            continue
        is_image = name in _LINUX_CMDS or name in _MB_CMDS
        is_extra = name in _INITRD_CMDS or name in _MOD_CMDS or name == "chainloader"
        if not (is_image or is_extra):
            continue
        if cur is None:
            raise _err(f"{name!r} before any mksim_kernel in entry {entry.title!r}", where)
        if name == "chainloader":
            raise _err(f"chainloader entries cannot be planned: {' '.join(cmd)!r}", where)
        if is_image:
            if cur.image is not None:
                raise _err(f"kernel {cur.name} has two image commands: {name} {' '.join(args)!r} "
                           f"after {cur.loader} {cur.image!r}", where)
            if not args:
                raise _err(f"{name} without an image path", where)
            cur.loader = "linux" if name in _LINUX_CMDS else _MB_CMDS[name]
            cur.image, cur.cmdline = args[0], " ".join(args[1:])
        elif name in _INITRD_CMDS:
            if cur.loader != "linux":
                raise _err(f"{name} {' '.join(args)!r} needs a linux image first "
                           f"(kernel {cur.name} has {cur.loader or 'none'})", where)
            if not args:
                raise _err(f"{name} without a file", where)
            cur.initrd.extend(args)
        else:
            need = _MOD_CMDS[name]
            if cur.loader != need:
                raise _err(f"{name} {' '.join(args)!r} needs a {need} image first "
                           f"(kernel {cur.name} has {cur.loader or 'none'})", where)
            rest = [a for a in args if a != "--nounzip"]
            if not rest:
                raise _err(f"{name} without a file", where)
            cur.modules.append((rest[0], " ".join(rest[1:])))
    if cur is not None and cur.image is None:
        raise _err(f"{'mksim_kernel ' + cur.name if extended else 'entry ' + repr(entry.title)} "
                   "has no image command (linux, multiboot or multiboot2)", cur.where)
    # partitions: no core twice, no overlapping memory
    owner: dict[int, str] = {}
    for k in kernels:
        for c in k.cores:
            if c in owner:
                raise _err(f"core {c} given twice: kernels {owner[c]} and {k.name}", k.where)
            owner[c] = k.name
    spans = sorted((lo, hi, k.name, k.where) for k in kernels for lo, hi in k.memory)
    for (lo1, hi1, n1, _), (lo2, hi2, n2, w2) in itertools.pairwise(spans):
        if lo2 < hi1:
            who = f"kernel {n1}" if n1 == n2 else f"kernels {n1} and {n2}"
            raise _err(f"overlapping memory partitions: [{lo1:#x}, {hi1:#x}) and "
                       f"[{lo2:#x}, {hi2:#x}) of {who}", w2)
    if personalities is not None:
        for k in kernels:
            if k.personality is not None and k.personality not in personalities:
                raise _err(f"mksim_kernel {k.name}: unknown --personality {k.personality!r} "
                           f"(known: {', '.join(sorted(personalities))})", k.where)
    return kernels
