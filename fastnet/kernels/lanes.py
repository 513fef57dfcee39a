"""Sums in an order fixed by the source, at SIMD speed: ``lane_sums``.

fastnet's kernels compile without ``reassoc`` (see ``config.FASTMATH``), so LLVM keeps
every sum in the order the source writes it, and a kernel rounds alike in each build
and in each caller it is compiled into.  The price is speed: LLVM vectorises a sum only
where it may reorder it, and Numba leaves LLVM's SLP vectoriser off, so a running sum
along a row waits for each add in turn.  ``lane_sums`` writes the vector loop out
instead, as LLVM IR: element ``m`` of the row goes to partial sum ``m % LANES``, the
partials are one vector, and they are combined pairwise at the end.  Every add is an
IEEE add in the order given: Numba gives the IR's adds its caller's fast-math flags,
and ``config.FASTMATH`` holds none that may reorder or fuse them (no ``reassoc``,
``arcp`` or ``contract``; tested), so the result is the same in every build and every
caller, on any CPU (LLVM splits the vector into the registers the CPU has; each lane's
arithmetic stays the same).  Measured alone on 2 AVX-512
cores (float32 rows, the same bits either way): 2.7x faster than a scalar loop of eight
partial sums on rows of 100, 3.7x on rows of 1,024; layer, group and instance norm
within 3-9% of their former builds that let LLVM reorder the sums.  Sixteen lanes (two vectors) measured slower than eight.

For a row whose length is not a multiple of ``LANES``, the caller adds the last
``len % LANES`` elements after ``lane_sums``, in order (``normalization.moments``).
With ``NUMBA_DISABLE_JIT=1`` (kernels run as Python, where an intrinsic cannot)
``lane_sums`` is a Python loop of the same order.
"""
import numba
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

LANES = 8

_F64 = ir.DoubleType()
_VECTOR = ir.VectorType(_F64, LANES)
_I32 = ir.IntType(32)


def _lanes_at(context, builder, array_type, array, i):
    """Elements ``i .. i + LANES - 1`` of a 1-D array as a vector of float64: one vector
    load from a C-contiguous array, one load per element through the stride (in bytes,
    maybe negative) otherwise."""
    element = context.get_data_type(array_type.dtype)
    if array_type.layout == "C":
        pointer = builder.bitcast(builder.gep(array.data, [i]),
                                  ir.PointerType(ir.VectorType(element, LANES)))
        vector = builder.load(pointer, align=1)  # Numba types unaligned arrays as aligned
    else:
        (stride,) = cgutils.unpack_tuple(builder, array.strides, 1)
        data = builder.bitcast(array.data, ir.IntType(8).as_pointer())
        vector = ir.Constant(ir.VectorType(element, LANES), ir.Undefined)
        for lane in range(LANES):
            offset = builder.mul(builder.add(i, ir.Constant(i.type, lane)), stride)
            pointer = builder.bitcast(builder.gep(data, [offset]), array.data.type)
            vector = builder.insert_element(vector, builder.load(pointer),
                                            ir.Constant(_I32, lane))
    return vector if element == _F64 else builder.fpext(vector, _VECTOR)


def _splat(builder, value):
    vector = builder.insert_element(ir.Constant(_VECTOR, ir.Undefined), value,
                                    ir.Constant(_I32, 0))
    return builder.shuffle_vector(vector, ir.Constant(_VECTOR, ir.Undefined),
                                  ir.Constant(ir.VectorType(_I32, LANES), [0] * LANES))


def _pairwise(builder, vector):
    """``((v0 + v1) + (v2 + v3)) + ((v4 + v5) + (v6 + v7))``, for ``LANES`` a power of 2."""
    terms = [builder.extract_element(vector, ir.Constant(_I32, k)) for k in range(LANES)]
    while len(terms) > 1:
        terms = [builder.fadd(terms[k], terms[k + 1]) for k in range(0, len(terms), 2)]
    return terms[0]


def _is_row(t):
    return isinstance(t, types.Array) and t.ndim == 1 and t.dtype in (types.float32,
                                                                        types.float64)


@intrinsic
def lane_sums(typingctx, a, a_shift, b, b_shift, body):
    """``(sum(a - a_shift), sum((a - a_shift) * (b - b_shift)))`` over the first ``body``
    elements of the 1-D float32 or float64 arrays ``a`` and ``b``, in float64: element
    ``m`` into partial sum ``m % LANES``, in order, the partials then combined pairwise.
    ``body`` must be a multiple of ``LANES`` and at most the length of both arrays (not
    checked: the caller computes it from the length)."""
    if not (_is_row(a) and _is_row(b) and isinstance(a_shift, types.Float)
            and isinstance(b_shift, types.Float) and isinstance(body, types.Integer)):
        return None
    signature = types.UniTuple(types.float64, 2)(a, a_shift, b, b_shift, body)

    def codegen(context, builder, sig, args):
        a_type, a_shift_type, b_type, b_shift_type, body_type = sig.args
        a_array = context.make_array(a_type)(context, builder, args[0])
        b_array = context.make_array(b_type)(context, builder, args[2])
        a_shifts = _splat(builder, context.cast(builder, args[1], a_shift_type,
                                                types.float64))
        b_shifts = _splat(builder, context.cast(builder, args[3], b_shift_type,
                                                types.float64))
        n = context.cast(builder, args[4], body_type, types.intp)
        zero = ir.Constant(_VECTOR, [0.0] * LANES)

        entry = builder.basic_block
        header = builder.append_basic_block("lanes.header")
        loop = builder.append_basic_block("lanes.body")
        done = builder.append_basic_block("lanes.done")
        builder.branch(header)
        builder.position_at_end(header)
        i = builder.phi(n.type)
        sums = builder.phi(_VECTOR)
        products = builder.phi(_VECTOR)
        i.add_incoming(ir.Constant(n.type, 0), entry)
        sums.add_incoming(zero, entry)
        products.add_incoming(zero, entry)
        builder.cbranch(builder.icmp_signed("<", i, n), loop, done)

        builder.position_at_end(loop)
        a_terms = builder.fsub(_lanes_at(context, builder, a_type, a_array, i), a_shifts)
        b_terms = builder.fsub(_lanes_at(context, builder, b_type, b_array, i), b_shifts)
        i.add_incoming(builder.add(i, ir.Constant(n.type, LANES)), loop)
        sums.add_incoming(builder.fadd(sums, a_terms), loop)
        products.add_incoming(builder.fadd(products, builder.fmul(a_terms, b_terms)),
                              loop)
        builder.branch(header)

        builder.position_at_end(done)
        return context.make_tuple(builder, sig.return_type,
                                  (_pairwise(builder, sums), _pairwise(builder, products)))

    return signature, codegen


def _lane_sums_python(a, a_shift, b, b_shift, body):
    """``lane_sums`` as Python, in the same order, for ``NUMBA_DISABLE_JIT=1`` (where an
    intrinsic cannot run): each add and multiply one IEEE float64 operation."""
    sums, products = [0.0] * LANES, [0.0] * LANES
    for m in range(body):
        a_term = float(a[m]) - float(a_shift)
        sums[m % LANES] += a_term
        products[m % LANES] += a_term * (float(b[m]) - float(b_shift))
    while len(sums) > 1:
        sums = [sums[k] + sums[k + 1] for k in range(0, len(sums), 2)]
        products = [products[k] + products[k + 1] for k in range(0, len(products), 2)]
    return sums[0], products[0]


if numba.config.DISABLE_JIT:
    lane_sums = _lane_sums_python
