"""A small structured layer over ``isa.Program``: named locals in registers, if/else,
loops, routines with arguments, and the idioms kernel paths are made of (a ticket
spinlock, an atomic counter, a ring send and receive).

Everything here emits ordinary ops through the builder; ``Kernel.program()``
returns the ``isa.Program`` and ``listing()`` shows exactly what was generated.

Calling convention (what ``routine`` and ``call`` emit)::

    r0        return value                      caller-saved
    r1..r6    arguments 1..6                    caller-saved
    r7        free for raw code (k.p)           caller-saved, never allocated here
    r8..r15   locals                            callee-saved
    sp        stack pointer (r16)               never allocated

* ``call(name, a, b)`` moves the arguments into r1, r2 (``mov`` / ``movi``) and
  emits ``call``: the return address goes on the stack in simulated memory.
* A routine's prologue stores every callee-saved register its body allocates
  (``sub sp, sp, 8n``; ``store [sp + 8i]``); its epilogue loads them back,
  ``add sp, sp, 8n`` and ``ret``.  A routine that allocates no local saves nothing.
* The caller saves nothing: values it needs across a call live in locals.
  Reading an argument, a result or another caller-saved value after a later
  call in the same routine (in program text order) is a ``MksimError``; a
  value carried round a loop's back edge is not checked.
* Every routine is placed once, after the main code, however many call sites
  it has: its I-cache lines are fetched once, as a real kernel's are.

Locals come from r8..r15 (lowest free first); running out is a ``MksimError``
naming what holds them.  Conditions are written ``(a, op, b)`` with ``op`` one
of ``== != < <= > >=`` (signed) or ``<u <=u >u >=u`` (unsigned); ``a`` is a
register, ``b`` a register or an integer.
"""
from __future__ import annotations

from contextlib import contextmanager

from hwmodel import isa
from hwmodel.errors import MksimError

ARG_REGS = (1, 2, 3, 4, 5, 6)
RET_REG = 0
LOCAL_REGS = (8, 9, 10, 11, 12, 13, 14, 15)

# condition -> (branch condition, operands swapped)
CONDS = {"==": ("eq", False), "!=": ("ne", False), "<": ("lt", False), ">=": ("ge", False),
         "<u": ("ltu", False), ">=u": ("geu", False),
         ">": ("lt", True), "<=": ("ge", True), ">u": ("ltu", True), "<=u": ("geu", True)}
NEGATE = {"eq": "ne", "ne": "eq", "lt": "ge", "ge": "lt", "ltu": "geu", "geu": "ltu"}

# ring layout (bytes from the ring's base): producer index, consumer index (own lines), 8-byte slots
RING_HEAD, RING_TAIL, RING_SLOTS = 0, 64, 128
# ticket lock layout: next ticket, now serving
LOCK_NEXT, LOCK_SERVING = 0, 8


class Var(str):
    """A named register.  It is the register's name (``"r8"``), so it can go to any ``Program`` method."""

    reg: int
    name: str
    kind: str        # "local" (callee-saved), "argument", "result" (caller-saved)
    born: int        # the frame's call count when it was last written

    def __new__(cls, reg: int, name: str, kind: str, born: int = 0) -> "Var":
        v = super().__new__(cls, "sp" if reg == isa.SP else f"r{reg}")
        v.reg, v.name, v.kind, v.born = reg, name, kind, born
        return v


class Kernel:
    """Structured code for one program (the main code) plus the routines it defines."""

    def __init__(self, name: str = "kernel", _parent: "Kernel | None" = None):
        self.name = name
        self._p = isa.Program(name)
        self._parent = _parent
        self._routines: dict = _parent._routines if _parent else {}   # name -> (arity, Program or None)
        self._counter = _parent._counter if _parent else [0]
        self._free = list(LOCAL_REGS)
        self._vars: dict[int, Var] = {}
        self._saved: set[int] = set()          # callee-saved registers this frame ever allocated
        self._calls = 0
        self._pending_else = None              # (else label, end label) of the if_ that just closed
        self._loops: list[tuple[str, str]] = []  # (break label, continue label)
        self._routine = None                   # the routine this frame is the body of

    # ------------------------------------------------------------ plumbing
    def _new(self, kind: str) -> str:
        self._counter[0] += 1
        return f"{kind}{self._counter[0]}"

    def _flush(self) -> None:
        """An if_ without else_: its skip label lands at the next thing emitted."""
        if self._pending_else is not None:
            els, _ = self._pending_else
            self._pending_else = None
            self._p.label(els)

    @property
    def p(self) -> isa.Program:
        """The raw builder, for ops this layer does not wrap (no register checks on them)."""
        self._flush()
        return self._p

    def _use(self, x) -> None:
        """x is read: a caller-saved value written before the last call is refused."""
        if isinstance(x, Var) and x.kind != "local" and x.born != self._calls:
            raise MksimError(f"{self.name}: {x.kind} {x.name!r} ({x}) was overwritten by a later call; "
                             f"copy it into a local before the call")

    def _def(self, x) -> None:
        if isinstance(x, Var):
            x.born = self._calls

    def _reg(self, x) -> str:
        if isinstance(x, Var):
            return x
        raise MksimError(f"{self.name}: {x!r} must be a register (a Var from local(), an argument or a result)")

    @staticmethod
    def _addr(addr, off: int) -> dict:
        """Program address arguments of ``addr + off``, addr an integer or a register."""
        if isinstance(addr, str):
            return {"addr": off, "base": addr}
        return {"addr": addr + off}

    # ------------------------------------------------------------ locals
    def local(self, name: str, init=None) -> Var:
        """A named register from r8..r15, optionally set to ``init`` (an integer or a register)."""
        if not self._free:
            held = ", ".join(f"{v.name}={v}" for v in sorted(self._vars.values(), key=lambda v: v.reg))
            raise MksimError(f"{self.name}: out of registers for local {name!r}: r8..r15 hold {held}; "
                             f"free one (Kernel.free) or keep fewer values live")
        r = self._free.pop(0)
        v = Var(r, name, "local", self._calls)
        self._vars[r] = v
        if self._routine is not None:
            self._saved.add(r)
        if init is not None:
            self.set(v, init)
        return v

    def free(self, *vs: Var) -> None:
        """Give locals' registers back (they may be handed out again)."""
        for v in vs:
            if not isinstance(v, Var) or self._vars.get(v.reg) is not v:
                raise MksimError(f"{self.name}: {v!r} is not a live local of this frame")
            del self._vars[v.reg]
            self._free.append(v.reg)
            self._free.sort()

    # ------------------------------------------------------------ ops
    def set(self, rd: Var, x, comment: str = "") -> "Kernel":
        """rd = x (an integer or a register)."""
        self._flush()
        self._use(x)
        if isinstance(x, str):
            self._p.mov(self._reg(rd), x, comment=comment)
        else:
            self._p.movi(self._reg(rd), x, comment=comment)
        self._def(rd)
        return self

    def alu(self, name: str, rd: Var, a, b, comment: str = "") -> "Kernel":
        self._flush()
        self._use(a)
        self._use(b)
        self._p.alu(name, self._reg(rd), self._reg(a), b, comment=comment)
        self._def(rd)
        return self

    def add(self, rd, a, b, comment: str = "") -> "Kernel":
        return self.alu("add", rd, a, b, comment)

    def sub(self, rd, a, b, comment: str = "") -> "Kernel":
        return self.alu("sub", rd, a, b, comment)

    def mul(self, rd, a, b, comment: str = "") -> "Kernel":
        return self.alu("mul", rd, a, b, comment)

    def and_(self, rd, a, b, comment: str = "") -> "Kernel":
        return self.alu("and", rd, a, b, comment)

    def or_(self, rd, a, b, comment: str = "") -> "Kernel":
        return self.alu("or", rd, a, b, comment)

    def xor(self, rd, a, b, comment: str = "") -> "Kernel":
        return self.alu("xor", rd, a, b, comment)

    def shl(self, rd, a, b, comment: str = "") -> "Kernel":
        return self.alu("shl", rd, a, b, comment)

    def shr(self, rd, a, b, comment: str = "") -> "Kernel":
        return self.alu("shr", rd, a, b, comment)

    def load(self, rd: Var, addr, off: int = 0, size: int = 8, comment: str = "") -> "Kernel":
        """rd = [addr + off] (addr an integer or a register; physical)."""
        self._flush()
        self._use(addr)
        self._p.load(self._reg(rd), size=size, comment=comment, **self._addr(addr, off))
        self._def(rd)
        return self

    def store(self, addr, value, off: int = 0, size: int = 8, comment: str = "") -> "Kernel":
        """[addr + off] = value (an integer or a register)."""
        self._flush()
        self._use(addr)
        self._use(value)
        self._p.store(value=value, size=size, comment=comment, **self._addr(addr, off))
        return self

    def fadd(self, rd: Var, addr, value, off: int = 0, size: int = 8, comment: str = "") -> "Kernel":
        """Atomic fetch-and-add: rd = old [addr + off]; [addr + off] += value."""
        self._flush()
        self._use(addr)
        self._use(value)
        self._p.fadd(self._reg(rd), value=value, size=size, comment=comment, **self._addr(addr, off))
        self._def(rd)
        return self

    def pause(self, comment: str = "") -> "Kernel":
        self._flush()
        self._p.pause(comment=comment)
        return self

    def compute(self, cycles, comment: str = "") -> "Kernel":
        self._flush()
        self._use(cycles)
        self._p.compute(cycles, comment=comment)
        return self

    def mark(self, event: int, value=0, comment: str = "") -> "Kernel":
        self._flush()
        self._use(value)
        self._p.mark(event, value, comment=comment)
        return self

    def rdmsr(self, rd: Var, msr: int, comment: str = "") -> "Kernel":
        self._flush()
        self._p.rdmsr(self._reg(rd), msr, comment=comment)
        self._def(rd)
        return self

    def halt(self, comment: str = "") -> "Kernel":
        self._flush()
        self._p.halt(comment=comment)
        return self

    # ------------------------------------------------------------ control flow
    def _branch(self, a, op: str, b, target: str, negate: bool = False) -> None:
        """Branch to ``target`` if ``a op b`` holds (or, with negate, if it does not)."""
        if op not in CONDS:
            raise MksimError(f"{self.name}: condition {op!r}: must be one of {' '.join(CONDS)}")
        self._use(a)
        self._use(b)
        cond, swap = CONDS[op]
        a = self._reg(a)
        if swap:
            if isinstance(b, str):
                a, b = b, a
            else:                          # a > k  is  a >= k + 1;  a <= k  is  a < k + 1
                unsigned = op.endswith("u")
                k = b & isa.MASK64 if unsigned else isa.wrap64(b)
                if k == (isa.MASK64 if unsigned else (1 << 63) - 1):
                    # against the largest value: '>' never holds, '<=' always does
                    if op.startswith("<") != negate:
                        self._p.jmp(target)
                    return
                cond, b = NEGATE[cond], k + 1
        if negate:
            cond = NEGATE[cond]
        self._p.br(cond, a, b, target)

    @contextmanager
    def if_(self, a, op: str, b):
        """``with k.if_(x, "<", 5): ...`` runs the body when the condition holds; an ``else_`` may follow."""
        n = self._new("if")
        self._flush()
        self._branch(a, op, b, f"{n}.else", negate=True)
        yield
        self._flush()
        self._pending_else = (f"{n}.else", f"{n}.end")

    @contextmanager
    def else_(self):
        """The other branch of the ``if_`` block that closed just before."""
        if self._pending_else is None:
            raise MksimError(f"{self.name}: else_ must come right after an if_ block")
        els, end = self._pending_else
        self._pending_else = None
        self._p.jmp(end)
        self._p.label(els)
        yield
        self._flush()
        self._p.label(end)

    @contextmanager
    def loop(self):
        """An endless loop; leave it with ``break_`` / ``break_if``."""
        n = self._new("loop")
        self._flush()
        self._p.label(f"{n}.top")
        self._loops.append((f"{n}.end", f"{n}.top"))
        yield
        self._flush()
        self._loops.pop()
        self._p.jmp(f"{n}.top")
        self._p.label(f"{n}.end")

    @contextmanager
    def while_(self, a, op: str, b):
        """Test at the top; the body runs while ``a op b`` holds."""
        n = self._new("while")
        self._flush()
        self._p.label(f"{n}.top")
        self._branch(a, op, b, f"{n}.end", negate=True)
        self._loops.append((f"{n}.end", f"{n}.top"))
        yield
        self._flush()
        self._loops.pop()
        self._p.jmp(f"{n}.top")
        self._p.label(f"{n}.end")

    @contextmanager
    def for_range(self, i: Var, lo, hi, step: int = 1):
        """``i = lo; while i < hi (signed; > for a negative step): body; i += step``."""
        if not isinstance(step, int) or step == 0:
            raise MksimError(f"{self.name}: for_range step {step!r} must be a non-zero integer")
        n = self._new("for")
        self.set(i, lo)
        self._p.label(f"{n}.top")
        self._branch(i, "<" if step > 0 else ">", hi, f"{n}.end", negate=True)
        self._loops.append((f"{n}.end", f"{n}.next"))
        yield
        self._flush()
        self._loops.pop()
        self._p.label(f"{n}.next")
        self.add(i, i, step)
        self._p.jmp(f"{n}.top")
        self._p.label(f"{n}.end")

    def _loop(self, what: str) -> tuple[str, str]:
        if not self._loops:
            raise MksimError(f"{self.name}: {what} outside a loop")
        return self._loops[-1]

    def break_(self) -> "Kernel":
        self.p.jmp(self._loop("break_")[0])
        return self

    def break_if(self, a, op: str, b) -> "Kernel":
        self._flush()
        self._branch(a, op, b, self._loop("break_if")[0])
        return self

    def continue_(self) -> "Kernel":
        self.p.jmp(self._loop("continue_")[1])
        return self

    # ------------------------------------------------------------ routines
    def routine(self, name: str, args=(), body=None):
        """Define routine ``name`` with named arguments (in r1..): ``body(k, *args)`` emits its code into a
        frame of its own.  Usable as a decorator.  The routine is placed once, after the main code."""
        if body is None:
            return lambda fn: self.routine(name, args, fn)
        if not name or "." in name or not name.replace("_", "a").isalnum():
            raise MksimError(f"routine name {name!r}: letters, digits and _ only")
        if name in self._routines:
            raise MksimError(f"routine {name!r} defined twice")
        if len(args) > len(ARG_REGS):
            raise MksimError(f"routine {name!r}: {len(args)} arguments; at most {len(ARG_REGS)} (r1..r6)")
        self._routines[name] = (len(args), None)
        sub = Kernel(f"{self.name}.{name}", _parent=self)
        sub._routine = name
        body(sub, *(Var(r, a, "argument") for r, a in zip(ARG_REGS, args)))
        sub._flush()
        self._routines[name] = (len(args), sub._finish(name))
        return name

    def _finish(self, name: str) -> isa.Program:
        """Prologue, body, epilogue of routine ``name`` as one Program."""
        body = self._p
        ret = f"{name}.return"
        # a final 'ret' jump to the epilogue right below it is dropped
        last = len(body.ops) - 1
        if last >= 0 and body.ops[last][0] == isa.JMP and (last, 1, ret) in body._fix:
            body.ops.pop()
            body._fix.remove((last, 1, ret))
            body.comments.pop(last, None)
            for lab, at in body.labels.items():
                if at == last + 1:
                    body.labels[lab] = last
        saved = sorted(self._saved)
        out = isa.Program(name)
        out.label(name)
        if saved:
            out.sub("sp", "sp", 8 * len(saved), comment=f"save {', '.join(f'r{r}' for r in saved)}")
            for i, r in enumerate(saved):
                out.store(8 * i, f"r{r}", base="sp")
        _append(out, body)
        out.label(ret)
        for i, r in enumerate(saved):
            out.load(f"r{r}", 8 * i, base="sp")
        if saved:
            out.add("sp", "sp", 8 * len(saved))
        out.ret()
        return out

    def ret(self, value=None) -> "Kernel":
        """Return from the routine this frame is the body of (``value`` into r0 first)."""
        if self._routine is None:
            raise MksimError(f"{self.name}: ret outside a routine")
        if value is not None:
            self.set(Var(RET_REG, "result", "result", self._calls), value)
        self.p.jmp(f"{self._routine}.return")
        return self

    def call(self, name: str, *args) -> Var:
        """Call routine ``name`` with ``args`` (integers or registers) in r1..; returns its result (r0)."""
        self._flush()
        if name in self._routines and self._routines[name][0] != len(args):
            raise MksimError(f"{self.name}: call {name}: {len(args)} arguments, the routine takes "
                             f"{self._routines[name][0]}")
        if len(args) > len(ARG_REGS):
            raise MksimError(f"{self.name}: call {name}: at most {len(ARG_REGS)} arguments")
        written = []
        for i, (r, a) in enumerate(zip(ARG_REGS, args)):
            self._use(a)
            if isinstance(a, Var) and a.reg in written:
                raise MksimError(f"{self.name}: call {name}: argument {i + 1} ({a.name}, {a}) was already "
                                 f"overwritten by an earlier argument; copy it into a local first")
            if isinstance(a, str):
                if a != f"r{r}":
                    self._p.mov(f"r{r}", a)
            else:
                self._p.movi(f"r{r}", a)
            written.append(r)
        self._p.call(name)
        self._calls += 1
        return Var(RET_REG, f"{name}()", "result", self._calls)

    # ------------------------------------------------------------ output
    def program(self) -> isa.Program:
        """The main code followed by every routine, each once."""
        if self._parent is not None:
            raise MksimError(f"{self.name}: program() is for the main frame")
        self._flush()
        main = self._p
        n = len(main.ops)
        if self._routines and (n == 0 or main.ops[-1][0] not in (isa.HALT, isa.JMP, isa.JMPR, isa.RET)
                               or n in main.labels.values()):
            raise MksimError(f"{self.name}: the main code must end with halt() (or a jump) before its routines; "
                             f"it would run into them")
        out = isa.Program(self.name)
        _append(out, main)
        for name, (_, prog) in self._routines.items():
            if prog is None:
                raise MksimError(f"routine {name!r} is still being defined")
            _append(out, prog)
        return out

    def listing(self) -> str:
        """The generated program as readable assembly (``disasm``)."""
        return disasm(self.program())


def _append(dst: isa.Program, src: isa.Program) -> None:
    """Append src's ops with its labels unchanged (labels are unique by construction)."""
    base = len(dst.ops)
    for lab, at in src.labels.items():
        if lab in dst.labels:
            raise MksimError(f"{dst.name}: label {lab!r} defined twice")
        dst.labels[lab] = base + at
    dst.ops.extend(list(r) for r in src.ops)
    dst.comments.update({base + i: c for i, c in src.comments.items()})
    dst._fix.extend((base + i, f, lab) for i, f, lab in src._fix)
    dst.code_refs.extend(base + i for i in src.code_refs)


# ---------------------------------------------------------------- readable listing

_BR_NAMES = ("beq", "bne", "blt", "bge", "bltu", "bgeu")


def _r(i: int) -> str:
    return "sp" if i == isa.SP else f"r{i}"


def _mem(b: int, off: int) -> str:
    if b < 0:
        return f"[{off:#x}]"
    return f"[{_r(b)}{off:+#x}]" if off else f"[{_r(b)}]"


def format_op(row, target_name=str) -> str:
    """One op as assembly text, e.g. ``fadd r9, [0x31000], 1`` (``target_name`` names op indices)."""
    op, a, b, c, d, e, f, g = (int(x) for x in row)
    name = isa.OP_NAMES[op]
    val = (lambda x, imm: str(x) if imm else _r(x))
    if op == isa.MOVI:
        return f"movi    {_r(a)}, {b}"
    if op == isa.MOV:
        return f"mov     {_r(a)}, {_r(b)}"
    if isa.ADD <= op <= isa.SHR:
        return f"{name:7s} {_r(a)}, {_r(b)}, {val(c, d)}"
    if op == isa.BR:
        return f"{_BR_NAMES[a]:7s} {_r(b)}, {val(c, d)}, {target_name(e)}"
    if op in (isa.JMP, isa.CALL):
        return f"{name:7s} {target_name(a)}"
    if op in (isa.JMPR, isa.CALLR):
        return f"{name:7s} {_r(a)}"
    size = f" ({d} B)" if d != 8 else ""
    virt = " virt" if e & isa.F_VIRT else ""
    if op == isa.LOAD:
        return f"load    {_r(a)}, {_mem(b, c)}{size}{virt}"
    if op == isa.STORE:
        return f"store   {_mem(b, c)}, {val(a, e & isa.F_IMM)}{size}{virt}"
    if op in (isa.FADD, isa.XCHG):
        return f"{name:7s} {_r(a)}, {_mem(b, c)}, {val(f, e & isa.F_IMM)}{size}{virt}"
    if op == isa.CAS:
        return f"cas     {_r(a)}, {_mem(b, c)}, {_r(f)}, {_r(g)}{size}{virt}"
    if op == isa.SPIN:
        cond = list(isa.CONDS)[(e >> 2) & 7]
        return f"spin    {_r(a)}, {_mem(b, c)} until {cond} {val(f, e & isa.F_IMM)}{size}{virt}"
    if op == isa.RDMSR:
        return f"rdmsr   {_r(a)}, {b:#x}"
    if op == isa.COMPUTE:
        return f"compute {val(a, d)}"
    if op == isa.PART:
        return f"part    {a}, [{val(b, e & 1)}, {val(c, e & 2)}), owner {val(d, e & 4)}"
    if op == isa.ASSIGN:
        return f"assign  core {val(a, e & 1)}, kernel {val(b, e & 2)}"
    return f"{name:7s} " + " ".join(str(int(x)) for x in row[1:] if x) if any(row[1:]) else name


def disasm(p: isa.Program) -> str:
    """Readable listing: labels, one op a line as assembly text, comments."""
    at: dict[int, list[str]] = {}
    for lab, i in p.labels.items():
        at.setdefault(i, []).append(lab)
    arr = p.assemble()
    out = []
    for i, row in enumerate(arr):
        out += [f"{lab}:" for lab in at.get(i, [])]
        txt = f"  {i:4d}  {format_op(row, lambda t: at.get(t, [str(t)])[0])}"
        if i in p.comments:
            txt = f"{txt:44s} ; {p.comments[i]}"
        out.append(txt)
    return "\n".join(out)


# ---------------------------------------------------------------- kernel idioms

def ticket_lock(k: Kernel, lock, wait: str = "pause") -> None:
    """Take the ticket lock at ``lock`` (an address or a register): [lock+0] next ticket, [lock+8] now
    serving.  ``wait="pause"`` polls with a load and PAUSE, as kernels do; ``"spin"`` uses the SPIN op
    (the core sleeps until the line is written: the same coherence traffic, far fewer simulated ops)."""
    if wait not in ("pause", "spin"):
        raise MksimError(f"ticket_lock wait {wait!r}: must be 'pause' or 'spin'")
    my = k.local("ticket")
    k.fadd(my, lock, 1, off=LOCK_NEXT, comment="take a ticket")
    if wait == "spin":
        cur = k.local("serving")
        k._use(lock)
        k.p.spin_until(rd=cur, cond="eq", value=my, comment="sleep until it is served",
                       **Kernel._addr(lock, LOCK_SERVING))
    else:
        cur = k.local("serving")
        with k.loop():
            k.load(cur, lock, off=LOCK_SERVING, comment="now serving")
            k.break_if(cur, "==", my)
            k.pause()
    k.free(cur, my)


def ticket_unlock(k: Kernel, lock) -> None:
    """Release the ticket lock: serving += 1 by a plain load and store (only the holder writes it; x86
    stores are released in order, so no locked op is needed, as in Linux's x86 ticket unlock)."""
    t = k.local("serving")
    k.load(t, lock, off=LOCK_SERVING)
    k.add(t, t, 1)
    k.store(lock, t, off=LOCK_SERVING, comment="serve the next ticket")
    k.free(t)


def atomic_add(k: Kernel, addr, value=1, off: int = 0) -> None:
    """[addr + off] += value, atomically (a locked fetch-and-add; the old value is dropped)."""
    t = k.local("old")
    k.fadd(t, addr, value, off=off)
    k.free(t)


def ring_send(k: Kernel, ring, value, slots: int) -> None:
    """Single-producer ring at ``ring``: wait for a free slot, write ``value``, publish head + 1.
    Layout: [ring+0] head (producer count), [ring+64] tail (consumer count), slots of 8 bytes at +128."""
    if slots < 1 or slots & (slots - 1):
        raise MksimError(f"ring slots {slots!r}: must be a power of two")
    h, t, a = k.local("head"), k.local("tail"), k.local("slot")
    k.load(h, ring, off=RING_HEAD)
    with k.loop():
        k.load(t, ring, off=RING_TAIL)
        k.sub(a, h, t)
        k.break_if(a, "<u", slots)
        k.pause()
    _slot_offset(k, a, h, ring, slots)
    k.store(a, value, off=_slot_base(ring), comment="write the slot")
    k.add(h, h, 1)
    k.store(ring, h, off=RING_HEAD, comment="publish")
    k.free(h, t, a)


def ring_recv(k: Kernel, ring, into: Var, slots: int) -> None:
    """Single-consumer side of ``ring_send``: wait until head != tail, read the slot into ``into``,
    release it with tail + 1."""
    if slots < 1 or slots & (slots - 1):
        raise MksimError(f"ring slots {slots!r}: must be a power of two")
    h, t, a = k.local("head"), k.local("tail"), k.local("slot")
    k.load(t, ring, off=RING_TAIL)
    with k.loop():
        k.load(h, ring, off=RING_HEAD)
        k.break_if(h, "!=", t)
        k.pause()
    _slot_offset(k, a, t, ring, slots)
    k.load(into, a, off=_slot_base(ring), comment="read the slot")
    k.add(t, t, 1)
    k.store(ring, t, off=RING_TAIL, comment="release it")
    k.free(h, t, a)


def _slot_offset(k: Kernel, a: Var, index: Var, ring, slots: int) -> None:
    """a = (index % slots) * 8, plus the ring's base when it is in a register."""
    k.and_(a, index, slots - 1)
    k.shl(a, a, 3)
    if isinstance(ring, str):
        k.add(a, a, ring)


def _slot_base(ring) -> int:
    return RING_SLOTS if isinstance(ring, str) else ring + RING_SLOTS
