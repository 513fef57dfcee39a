"""fastnet.optimizers and the optimizer kernels against the NumPy reference, driven by
``cases.OPTIMIZER_CASES``: trajectories of params *and* state, the flat-arena path,
validation of hyperparameters and gradients, and the book's own inputs (``BOOK_INPUTS``:
Python floats, 0-d, int and float16 arrays, lists) against the reference."""
import inspect
import math
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from cases import (
    DECAYED_KEYS,
    DTYPES,
    OPTIMIZER_CASES,
    OPTIMIZERS,
    assert_bitwise_equal,
    assert_close,
    assert_traces_close,
    gradient_of,
    make_params,
    optimizer_state,
)

from fastnet import nets as fast_nets
from fastnet import optimizers as fast_optimizers
from fastnet.arena import ArenaDict, pack
from fastnet.reference import optimizers as reference_optimizers

STEPS = 100
STATEFUL = [pytest.param(c, id=c.id) for c in OPTIMIZER_CASES if c.state]


def run(optimizer, params, steps, start=0):
    """``steps`` updates of ``params`` with ``gradient_of`` (which reads the params)."""
    for step in range(start, start + steps):
        optimizer.update(params, gradient_of(params, step))
    return params


def assert_same_run(fast, fast_params, ref, ref_params, case, dtype):
    assert fast_params.keys() == ref_params.keys()
    for key in ref_params:
        assert_close(fast_params[key], ref_params[key], dtype, key)
    fast_state, ref_state = optimizer_state(fast, case), optimizer_state(ref, case)
    assert fast_state.keys() == ref_state.keys()
    if ref_state:  # SGD has none
        assert_traces_close(fast_state, ref_state, dtype)


# ------------------------------------------------------------------ trajectories

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", OPTIMIZERS)
def test_trajectory_matches_reference(case, dtype):
    fast, ref = case.make(fast_optimizers), case.make(reference_optimizers)
    fast_params, ref_params = make_params(dtype), make_params(dtype)
    start = {k: v.copy() for k, v in fast_params.items()}
    run(fast, fast_params, STEPS)
    run(ref, ref_params, STEPS)
    assert_same_run(fast, fast_params, ref, ref_params, case, dtype)
    assert all(not np.array_equal(fast_params[k], start[k]) for k in start)
    if hasattr(ref, "iter"):
        assert fast.iter == ref.iter == STEPS


def kernel_run(case, build, p, steps, weight_decay=0.0):
    """``steps`` updates of the flat array ``p`` by calling the kernel directly."""
    states = [np.zeros_like(p) for _ in case.state]
    scalar = p.dtype.type
    for step in range(steps):
        g = gradient_of({"p": p}, step)["p"]
        build(case.kernel)(p, g, *states, *map(scalar, case.scalars(case.kwargs, step + 1)),
                           scalar(weight_decay))
    return p, states


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", OPTIMIZERS)
def test_kernel_matches_reference(case, dtype):
    p = make_params(dtype, shapes={"p": (50,)})["p"]
    ref, ref_params = case.make(reference_optimizers), {"p": p.copy()}
    run(ref, ref_params, STEPS)
    p, states = kernel_run(case, lambda k: k, p, STEPS)
    assert_close(p, ref_params["p"], dtype, "p")
    for name, state in zip(case.state, states):
        assert_close(state, getattr(ref, name)["p"], dtype, name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", OPTIMIZERS)
def test_serial_and_parallel_builds_agree_bitwise(case, dtype):
    p = make_params(dtype, shapes={"p": (3001,)})["p"]
    serial_p, serial_states = kernel_run(case, lambda k: k, p.copy(), 20, weight_decay=0.01)
    parallel_p, parallel_states = kernel_run(case, lambda k: k.parallel_version, p.copy(), 20,
                                             weight_decay=0.01)
    assert_bitwise_equal(parallel_p, serial_p, "p")
    for name, a, b in zip(case.state, parallel_states, serial_states):
        assert_bitwise_equal(a, b, name)


# ------------------------------------------------------------------ flat arenas

def unpack(arena, views):
    return dict(ArenaDict(arena, views))


def flat_step(optimizer, arena, views, step, weight_decay=0.0, n_decayed=0):
    grads = gradient_of(unpack(arena, views), step)
    optimizer.update_flat(arena, pack(grads)[0], views, weight_decay, n_decayed)


def decayed_step(optimizer, params, step, weight_decay):
    """The book's path: weight decay added to the gradients of the weights."""
    grads = gradient_of(params, step)
    for key in DECAYED_KEYS:
        grads[key] = grads[key] + params[key].dtype.type(weight_decay) * params[key]
    optimizer.update(params, grads)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", OPTIMIZERS)
def test_update_flat_with_weight_decay_equals_per_key_update(case, dtype):
    weight_decay = 0.05
    arena, views = pack(make_params(dtype))
    n_decayed = sum(math.prod(views[k][1]) for k in DECAYED_KEYS)
    assert list(views)[:len(DECAYED_KEYS)] == list(DECAYED_KEYS)  # the decayed prefix
    fast, ref = case.make(fast_optimizers), case.make(reference_optimizers)
    ref_params = make_params(dtype)
    for step in range(30):
        flat_step(fast, arena, views, step, weight_decay, n_decayed)
        decayed_step(ref, ref_params, step, weight_decay)
    assert_same_run(fast, unpack(arena, views), ref, ref_params, case, dtype)


@pytest.mark.parametrize("case", STATEFUL)
def test_state_dicts_hold_live_views_after_update_flat(case):
    dtype = np.dtype(np.float32)
    arena, views = pack(make_params(dtype))
    fast, ref = case.make(fast_optimizers), case.make(reference_optimizers)
    ref_params = make_params(dtype)
    flat_step(fast, arena, views, 0)
    run(ref, ref_params, 1)
    held = {name: dict(getattr(fast, name)) for name in case.state}
    after_one = {name: {k: v.copy() for k, v in d.items()} for name, d in held.items()}
    for name in case.state:
        assert held[name].keys() == views.keys()
        for key, (_, shape) in views.items():
            assert held[name][key].shape == shape and held[name][key].dtype == dtype
    flat_step(fast, arena, views, 1)
    run(ref, ref_params, 1, start=1)
    for name in case.state:
        for key in views:
            entry = getattr(fast, name)[key]
            assert entry is held[name][key]  # the same view, updated by the second step
            assert not np.array_equal(entry, after_one[name][key])
            assert_close(entry, getattr(ref, name)[key], dtype, f"{name}/{key}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", OPTIMIZERS)
def test_update_flat_carries_state_from_per_key_updates(case, dtype):
    fast, ref = case.make(fast_optimizers), case.make(reference_optimizers)
    params, ref_params = make_params(dtype), make_params(dtype)
    run(fast, params, 3)
    arena, views = pack(params)
    for step in range(3, 6):
        flat_step(fast, arena, views, step)
    run(ref, ref_params, 6)
    assert_same_run(fast, unpack(arena, views), ref, ref_params, case, dtype)


def arena_dicts(dtype):
    """``make_params`` as a net holds them: ``ArenaDict`` params and zero gradients."""
    arena, layout = pack(make_params(dtype))
    return ArenaDict(arena, layout), ArenaDict(np.zeros_like(arena), layout)


def counting_update_flat(optimizer, monkeypatch):
    calls = []
    update_flat = optimizer.update_flat

    def counted(*args, **kwargs):
        calls.append(args)
        return update_flat(*args, **kwargs)

    monkeypatch.setattr(optimizer, "update_flat", counted)
    return calls


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", OPTIMIZERS)
def test_update_of_arena_dicts_is_one_flat_pass(case, dtype, monkeypatch):
    """A net's ``params``/``grads`` dicts: one ``update_flat`` pass, no weight decay,
    the trajectory of the per-key update."""
    fast, ref = case.make(fast_optimizers), case.make(reference_optimizers)
    params, grads = arena_dicts(dtype)
    ref_params = make_params(dtype)
    calls = counting_update_flat(fast, monkeypatch)
    for step in range(20):
        for key, grad in gradient_of(params, step).items():
            grads[key][...] = grad
        fast.update(params, grads)
        ref.update(ref_params, gradient_of(ref_params, step))
    assert len(calls) == 20
    assert all(args[0] is params.arena and args[1] is grads.arena and len(args) == 3
               for args in calls)
    assert params.intact() and grads.intact()
    assert_same_run(fast, params, ref, ref_params, case, dtype)


@pytest.mark.parametrize("change", ["rebound-param", "rebound-grad", "added-grad", "pickled",
                                    "other-layout", "longer-param-arena"])
def test_changed_arena_dicts_are_updated_per_key(change, monkeypatch):
    """Anything but two intact arena dicts of one layout goes key by key, so the arrays
    the dicts hold now are the ones updated."""
    dtype = np.dtype(np.float64)
    fast, ref = fast_optimizers.Adam(lr=0.1), reference_optimizers.Adam(lr=0.1)
    params, grads = arena_dicts(dtype)
    for key, grad in gradient_of(params, 0).items():
        grads[key][...] = grad
    if change == "rebound-param":
        params["W1"] = params["W1"].copy()
    elif change == "rebound-grad":
        grads["b1"] = grads["b1"] * 2
    elif change == "added-grad":
        grads["extra"] = np.zeros(3)
    elif change == "pickled":
        params = pickle.loads(pickle.dumps(params))
    elif change == "longer-param-arena":  # intact views, but the flat pass read past grads
        params = ArenaDict(np.concatenate([params.arena, np.full(1000, 7.0)]), params.layout)
    else:
        grads = ArenaDict(grads.arena, dict(grads.layout))
    assert (not (params.intact() and grads.intact()) or params.layout is not grads.layout
            or params.arena.size != grads.arena.size)
    ref_params = {k: v.copy() for k, v in params.items()}
    arena_before = params.arena.copy()
    calls = counting_update_flat(fast, monkeypatch)
    fast.update(params, grads)
    ref.update(ref_params, {k: grads[k] for k in ref_params})
    assert not calls
    for key in ref_params:
        assert_close(params[key], ref_params[key], dtype, key)
    if change == "rebound-param":  # the arena's own W1 was not the one updated
        w1 = params.views["W1"]
        np.testing.assert_array_equal(w1, arena_before[:w1.size].reshape(w1.shape))
    if change == "longer-param-arena":
        np.testing.assert_array_equal(params.arena[-1000:], 7.0)


def test_arena_dicts_over_a_2d_arena_are_updated_per_key_within_it():
    """A 2-D arena's views can be intact, but a kernel indexes its arena as 1-D: the
    flat pass wrote past the arena into the buffer it was cut from."""
    buffer = np.full(200, 7.0)
    layout = {"W": (0, (2, 9))}
    params = ArenaDict(buffer[:18].reshape(2, 9), layout)
    grads = ArenaDict(np.ones((2, 9)), layout)
    assert params.intact() and grads.intact()
    fast_optimizers.SGD(lr=1.0).update(params, grads)
    np.testing.assert_array_equal(buffer[:18], 6.0)
    np.testing.assert_array_equal(buffer[18:], 7.0)


def read_only(n):
    arena = np.ones(n)
    arena.flags.writeable = False
    return arena


@pytest.mark.parametrize("args, error, message", [
    ((np.ones((2, 9)), np.ones((2, 9)), {"W": (0, (2, 9))}), ValueError,
     "update_flat: params must be a 1-D C-contiguous arena, got shape (2, 9)"),
    ((np.ones(18)[::2], np.ones(9), {}), ValueError,
     "update_flat: params must be a 1-D C-contiguous arena, got shape (9,) (not contiguous)"),
    ((np.ones(9), np.ones(3), {}), ValueError,
     "update_flat: grads (3 float64) must be the size and dtype of params (9 float64)"),
    ((np.ones(9), np.ones(9, np.float32), {}), ValueError,
     "update_flat: grads (9 float32) must be the size and dtype of params (9 float64)"),
    ((np.ones(9), np.ones(9), {"W": (3, (3, 3))}), ValueError,
     "update_flat: view 'W' at offset 3, shape (3, 3), is outside the arena of 9"),
    ((np.ones(9), np.ones(9), {"W": (-1, (3,))}), ValueError,
     "update_flat: view 'W' at offset -1, shape (3,), is outside the arena of 9"),
    ((np.ones(9), np.ones(9), {}, 0.1, 10), ValueError,
     "update_flat: n_decayed must be in [0, 9], got 10"),
    ((read_only(9), np.ones(9), {}), ValueError, "update_flat: params is read-only"),
    ((np.ones(9), [1.0] * 9, {}), TypeError,
     "update_flat: grads must be a NumPy array, got list"),
    ((np.ones(9, np.float16), np.ones(9, np.float16), {}), TypeError,
     "update_flat: params must be float32 or float64, got dtype float16"),
    ((np.ones(9), np.ones(9, object), {}), TypeError,
     "update_flat: grads must be float32 or float64, got dtype object"),
], ids=["2-d", "strided", "shorter-grads", "other-dtype", "view-past-the-end",
        "negative-offset", "decayed-past-the-end", "read-only", "list", "float16", "object"])
@pytest.mark.parametrize("case", OPTIMIZERS)
def test_update_flat_refuses_what_its_kernel_would_index_past(case, args, error, message):
    """A kernel reads and writes its arenas by index up to the parameters' size: these
    read or wrote out of bounds, or leaked Numba's typing errors."""
    fast = case.make(fast_optimizers)
    before = [np.array(a, copy=True) for a in args[:2]]
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        fast.update_flat(*args)
    for a, b in zip(args[:2], before):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ in place

def non_contiguous_params(dtype):
    rng = np.random.default_rng(8)
    wide = rng.standard_normal((4, 12)).astype(dtype)
    return wide, {
        "fortran": np.asfortranarray(rng.standard_normal((5, 3)).astype(dtype)),
        "strided": wide[:, ::2],
        "transposed": np.ascontiguousarray(rng.standard_normal((3, 6)).astype(dtype)).T,
        "reversed": rng.standard_normal(7).astype(dtype)[::-1],
    }


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", OPTIMIZERS)
def test_non_contiguous_params_are_updated_in_place(case, dtype):
    wide, params = non_contiguous_params(dtype)
    gaps = wide[:, 1::2].copy()
    objects = dict(params)
    assert not any(p.flags.c_contiguous for p in params.values())
    ref_params = {k: np.ascontiguousarray(v).copy() for k, v in params.items()}
    fast, ref = case.make(fast_optimizers), case.make(reference_optimizers)
    run(fast, params, 5)
    run(ref, ref_params, 5)
    for key in params:
        assert params[key] is objects[key]
    assert_same_run(fast, params, ref, ref_params, case, dtype)
    np.testing.assert_array_equal(wide[:, 1::2], gaps)  # the elements between untouched
    np.testing.assert_array_equal(wide[:, ::2], params["strided"])


@pytest.mark.parametrize("case", OPTIMIZERS)
def test_gradients_of_the_other_precision_are_converted(case):
    fast, ref = case.make(fast_optimizers), case.make(reference_optimizers)
    params, ref_params = make_params(np.float64), make_params(np.float64)
    for step in range(5):
        grads = gradient_of(params, step)
        fast.update(params, {k: g.astype(np.float32) for k, g in grads.items()})
        ref.update(ref_params, {k: g.astype(np.float32).astype(np.float64)
                                for k, g in gradient_of(ref_params, step).items()})
    assert_same_run(fast, params, ref, ref_params, case, np.float64)
    assert all(p.dtype == np.float64 for p in params.values())


@pytest.mark.parametrize("case", OPTIMIZERS)
def test_make_optimizer_by_case_insensitive_name(case):
    for name in (case.name, case.name.upper(), case.name.lower()):
        optimizer = fast_optimizers.make_optimizer(name, **case.kwargs)
        assert type(optimizer) is getattr(fast_optimizers, case.name)
        reference = getattr(reference_optimizers, case.name)
        assert inspect.signature(type(optimizer)) == inspect.signature(reference)
        for key, value in case.kwargs.items():
            assert getattr(optimizer, key) == value


# ------------------------------------------------------------------ validation

BAD_HYPERPARAMETERS = [
    ("SGD", {"lr": 0}, ValueError, r"Invalid learning rate: 0"),
    ("SGD", {"lr": -0.1}, ValueError, r"Invalid learning rate: -0.1"),
    ("Momentum", {"lr": float("nan")}, ValueError, r"Invalid learning rate: nan"),
    ("Adam", {"lr": float("inf")}, ValueError, r"Invalid learning rate: inf"),
    ("AdaGrad", {"lr": -1e-3}, ValueError, r"Invalid learning rate"),
    ("Momentum", {"momentum": 1.0}, ValueError, r"Invalid momentum: 1.0 \(must be in \[0, 1\)\)"),
    ("Nesterov", {"momentum": -0.5}, ValueError, r"Invalid momentum: -0.5"),
    ("RMSprop", {"decay_rate": 1.0}, ValueError, r"Invalid decay_rate: 1.0"),
    ("RMSprop", {"decay_rate": float("nan")}, ValueError, r"Invalid decay_rate: nan"),
    ("Adam", {"beta1": 1.0}, ValueError, r"Invalid beta1: 1.0"),
    ("Adam", {"beta2": -0.1}, ValueError, r"Invalid beta2: -0.1"),
    ("AdamW", {"lr": -0.1}, ValueError,
     r"^Invalid learning rate: -0.1 \(must be a finite number > 0\)$"),
    ("AdamW", {"weight_decay": -0.01}, ValueError,
     r"^Invalid weight_decay: -0.01 \(must be a finite number >= 0\)$"),
    ("AdamW", {"weight_decay": float("inf")}, ValueError, r"^Invalid weight_decay: inf"),
    ("AdamW", {"eps": 0.0}, ValueError, r"^Invalid eps: 0.0 \(must be a finite number > 0\)$"),
    ("AdamW", {"beta2": 1.0}, ValueError, r"^Invalid beta2: 1.0 \(must be in \[0, 1\)\)$"),
    ("SGD", {"lr": "0.1"}, TypeError, r"real number"),
    ("Adam", {"lr": None}, TypeError, r"real number"),
    ("SGD", {"learning_rate": 0.1}, TypeError, r"unexpected keyword argument 'learning_rate'"),
]


@pytest.mark.parametrize("module", [fast_optimizers, reference_optimizers],
                         ids=["fastnet", "reference"])
@pytest.mark.parametrize("name, kwargs, error, match", BAD_HYPERPARAMETERS,
                         ids=[f"{n}-{k!r}" for n, k, _, _ in BAD_HYPERPARAMETERS])
def test_invalid_hyperparameters(module, name, kwargs, error, match):
    with pytest.raises(error, match=match):
        getattr(module, name)(**kwargs)


def _replace(key, value):
    return lambda grads: grads.__setitem__(key, value)


BAD_GRADS = [
    ("wrong-shape", _replace("b1", np.zeros((5, 1))), ValueError,
     r"grads\['b1'\] must have shape \(5,\), got \(5, 1\)"),
    ("transposed", _replace("W2", np.zeros((2, 3, 5))), ValueError,
     r"grads\['W2'\] must have shape \(5, 3, 2\)"),
    # The book's NumPy code raises these too (see BOOK_INPUTS); b2 fails after the
    # kernel's keys W1, W2, b1 were checked, Adam's step after it was counted.
    ("complex", _replace("b2", np.zeros(1, complex)), TypeError, r"Cannot cast ufunc"),
    ("list", _replace("b2", [0.0]), TypeError, r"sequence|unsupported operand"),
    ("missing", lambda grads: grads.pop("b2"), KeyError, r"b2"),
]


@pytest.mark.parametrize("bad", [pytest.param(b[1:], id=b[0]) for b in BAD_GRADS])
@pytest.mark.parametrize("case", OPTIMIZERS)
def test_bad_gradients_raise_and_change_nothing(case, bad):
    corrupt, error, match = bad
    fast = case.make(fast_optimizers)
    params = make_params(np.float64)
    run(fast, params, 2)
    params_before = {k: v.copy() for k, v in params.items()}
    state_before = optimizer_state(fast, case)
    grads = gradient_of(params, 2)
    corrupt(grads)
    with pytest.raises(error, match=match):
        fast.update(params, grads)
    for key in params:
        np.testing.assert_array_equal(params[key], params_before[key], err_msg=key)
    state_after = optimizer_state(fast, case)
    assert state_after.keys() == state_before.keys()
    for key in state_before:
        np.testing.assert_array_equal(state_after[key], state_before[key], err_msg=key)


# ------------------------------------------------------------------ the book's inputs

@dataclass(frozen=True)
class BookInput:
    """Parameters and a gradient rule of the kinds the book's code is called with; the
    reference (the book's NumPy code) decides the outcome: a result or an exception."""
    id: str
    params: Callable  # () -> dict
    grad: Callable    # (key, param, step) -> its gradient, of the case's kind
    rtol: float = 1e-12


def _book_df(key, p, step):
    """The book's ``df(x, y) = (x / 10, 2 y)``, the gradient of x**2 / 20 + y**2."""
    return 2.0 * p if key == "y" else p / 10.0


def _array_grad(dtype):
    return lambda key, p, step: (0.3 * np.asarray(p, np.float64) + 0.1 * (step + 1)).astype(dtype)


BOOK_INPUTS = [
    # optimizer_compare_naive.py: params = {'x': -7.0, 'y': 2.0}, grads from df(x, y)
    BookInput("python-floats", lambda: {"x": -7.0, "y": 2.0}, _book_df),
    BookInput("python-int-param", lambda: {"x": -7, "y": 2}, _book_df),  # int state: raises
    BookInput("python-int-grad", lambda: {"x": -7.0}, lambda key, p, step: step + 1),
    BookInput("numpy-scalars", lambda: {"x": np.float64(-7.0), "y": np.float64(2.0)}, _book_df),
    BookInput("0d-float64", lambda: {"x": np.array(-7.0), "y": np.array(2.0)},
              lambda key, p, step: float(_book_df(key, p, step))),
    BookInput("0d-float32", lambda: {"x": np.array(-7.0, np.float32)},
              lambda key, p, step: float(p) / 10, rtol=1e-6),
    BookInput("int-array-param", lambda: {"W": np.array([[3, 4], [5, 6]])},
              _array_grad(np.float64)),
    BookInput("int-array-grad", lambda: {"W": np.array([[3.0, 4.0], [5.0, 6.0]])},
              lambda key, p, step: np.array([[1, -2], [3, step]])),
    BookInput("bool-grad", lambda: {"b": np.array([3.0, 4.0])},
              lambda key, p, step: np.array([True, step % 2 == 0])),
    BookInput("float16-param", lambda: {"W": np.array([[1.5, -2.0], [0.25, 4.0]], np.float16)},
              _array_grad(np.float16), rtol=0),
    BookInput("float16-grad", lambda: {"W": np.array([[1.5, -2.0], [0.25, 4.0]])},
              _array_grad(np.float16)),
    BookInput("float16-grad-float32", lambda: {"W": np.array([1.5, -2.0], np.float32)},
              _array_grad(np.float16), rtol=1e-6),
    BookInput("scalar-grad-broadcast", lambda: {"b": np.array([3.0, 4.0, 5.0])},
              lambda key, p, step: float(np.mean(p)) / 10),
    BookInput("row-grad-broadcast", lambda: {"W": np.arange(6.0).reshape(2, 3)},
              lambda key, p, step: 0.1 * p.sum(axis=0)),
    BookInput("list-param", lambda: {"b": [3.0, 4.0]}, _array_grad(np.float64)),
    BookInput("list-grad", lambda: {"b": np.array([3.0, 4.0])},
              lambda key, p, step: [0.5, 0.25]),
    BookInput("complex-grad", lambda: {"b": np.array([3.0, 4.0])},
              lambda key, p, step: np.array([0.5j, 1.0])),
    # Arrays the kernel takes next to entries that need the book's rule, in one dict.
    BookInput("mixed", lambda: {"W": np.array([[1.0, 2.0]]), "x": 0.5,
                                "h": np.array([1.0, 2.0], np.float16)},
              lambda key, p, step: 0.2 * p + step),
]
BOOK = [pytest.param(case, id=case.id) for case in BOOK_INPUTS]


def book_run(optimizer, case, steps=6):
    """``(params, originals, error)`` after ``steps`` updates of ``case``'s params."""
    params = case.params()
    originals = dict(params)
    try:
        for step in range(steps):
            optimizer.update(params, {k: case.grad(k, p, step) for k, p in params.items()})
    except Exception as err:  # noqa: BLE001 - the book's outcome, compared below
        return params, originals, err
    return params, originals, None


def assert_same_value(actual, desired, rtol, name):
    assert type(actual) is type(desired), name
    if isinstance(desired, np.ndarray | np.generic):
        assert actual.dtype == desired.dtype and actual.shape == desired.shape, name
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(desired, np.float64),
                               rtol=rtol, atol=rtol * 1e-3, err_msg=name)


@pytest.mark.parametrize("case", BOOK)
@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_the_books_inputs_give_the_books_result(opt, case):
    fast, ref = opt.make(fast_optimizers), opt.make(reference_optimizers)
    ref_params, ref_originals, ref_error = book_run(ref, case)
    fast_params, fast_originals, fast_error = book_run(fast, case)
    if ref_error is not None:
        assert type(fast_error) is type(ref_error), (fast_error, ref_error)
        return
    assert fast_error is None, fast_error
    assert fast_params.keys() == ref_params.keys()
    for key, value in ref_params.items():
        assert_same_value(fast_params[key], value, case.rtol, key)
        # in place where the book updates in place, re-bound where it re-binds
        assert (fast_params[key] is fast_originals[key]) == (value is ref_originals[key]), key
    for name in opt.state:
        ref_state, fast_state = getattr(ref, name), getattr(fast, name)
        assert fast_state.keys() == ref_state.keys()
        for key in ref_state:
            np.testing.assert_allclose(np.asarray(fast_state[key], np.float64),
                                       np.asarray(ref_state[key], np.float64),
                                       rtol=case.rtol, atol=case.rtol * 1e-3,
                                       err_msg=f"{name}[{key!r}]")
    assert getattr(fast, "iter", None) == getattr(ref, "iter", None)


def test_a_failing_key_changes_nothing():
    """A key only the book's rule takes fails after the kernel's keys were checked: no
    parameter moves and Adam's step is not counted."""
    adam = fast_optimizers.Adam()
    good = np.array([1.0, 2.0])
    params = {"W": good, "x": 0.5, "n": np.array([1, 2])}
    grads = {"W": np.ones(2), "x": 0.1, "n": np.ones(2)}
    with pytest.raises(TypeError, match="Cannot cast ufunc"):
        adam.update(params, grads)
    np.testing.assert_array_equal(good, [1.0, 2.0])
    assert params["x"] == 0.5 and adam.iter == 0 and not adam.m and not adam.v


def test_kernel_state_from_a_book_step_is_converted():
    """A 0-d parameter whose Momentum velocity the book's rule left as a NumPy scalar
    (a float16 gradient) goes on in the kernel with that velocity."""
    fast, ref = fast_optimizers.Momentum(lr=0.1), reference_optimizers.Momentum(lr=0.1)
    fast_params, ref_params = {"x": np.array(-7.0)}, {"x": np.array(-7.0)}
    for grads in ({"x": np.float16(0.5)}, {"x": 0.25}, {"x": 0.125}):
        fast.update(fast_params, grads)
        ref.update(ref_params, grads)
    np.testing.assert_allclose(fast_params["x"], ref_params["x"], rtol=1e-12)
    np.testing.assert_allclose(fast.v["x"], ref.v["x"], rtol=1e-12)


# ------------------------------------------------------------------ AdamW's formula

def adamw_by_the_paper(p, grad, steps, lr, beta1, beta2, weight_decay, eps):
    """Algorithm 2 of Loshchilov and Hutter (2019) with PyTorch's lr-scaled decay,
    written out for one array: the trajectory of ``p`` after ``steps`` updates."""
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t in range(1, steps + 1):
        g = grad(p, t - 1)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat, v_hat = m / (1 - beta1 ** t), v / (1 - beta2 ** t)
        p = p - lr * (m_hat / (np.sqrt(v_hat) + eps) + weight_decay * p)
    return p


@pytest.mark.parametrize("module", [fast_optimizers, reference_optimizers],
                         ids=["fastnet", "reference"])
@pytest.mark.parametrize("kwargs", [{}, {"lr": 0.01, "beta1": 0.8, "beta2": 0.99,
                                         "weight_decay": 0.1, "eps": 1e-6}],
                         ids=["defaults", "set"])
def test_adamw_follows_its_formula_over_100_steps(module, kwargs):
    hyper = {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "weight_decay": 0.01, "eps": 1e-8,
             **kwargs}
    p = make_params(np.float64, shapes={"p": (40,)})["p"]
    expected = adamw_by_the_paper(p.copy(), lambda q, step: gradient_of({"p": q}, step)["p"],
                                  STEPS, **hyper)
    optimizer = module.AdamW(**kwargs)
    params = run(optimizer, {"p": p.copy()}, STEPS)
    np.testing.assert_allclose(params["p"], expected, rtol=1e-12, atol=1e-14)
    assert optimizer.iter == STEPS


@pytest.mark.parametrize("dtype", DTYPES)
def test_adamw_decay_is_decoupled_from_the_gradient(dtype):
    """With zero gradients Adam's term is zero and only the decay acts:
    ``p_t = (1 - lr * weight_decay)**t * p_0``, whatever eps."""
    fast = fast_optimizers.AdamW(lr=0.1, weight_decay=0.5)
    params = make_params(dtype)
    start = {k: v.copy() for k, v in params.items()}
    for _ in range(STEPS):
        fast.update(params, {k: np.zeros_like(v) for k, v in params.items()})
    for key in params:
        assert_close(params[key], (start[key] * 0.95 ** STEPS).astype(dtype), dtype, key)


def test_adamw_matches_torch():
    torch = pytest.importorskip("torch")
    hyper = {"lr": 0.01, "beta1": 0.8, "beta2": 0.99, "weight_decay": 0.1, "eps": 1e-6}
    params = make_params(np.float64)
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    reference = torch.optim.AdamW(list(tensors.values()), lr=hyper["lr"],
                                  betas=(hyper["beta1"], hyper["beta2"]), eps=hyper["eps"],
                                  weight_decay=hyper["weight_decay"])
    ours = fast_optimizers.AdamW(**hyper)
    for step in range(STEPS):
        grads = gradient_of(params, step)
        ours.update(params, grads)
        torch_grads = gradient_of({k: t.detach().numpy() for k, t in tensors.items()}, step)
        for key, tensor in tensors.items():
            # the 0-d "scale" gets a NumPy scalar, which torch.from_numpy refuses
            tensor.grad = torch.from_numpy(np.asarray(torch_grads[key]))
        reference.step()
    for key, tensor in tensors.items():
        np.testing.assert_allclose(params[key], tensor.detach().numpy(), rtol=1e-10,
                                   atol=1e-12, err_msg=key)


def test_a_step_refused_for_hyperparameters_that_overflow_is_not_counted():
    """Adam's step count (its bias correction) stays where it was, alone and in a
    population, and nothing is written."""
    from fastnet.population import Population

    for lr in (1e308, 1e39):  # 1e39: its bias-corrected step size (3.2e38) fits float32
        opt = fast_optimizers.Adam(lr=lr)
        param = np.zeros(3, np.float32)
        with pytest.raises(ValueError, match=re.escape(f"Adam's lr={lr:g} does not fit")):
            opt.update({"w": param}, {"w": np.ones(3, np.float32)})
        assert opt.iter == 0 and not param.any()
        pop = Population(4, [3], 2, [{"seed": 0}, {"seed": 1, "lr": lr}], optimizer="adam")
        x, t = np.ones((2, 4), np.float32), np.array([0, 1])
        with pytest.raises(ValueError, match=re.escape(f"member 1: Adam's lr={lr:g} does")):
            pop.train_step(x, t)
        assert [pop.member_optimizer(k).iter for k in range(2)] == [0, 0]


@pytest.mark.parametrize("kind", [float, np.float64, np.array])
def test_a_learning_rate_at_float32s_edge_is_refused_exactly_where_it_would_be_inf(kind):
    """The hyperparameters are checked at every step without NumPy for plain floats:
    the same answer as NumPy's conversion on both sides of float32's overflow point
    (its largest value plus half a step rounds to inf)."""
    inf_from = 2.0 ** 128 - 2.0 ** 103
    with np.errstate(over="ignore"):
        assert np.isinf(np.float32(inf_from)) and np.isfinite(
            np.float32(math.nextafter(inf_from, 0)))
    for lr, fits in ((math.nextafter(inf_from, 0), True), (inf_from, False)):
        param = np.zeros(2, np.float32)
        opt = fast_optimizers.SGD(kind(lr))
        if fits:
            opt.update({"w": param}, {"w": np.ones(2, np.float32)})
            assert param.tolist() == [-np.finfo(np.float32).max] * 2
        else:
            with pytest.raises(ValueError, match="SGD's lr=.* does not fit float32"):
                opt.update({"w": param}, {"w": np.ones(2, np.float32)})
            assert not param.any()


def test_a_0d_array_is_a_learning_rate():
    """What ``np.where`` or a reduction gives a hand-written schedule is a number."""
    opt = fast_optimizers.SGD(np.array(0.5))
    opt.lr = np.array(0.25)
    params = {"w": np.zeros(2)}
    opt.update(params, {"w": np.ones(2)})
    assert params["w"].tolist() == [-0.25, -0.25]


def test_a_weight_decay_that_overflows_a_population_is_refused_before_the_step():
    from fastnet.population import Population

    pop = Population(4, [3], 2, [{"seed": 0, "weight_decay_lambda": 1e40}], optimizer="adam")
    with pytest.raises(ValueError, match="the members' weight_decay_lambda"):
        pop.train_step(np.ones((2, 4), np.float32), np.array([0, 1]))
    assert pop.member_optimizer(0).iter == 0


def test_a_net_refuses_an_overflowing_lr_before_its_pass_moves_anything():
    """Adam's lr of 1e40 in float32: refused before the fused pass, so batch norm's
    running statistics and the dropout streams stay where they were."""
    from fastnet.nets import MultiLayerNetExtend

    net = MultiLayerNetExtend(4, [3], 2, use_batchnorm=True, use_dropout=True, seed=0)
    opt = fast_optimizers.Adam(lr=1e40)
    before = net.layers["BatchNorm1"].running_mean.copy(), net.layers["Dropout1"].step
    with pytest.raises(ValueError, match=r"Adam's lr=1e\+40 does not fit float32"):
        net.train_step(np.ones((2, 4), np.float32), np.array([0, 1]), opt)
    assert (net.layers["BatchNorm1"].running_mean == before[0]).all()
    assert net.layers["Dropout1"].step == before[1] and opt.iter == 0


@pytest.mark.parametrize("name", ["SGD", "Adam"])
def test_a_net_names_a_weight_decay_that_overflows_its_dtype(name):
    """In the kernel (SGD) or in the optimizer's pass (Adam): the message names the
    weight decay, and Adam's step is not counted."""
    from fastnet.nets import MultiLayerNet

    net = MultiLayerNet(4, [3], 2, weight_decay_lambda=1e40, seed=0)
    opt = getattr(fast_optimizers, name)()
    with pytest.raises(ValueError, match="weight decay"):
        net.train_step(np.ones((2, 4), np.float32), np.array([0, 1]), opt)
    assert getattr(opt, "iter", 0) == 0



def test_adamw_eps_that_is_zero_in_the_dtype_is_refused():
    """AdamW's eps of 1e-50 is 0 in float32, and a zero gradient then made 0/0 = NaN
    parameters: refused by name before the step begins; float64 takes it."""
    opt = fast_optimizers.AdamW(eps=1e-50)
    param = np.ones(3, np.float32)
    with pytest.raises(ValueError, match=r"AdamW's eps=1e-50 is 0 in float32 \(its smallest "
                                         r"positive value is 1\.4e-45\): a zero gradient"):
        opt.update({"w": param}, {"w": np.zeros(3, np.float32)})
    assert opt.iter == 0 and (param == 1).all()
    wide = np.ones(3)
    opt.update({"w": wide}, {"w": np.zeros(3)})
    assert np.isfinite(wide).all()


@pytest.mark.parametrize("make, given", [
    (lambda: fast_optimizers.Nesterov(momentum=1e-30), {}),  # its square is 0 in float32
    (lambda: fast_optimizers.Adam(beta1=1e-50), {}),  # the kernel takes 1 - beta1
    (lambda: fast_optimizers.SGD(lr=1e-50), {}),  # a schedule's lr decays that far
    (lambda: fast_optimizers.Momentum(), {"weight_decay_lambda": 1e-50}),
])
def test_values_that_flush_to_zero_in_float32_step_as_float32_rounds_them(make, given):
    """Only an overflow, and AdamW's eps of 0, are refused: a value that float32 rounds
    to 0 steps as the same update in float64 rounds to float32 (train_step of a net
    and update of its dicts alike)."""
    steps = []
    for dtype in (np.float32, np.float64):
        net = fast_nets.MultiLayerNet(4, [5], 3, dtype=dtype, seed=0, **given)
        x, t = np.linspace(-1, 1, 24).reshape(6, 4), np.arange(6) % 3
        opt = make()
        net.train_step(x, t, opt)
        opt.update(net.params, net.gradient(x, t))
        steps.append(net.params["W1"])
    np.testing.assert_allclose(*steps, rtol=1e-5, atol=1e-6)


def test_a_refused_state_entry_leaves_the_step_uncounted_and_the_net_unmoved():
    """A per-key state entry the user set to a shape that does not broadcast is refused
    by name before anything moves: Adam's count, the parameters and batch norm's
    running statistics stay, on every path (train_step, update of the net's dicts,
    update of plain dicts)."""
    x, t = np.linspace(-1, 1, 32).reshape(8, 4), np.arange(8) % 3
    net = fast_nets.MultiLayerNetExtend(4, [6], 3, use_batchnorm=True, seed=1)
    opt = fast_optimizers.Adam()
    net.train_step(x, t, opt)
    opt.m["W1"] = np.zeros((2, 2), np.float32)
    before = [a.copy() for a in (*net.params.values(), net._running)]
    message = r"Adam's m\['W1'\] has shape \(2, 2\), which does not broadcast to its " \
              r"parameter's shape \(4, 6\)"
    with pytest.raises(ValueError, match=message):
        net.train_step(x, t, opt)
    grads = net.gradient(x, t)
    before = [a.copy() for a in (*net.params.values(), net._running)]
    with pytest.raises(ValueError, match=message):
        opt.update(net.params, grads)
    after = [*net.params.values(), net._running]
    assert opt.iter == 1 and all((a == b).all() for a, b in zip(before, after))
    opt.m["W1"] = 0.0  # a scalar broadcasts, as the book's state may be one
    net.train_step(x, t, opt)
    assert opt.iter == 2

    plain = fast_optimizers.Adam()
    p, g = {"a": np.ones(3), "b": np.ones(2)}, {"a": np.ones(3), "b": np.ones(2)}
    plain.update(p, g)
    kept = p["a"].copy()
    plain.m["b"] = np.zeros(5)
    with pytest.raises(ValueError, match=r"Adam's m\['b'\] has shape \(5,\)"):
        plain.update(p, g)
    assert plain.iter == 1 and (p["a"] == kept).all()


def test_train_step_takes_a_subclass_update_flat():
    """A subclass that overrides update_flat (clipping the gradients) is stepped by it
    in train_step, as the module doc says, and matches the same clipping by hand."""
    x, t = np.linspace(-3, 3, 32).reshape(8, 4), np.arange(8) % 3
    calls = []

    class Clipped(fast_optimizers.Adam):
        def update_flat(self, params, grads, *args, **kwargs):
            calls.append(1)
            np.clip(grads, -1e-3, 1e-3, out=grads)
            super().update_flat(params, grads, *args, **kwargs)

    net = fast_nets.MultiLayerNet(4, [5], 3, seed=0)
    by_hand = fast_nets.MultiLayerNet(4, [5], 3, seed=0)
    net.train_step(x, t, Clipped())
    by_hand.gradient(x, t)
    np.clip(by_hand.grads.arena, -1e-3, 1e-3, out=by_hand.grads.arena)
    opt = fast_optimizers.Adam()
    opt.update(by_hand.params, by_hand.grads)
    assert calls == [1]
    np.testing.assert_allclose(net.params["W1"], by_hand.params["W1"], rtol=1e-6)
