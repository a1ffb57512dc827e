"""Utilities shared by the engine's models: numba options, the teacher, batch sampling, input checks.

Every engine module takes these from here (none defines its own copy, and none imports a private
name from another model's module: ``tests/test_engine_style.py`` checks both).

- :data:`_JIT` — the options of every ``@njit`` (``cache=True``: compiled code is kept on disk).
- The teacher T(x) of paper 000 eq. 5 / paper 001 §4 — one name table (:data:`TEACHERS`), one
  jitted scalar rule (:func:`_teacher`) that every kernel inlines, its array form
  (:func:`_apply_teacher`), and :func:`teacher_numpy`, the same formula with NumPy's tanh (an
  implementation independent of the kernels, kept for checks).
- :func:`_choose` — S distinct indices of range(n) from a counter-based stream (mini-batches).
- Input checks of the public functions (:func:`_positive`, :func:`_count`, :func:`_seed`,
  :func:`_theta_array`), raising ``ValueError`` with a sentence a student can act on.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._vecmath import uniform_bits, vtanh

#: options of every jitted engine function
_JIT = dict(nogil=True, cache=True, error_model="numpy")


# ---------------------------------------------------------------------------------------------
# the teacher T(x) = 2 tanh x − c tanh 4x
# ---------------------------------------------------------------------------------------------
#: teacher name → coefficient c of tanh(4x) in T(x) = 2 tanh x − c tanh 4x. The names are
#: 'paper000' (2tanh(x) − tanh(4x), paper 000 eq. 5) and 'paper001' (2tanh(x), paper 001 §4);
#: '2tanh' is accepted as an alias of 'paper001'.
TEACHERS = {"paper000": 1.0, "paper001": 0.0, "2tanh": 0.0}


def _teacher_id(name: str) -> float:
    """The coefficient c of ``name`` in :data:`TEACHERS` (the kernels take c, not the name)."""
    if name not in TEACHERS:
        raise ValueError(
            f"teacher must be one of {sorted(TEACHERS)} (2tanh(x) − tanh(4x) is 'paper000', "
            f"2tanh(x) is 'paper001'), not {name!r}."
        )
    return TEACHERS[name]


def _teacher_name(name: str) -> str:
    """The canonical name of a teacher: 'paper000' or 'paper001' ('2tanh' is an alias)."""
    return "paper000" if _teacher_id(name) else "paper001"


@njit(inline="always", **_JIT)
def _teacher(x, c4):
    """T(x) = 2 tanh x − c4 tanh 4x: c4 = 1 is paper 000's teacher, c4 = 0 paper 001's.

    tanh 4x comes from t = tanh x by the quadruple-angle formula
    tanh 4a = 4t(1 + t²)/(1 + 6t² + t⁴) (all terms positive: well conditioned, a few ulp; one
    division instead of a second exponential), and the teacher is chosen by a coefficient, not
    a branch, so the loop stays vectorised.
    """
    t = vtanh(x)
    q = t * t
    t4 = 4.0 * t * (1.0 + q) / (1.0 + q * (6.0 + q))
    return 2.0 * t - c4 * t4


@njit(**_JIT)
def _apply_teacher(x, c4):
    """:func:`_teacher` elementwise: an array of the shape of ``x`` (float64, any shape)."""
    out = np.empty_like(x)
    xf = x.ravel()
    of = out.ravel()
    for i in range(xf.size):
        of[i] = _teacher(xf[i], c4)
    return out


def teacher_numpy(x, name: str = "paper000") -> np.ndarray:
    """T(x) with NumPy's tanh (an implementation independent of the kernels, for checks)."""
    x = np.asarray(x, dtype=float)
    return 2.0 * np.tanh(x) - _teacher_id(name) * np.tanh(4.0 * x)


# ---------------------------------------------------------------------------------------------
# mini-batches
# ---------------------------------------------------------------------------------------------
@njit(**_JIT)
def _choose(key, counter0, n, S, out, perm):
    """S distinct indices of range(n), a pure function of (key, counter0), in O(S).

    Partial Fisher–Yates on ``perm`` (which must hold 0 … n−1 and is restored afterwards):
    swap i with a uniform r in [i, n) for i < S, read perm[:S], then undo the swaps.
    """
    for i in range(S):
        r = i + np.int64(uniform_bits(key, np.uint64(counter0 + i)) % np.uint64(n - i))
        out[i] = r  # remember the swap partner
        perm[i], perm[r] = perm[r], perm[i]
    for i in range(S - 1, -1, -1):
        r = out[i]
        chosen = perm[i]
        perm[i], perm[r] = perm[r], perm[i]
        out[i] = chosen


# ---------------------------------------------------------------------------------------------
# input checks shared by the public functions
# ---------------------------------------------------------------------------------------------
#: the largest count (steps, trajectories, data points, …) any engine function accepts: 10¹²
#: steps already take days; anything larger is a mistake or an attack, not a request
MAX_COUNT = 10**12
#: the largest record array (float64 entries) an engine function allocates: 2 GiB; Linux
#: overcommits memory, so a larger request would "succeed" and then kill the process when filled
MAX_ELEMENTS = 2**28


def _positive(value, name, allow_zero=False):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, not {value!r}.") from None
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        need = "≥ 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {need}; got {value!r}.")
    return v


def _count(value, name, minimum=0, maximum=MAX_COUNT):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            value = int(value)
        else:
            raise ValueError(f"{name} must be a whole number, not {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be ≥ {minimum}; got {value}.")
    if value > maximum:
        raise ValueError(f"{name} must be at most {maximum:.3g}; got {value:.3g}.")
    return int(value)


def _seed(seed):
    seed = _count(seed, "seed")
    if seed >= 2**63:
        raise ValueError("seed must be below 2**63.")
    return seed


def _theta_array(theta, name="theta"):
    """θ of the two-neuron student as a float array (..., 4), ordered (w1, w2, v1, v2), finite."""
    arr = np.asarray(theta, dtype=float)
    if arr.shape[-1:] != (4,):
        raise ValueError(f"{name} must have a last axis of length 4 ordered (w1, w2, v1, v2); "
                         f"got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf; start from finite parameters.")
    return arr
