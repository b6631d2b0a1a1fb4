"""A tuple passed by reference between compiled functions.

The engine keeps its state as tuples of numpy arrays (``engine.pack``,
``cpu.pack``).  numba passes a tuple argument by value, flattened: every
array becomes seven or more machine words, so a call that takes the CPU
state (54 arrays) and the memory-system state (23) pushes about 600 words.
Per executed op that cost more than the op itself once the engine's steps
became separate (not inlined) functions.

``ref(tup)`` stores the tuple once in the caller's stack frame and returns
a ``TupleRef``: one pointer.  ``r[K]`` with a constant ``K`` loads element
K through the pointer, so code written for the tuple (``cs[C_PC][c]``) runs
unchanged on the reference.  The arrays are borrowed, not reference
counted (the engine compiles with ``_nrt=False``); the reference is valid
only while the function that made it runs, so a ``TupleRef`` is never
returned or stored, only passed down.
"""
from __future__ import annotations

from numba import types
from numba.core import cgutils
from numba.core.datamodel import models
from numba.core.extending import intrinsic, lower_builtin, register_model
from numba.core.typing.templates import AbstractTemplate, infer, signature


class TupleRef(types.Type):
    """Pointer to a tuple of type ``tup`` in a compiled caller's frame."""

    def __init__(self, tup: types.BaseTuple):
        self.tup = tup
        super().__init__(name=f"TupleRef({tup})")

    @property
    def dtype(self) -> types.BaseTuple:      # what PointerModel points at
        return self.tup

    @property
    def key(self):
        return self.tup


register_model(TupleRef)(models.PointerModel)


@intrinsic
def ref(typingctx, tup):
    """A ``TupleRef`` to ``tup``, stored in the calling function's frame."""
    if isinstance(tup, TupleRef):
        def same(context, builder, sig, args):
            return args[0]
        return signature(tup, tup), same
    if not isinstance(tup, types.BaseTuple):
        return None

    def codegen(context, builder, sig, args):
        dm = context.data_model_manager[sig.args[0]]
        slot = cgutils.alloca_once(builder, dm.get_data_type())
        builder.store(dm.as_data(builder, args[0]), slot)
        return slot
    return signature(TupleRef(tup), tup), codegen


@infer
class _StaticGetItemTupleRef(AbstractTemplate):
    key = "static_getitem"

    def generic(self, args, kws):
        r, idx = args
        if isinstance(r, TupleRef) and isinstance(idx, int):
            try:
                return signature(r.tup.types[idx], *args)
            except IndexError:
                return None
        return None


@lower_builtin("static_getitem", TupleRef, types.IntegerLiteral)
def _static_getitem_tupleref(context, builder, sig, args):
    rty = sig.args[0]
    ptr, idx = args
    if idx < 0:
        idx += len(rty.tup)
    elem = cgutils.gep_inbounds(builder, ptr, 0, idx)
    val = builder.load(elem)
    # the slot is written once, by ref(), before any load through it: tell LLVM the element never
    # changes, so it can keep it in a register across stores and calls instead of reloading it
    val.set_metadata("invariant.load", builder.module.add_metadata([]))
    return context.data_model_manager[rty.tup.types[idx]].from_data(builder, val)
