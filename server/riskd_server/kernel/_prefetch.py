"""A software prefetch for numba kernels (LLVM's ``llvm.prefetch``: a hint, it never faults).

The check kernel looks up every order's hash buckets and rows in big tables; one cache miss at a
time, each costs a trip to DRAM. Prefetching the rows of a chunk of orders first lets the CPU
fetch them in parallel, and the checks then run on cached data.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def prefetch(typingctx, arr, row, col):
    """Hint the CPU to load the cache line of the 2-D arr[row, col] (no bounds check, no effect on values)."""
    if not (isinstance(arr, types.Array) and arr.ndim == 2):
        return None
    if not (isinstance(row, types.Integer) and isinstance(col, types.Integer)):
        return None
    sig = types.void(arr, row, col)

    def codegen(context, builder, signature, args):
        arrty, rowty, colty = signature.args
        ary = context.make_array(arrty)(context, builder, args[0])
        index = [
            context.cast(builder, args[1], rowty, types.intp),
            context.cast(builder, args[2], colty, types.intp),
        ]
        ptr = cgutils.get_item_pointer2(
            context,
            builder,
            ary.data,
            cgutils.unpack_tuple(builder, ary.shape),
            cgutils.unpack_tuple(builder, ary.strides),
            arrty.layout,
            index,
            wraparound=False,
            boundscheck=False,
        )
        i32 = ir.IntType(32)
        name = "llvm.prefetch.p0" if ptr.type.is_opaque else "llvm.prefetch.p0i8"
        if not ptr.type.is_opaque:
            ptr = builder.bitcast(ptr, ir.IntType(8).as_pointer())
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32]), name
        )
        builder.call(fn, [ptr, i32(0), i32(3), i32(1)])  # read, keep in all cache levels, data
        return context.get_dummy_value()

    return sig, codegen
