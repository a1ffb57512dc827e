"""Branch-free, SIMD-vectorisable elementary functions and a counter-based RNG.

Numba compiles calls to ``math.tanh``/``math.log`` into scalar libm calls, which stop LLVM from
vectorising the ensemble loops (our llvmlite has no SVML).  The functions here are written
with arithmetic, bit casts and selects only, so a loop over trajectories that calls them runs
4 doubles at a time on AVX2.  Accuracy is a few ulp (tested against NumPy in
``tests/test_vecmath.py``); NaN and ±inf propagate as in libm.

Random numbers are *counter based*: the k-th number of a stream is a pure function of
``(key, k)`` (two rounds of the SplitMix64 finaliser), so

* a trajectory's noise does not depend on how many trajectories run beside it, on the number of
  threads, or on how a run is split into chunks (a run continued from step ``t0`` draws exactly
  the numbers a single long run would have drawn);
* the same seed gives bit-identical results, which is what makes caching and tests sound.

Normals come from the Box–Muller transform of two 52-bit uniforms.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = [
    "vtanh",
    "vlog",
    "vexpm1",
    "mix64",
    "stream_key",
    "uniform_bits",
    "normal_pair",
    "normals",
    "uniforms",
]


@intrinsic
def _f2u(typingctx, x):
    """Reinterpret the bits of a float64 as uint64 (no conversion)."""
    if x != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.uint64(types.float64), codegen


@intrinsic
def _u2f(typingctx, x):
    """Reinterpret the bits of a uint64 as float64 (no conversion)."""
    if x != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.uint64), codegen


@intrinsic
def _fma(typingctx, a, b, c):
    """a·b + c with one rounding (llvm.fma: one vfmadd instruction on FMA hardware).

    Used only inside the polynomials below, so results stay reproducible and the model
    code outside keeps its exact symmetries (no blanket fastmath 'contract')."""
    if not (a == b == c == types.float64):
        return None

    def codegen(context, builder, signature, args):
        d = ir.DoubleType()
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(d, [d, d, d]),
                                            "llvm.fma.f64")
        return builder.call(fn, args)

    return types.float64(types.float64, types.float64, types.float64), codegen


_MAGIC = 6755399441055744.0  # 1.5 * 2**52: adding it rounds a |value| < 2**51 to an integer
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_SQRT2 = 1.4142135623730951
_HALF_PI = 1.5707963267948966
_EXP_ONE = np.uint64(0x3FF0000000000000)
_MANT = np.uint64(0x000FFFFFFFFFFFFF)
_U52 = np.uint64(52)
_U1023 = np.uint64(1023)

_JIT_INLINE = dict(nogil=True, cache=True, inline="always", error_model="numpy")


@njit(**_JIT_INLINE)
def vexpm1(x):
    """exp(x) − 1 for x in [−40, 0] to ~2 ulp (arguments below −40 give −1, as exp does).

    Cody–Waite reduction x = n ln2 + r, |r| ≤ ln2/2, Taylor polynomial of degree 13 for
    expm1(r) (truncation < 2e-17 relative), 2**n built from bits.
    """
    x = max(x, -40.0)
    kf = x * _LOG2E + _MAGIC
    nf = kf - _MAGIC
    ni = _f2u(kf) - _f2u(_MAGIC)  # two's complement of n (n ≤ 0)
    r = (x - nf * _LN2_HI) - nf * _LN2_LO
    p = 1.0 / 6227020800.0
    p = _fma(p, r, 1.0 / 479001600.0)
    p = _fma(p, r, 1.0 / 39916800.0)
    p = _fma(p, r, 1.0 / 3628800.0)
    p = _fma(p, r, 1.0 / 362880.0)
    p = _fma(p, r, 1.0 / 40320.0)
    p = _fma(p, r, 1.0 / 5040.0)
    p = _fma(p, r, 1.0 / 720.0)
    p = _fma(p, r, 1.0 / 120.0)
    p = _fma(p, r, 1.0 / 24.0)
    p = _fma(p, r, 1.0 / 6.0)
    p = _fma(p, r, 0.5)
    p = (p * r) * r + r  # expm1(r)
    scale = _u2f((ni + _U1023) << _U52)  # 2**n
    return scale * p + (scale - 1.0)


@njit(**_JIT_INLINE)
def vtanh(z):
    """tanh(z) to ~3 ulp, branch free: tanh|z| = −e/(2 + e) with e = expm1(−2|z|)."""
    e = vexpm1(-2.0 * abs(z))
    t = math.copysign(-e / (2.0 + e), z)
    return z if z != z else t


@njit(**_JIT_INLINE)
def vlog(u):
    """Natural log for normal positive u (Box–Muller uses u in [2**-52, 1]) to ~2 ulp.

    u = m 2**e with m in [√2/2, √2); log m = 2 atanh s, s = (m − 1)/(m + 1), |s| ≤ 0.172,
    series to s**23 (truncation < 1e-18).
    """
    bits = _f2u(u)
    e = np.float64(np.int64(bits >> _U52)) - 1023.0
    m = _u2f((bits & _MANT) | _EXP_ONE)
    big = m > _SQRT2
    m = 0.5 * m if big else m
    e = e + 1.0 if big else e
    s = (m - 1.0) / (m + 1.0)
    s2 = s * s
    p = 1.0 / 23.0
    p = _fma(p, s2, 1.0 / 21.0)
    p = _fma(p, s2, 1.0 / 19.0)
    p = _fma(p, s2, 1.0 / 17.0)
    p = _fma(p, s2, 1.0 / 15.0)
    p = _fma(p, s2, 1.0 / 13.0)
    p = _fma(p, s2, 1.0 / 11.0)
    p = _fma(p, s2, 1.0 / 9.0)
    p = _fma(p, s2, 1.0 / 7.0)
    p = _fma(p, s2, 1.0 / 5.0)
    p = _fma(p, s2, 1.0 / 3.0)
    logm = 2.0 * s + 2.0 * s * s2 * p
    return (e * _LN2_HI + logm) + e * _LN2_LO


@njit(**_JIT_INLINE)
def _sincos_turn(u):
    """(cos 2πu, sin 2πu) for u in [0, 1): quarter-turn reduction + Taylor on [−π/4, π/4]."""
    q4 = 4.0 * u
    kf = q4 + _MAGIC
    q = (_f2u(kf) - _f2u(_MAGIC)) & np.uint64(3)
    f = q4 - (kf - _MAGIC)  # in [−½, ½], exact
    a = f * _HALF_PI
    a2 = a * a
    s = -1.0 / 121645100408832000.0  # 1/19!
    s = _fma(s, a2, 1.0 / 355687428096000.0)
    s = _fma(s, a2, -1.0 / 1307674368000.0)
    s = _fma(s, a2, 1.0 / 6227020800.0)
    s = _fma(s, a2, -1.0 / 39916800.0)
    s = _fma(s, a2, 1.0 / 362880.0)
    s = _fma(s, a2, -1.0 / 5040.0)
    s = _fma(s, a2, 1.0 / 120.0)
    s = _fma(s, a2, -1.0 / 6.0)
    s = a + a * a2 * s
    c = 1.0 / 6402373705728000.0  # 1/18!
    c = _fma(c, a2, -1.0 / 20922789888000.0)
    c = _fma(c, a2, 1.0 / 87178291200.0)
    c = _fma(c, a2, -1.0 / 479001600.0)
    c = _fma(c, a2, 1.0 / 3628800.0)
    c = _fma(c, a2, -1.0 / 40320.0)
    c = _fma(c, a2, 1.0 / 720.0)
    c = _fma(c, a2, -1.0 / 24.0)
    c = _fma(c, a2, 0.5)
    c = 1.0 - a2 * c
    # rotate by q quarter turns: swap for odd q, then flip signs with the sign bit
    odd = (q & np.uint64(1)) == np.uint64(1)
    cq = s if odd else c
    sq = c if odd else s
    flip_c = ((q + np.uint64(1)) & np.uint64(2)) << np.uint64(62)  # q = 1, 2: cos < 0
    flip_s = (q & np.uint64(2)) << np.uint64(62)  # q = 2, 3: sin < 0
    return _u2f(_f2u(cq) ^ flip_c), _u2f(_f2u(sq) ^ flip_s)


_G1 = np.uint64(0x9E3779B97F4A7C15)
_G2 = np.uint64(0xD1B54A32D192ED03)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


@njit(**_JIT_INLINE)
def mix64(z):
    """SplitMix64 finaliser (Stafford's variant 13): a bijective 64-bit mixer."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def stream_key(seed: int, stream: int, index: int) -> np.uint64:
    """Key of random stream ``stream`` (an int tag) for item ``index`` under ``seed``."""
    return np.uint64(_stream_key(np.uint64(seed), np.uint64(stream), np.uint64(index)))


@njit(nogil=True, cache=True, error_model="numpy")
def _stream_key(seed, stream, index):
    k = mix64(np.uint64(seed) * _G1 + np.uint64(stream) * _G2 + np.uint64(1))
    return mix64(k ^ (np.uint64(index) * _G1 + _G2))


@njit(**_JIT_INLINE)
def uniform_bits(key, counter):
    """64 random bits, a pure function of (key, counter): two SplitMix64 rounds."""
    key = np.uint64(key)
    return mix64(mix64(key + np.uint64(counter) * _G1) ^ key)


@njit(**_JIT_INLINE)
def _unit(bits):
    """Uniform in [0, 1) with 52 random bits."""
    return _u2f((bits >> np.uint64(12)) | _EXP_ONE) - 1.0


@njit(**_JIT_INLINE)
def normal_pair(key, pair):
    """Standard normals number 2·pair and 2·pair + 1 of stream ``key`` (Box–Muller)."""
    u1 = 1.0 - _unit(uniform_bits(key, np.uint64(2) * np.uint64(pair)))  # (0, 1]
    u2 = _unit(uniform_bits(key, np.uint64(2) * np.uint64(pair) + np.uint64(1)))
    r = math.sqrt(-2.0 * vlog(u1))
    c, s = _sincos_turn(u2)
    return r * c, r * s


@njit(nogil=True, cache=True, error_model="numpy")
def normals(key, start, count):
    """Normals number ``start`` … ``start + count − 1`` of stream ``key`` (float64[count])."""
    out = np.empty(count)
    for i in range(count):
        c = start + i
        z0, z1 = normal_pair(key, c >> 1)
        out[i] = z0 if (c & 1) == 0 else z1
    return out


@njit(nogil=True, cache=True, error_model="numpy")
def uniforms(key, start, count):
    """Uniforms in [0, 1), number ``start`` … of stream ``key`` (float64[count])."""
    out = np.empty(count)
    for i in range(count):
        out[i] = _unit(uniform_bits(key, np.uint64(start + i)))
    return out
