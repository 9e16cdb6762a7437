"""The five exercises against independent oracles: the definition of overflow,
torch.softmax / log_softmax / logsumexp / F.cross_entropy, einsum, gradcheck."""

import math
import sys

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from solutions.exercises import (
    bayes_decision,
    decide_with_reject,
    expected_cost,
    full_log_prob,
    log_softmax,
    naive_cross_entropy_breaks,
    naive_softmax_breaks,
    overflow_threshold,
    softmax_cross_entropy,
    stable_softmax,
    two_level_log_prob,
)
from solutions.softmax_regression import cross_entropy, softmax

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
TOL = {torch.float16: (5e-3, 1e-3), torch.bfloat16: (4e-2, 1e-2),
       torch.float32: (1e-5, 1e-6), torch.float64: (1e-10, 1e-12)}


def assert_matches(actual, oracle64, dtype):
    """Compare against a float64 oracle cast to `dtype` (checks dtype and shape too)."""
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(actual, oracle64.to(dtype), rtol=rtol, atol=atol)


def randn(*shape, dtype=torch.float64, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(*shape, generator=g, dtype=torch.float64)).to(dtype)


def labels(n, q, seed=0):
    return torch.randint(0, q, (n,), generator=torch.Generator().manual_seed(seed))


def extreme_logits(dtype):
    """Rows with ±1e4, a -inf entry, and rows ~1e4 apart; representable in every dtype."""
    return torch.tensor([[1e4, 0.0, -1e4],
                         [1e4, 1e4, 1e4 - 1],
                         [-1e4, -1e4 + 2, -1e4 + 1],
                         [0.0, float("-inf"), 1.0],
                         [-1e4, 1e4, float("-inf")]], dtype=dtype)


def finite_logits_rows():
    """Hypothesis: 2-D lists of finite float64 logits in [-1e4, 1e4]."""
    value = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False)
    return st.integers(1, 5).flatmap(
        lambda q: st.lists(st.lists(value, min_size=q, max_size=q), min_size=1, max_size=4))


# Exercise 1: overflow_threshold, naive_softmax_breaks

def next_below(x, dtype):
    """The largest value of `dtype` below the positive value x."""
    t = torch.tensor(x, dtype=dtype)
    if dtype in (torch.float16, torch.bfloat16):
        # nextafter has no CPU kernel for these; for a positive float, bits - 1 is the next value down.
        return (t.view(torch.int16) - 1).view(dtype)
    return torch.nextafter(t, torch.tensor(0.0, dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_overflow_threshold_is_smallest_overflowing_value(dtype):
    x = overflow_threshold(dtype)
    t = torch.tensor(x, dtype=dtype)
    assert t.item() == x  # a value of the dtype
    assert torch.isinf(torch.exp(t)).item()
    below = next_below(x, dtype)
    assert below.item() < x
    assert torch.isfinite(torch.exp(below)).item()


@pytest.mark.parametrize("dtype", DTYPES)
def test_overflow_threshold_near_log_of_max(dtype):
    x = overflow_threshold(dtype)
    ulp = x - next_below(x, dtype).item()
    assert abs(x - math.log(torch.finfo(dtype).max)) <= ulp


def test_overflow_threshold_float64_matches_math():
    x = overflow_threshold(torch.float64)
    log_max = math.log(sys.float_info.max)
    assert abs(x - log_max) <= 2 * math.ulp(log_max)
    assert math.isfinite(math.exp(math.nextafter(x, 0.0)))
    with pytest.raises(OverflowError):
        math.exp(x)


def test_exp_50_overflows_only_in_float16():
    assert overflow_threshold(torch.float16) < 50 < overflow_threshold(torch.float32)
    assert overflow_threshold(torch.bfloat16) > 50
    assert overflow_threshold(torch.float32) < overflow_threshold(torch.float64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_naive_softmax_breaks(dtype):
    X = naive_softmax_breaks(dtype)
    assert X.dtype == dtype and X.dim() == 2 and X.shape[0] == 1
    assert torch.isfinite(X).all()
    assert torch.isnan(softmax(X)).any()
    assert not torch.isnan(torch.softmax(X, dim=1)).any()
    assert not torch.isnan(stable_softmax(X)).any()
    assert_matches(stable_softmax(X), torch.softmax(X.double(), dim=1), dtype)


# Exercise 2: log_softmax, naive_cross_entropy_breaks

@pytest.mark.parametrize("dtype", DTYPES)
def test_log_softmax_matches_torch(dtype):
    O = randn(7, 4, dtype=dtype, scale=3)
    assert_matches(log_softmax(O), torch.log_softmax(O.double(), dim=1), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_log_softmax_extremes(dtype):
    O = extreme_logits(dtype)
    out = log_softmax(O)
    assert torch.isfinite(out[torch.isfinite(O)]).all()
    assert torch.isneginf(out[torch.isneginf(O)]).all()
    assert_matches(out, torch.log_softmax(O.double(), dim=1), dtype)


@pytest.mark.parametrize("shape", [(1, 5), (4, 1), (0, 3)])
def test_log_softmax_one_row_one_column_empty(shape):
    O = randn(*shape, scale=100)
    torch.testing.assert_close(log_softmax(O), torch.log_softmax(O, dim=1))


@settings(max_examples=40, deadline=None)
@given(finite_logits_rows())
def test_log_softmax_finite_for_finite_input(rows):
    O = torch.tensor(rows, dtype=torch.float64)
    out = log_softmax(O)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, torch.log_softmax(O, dim=1))


def test_log_softmax_per_row_shift_invariance():
    O = torch.round(randn(3, 5, dtype=torch.float32, seed=3) * 256) / 256
    shift = torch.tensor([[1000.0], [-1000.0], [0.0]])  # exact in float32 for these O
    torch.testing.assert_close(log_softmax(O + shift), torch.log_softmax(O, dim=1))


def test_log_softmax_gradcheck():
    O = randn(3, 4, seed=4).requires_grad_(True)
    assert torch.autograd.gradcheck(log_softmax, (O,))


def test_naive_cross_entropy_breaks():
    y_hat, y = naive_cross_entropy_breaks()
    assert y_hat.dim() == 2 and y.shape == (y_hat.shape[0],)
    assert not y.is_floating_point() and ((0 <= y) & (y < y_hat.shape[1])).all()
    # valid probabilities: the failure is the log, not the input
    assert torch.isfinite(y_hat).all() and ((0 <= y_hat) & (y_hat <= 1)).all()
    torch.testing.assert_close(y_hat.double().sum(1), torch.ones(len(y), dtype=torch.float64))
    assert not torch.isfinite(cross_entropy(y_hat, y)).all()


def test_loss_from_logits_finite_where_naive_pipeline_breaks():
    O = torch.tensor([[0.0, -200.0], [1e4, -1e4]])
    y = torch.tensor([1, 1])
    assert torch.isinf(cross_entropy(softmax(O), y)).all()
    out = softmax_cross_entropy(O, y)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, F.cross_entropy(O, y, reduction="none"))


# Exercise 3: stable_softmax, softmax_cross_entropy

@pytest.mark.parametrize("dtype", DTYPES)
def test_stable_softmax_matches_torch(dtype):
    O = randn(6, 10, dtype=dtype, scale=4)
    out = stable_softmax(O)
    assert_matches(out, torch.softmax(O.double(), dim=1), dtype)
    rtol, _ = TOL[dtype]
    torch.testing.assert_close(out.double().sum(1), torch.ones(6, dtype=torch.float64),
                               rtol=0, atol=10 * rtol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_stable_softmax_extremes(dtype):
    O = extreme_logits(dtype)
    out = stable_softmax(O)
    assert not torch.isnan(out).any()
    assert (out[torch.isneginf(O)] == 0).all()
    assert_matches(out, torch.softmax(O.double(), dim=1), dtype)
    rtol, _ = TOL[dtype]
    torch.testing.assert_close(out.double().sum(1), torch.ones(5, dtype=torch.float64),
                               rtol=0, atol=10 * rtol)


@pytest.mark.parametrize("shape", [(1, 7), (5, 1), (0, 4)])
def test_stable_softmax_one_row_one_column_empty(shape):
    O = randn(*shape, scale=1e3)
    torch.testing.assert_close(stable_softmax(O), torch.softmax(O, dim=1))


def global_max_softmax(O):
    """The tempting wrong fix: one max over the whole tensor."""
    E = torch.exp(O - O.max())
    return E / E.sum(1, keepdim=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_stable_softmax_uses_per_row_max(dtype):
    # Rows ~1e3 apart: below a global max, the second row underflows to 0 / 0.
    O = torch.tensor([[0.0, 1.0, 2.0], [-1000.0, -999.0, -998.0]], dtype=dtype)
    assert torch.isnan(global_max_softmax(O)[1]).all()
    out = stable_softmax(O)
    torch.testing.assert_close(out, torch.softmax(O, dim=1))
    torch.testing.assert_close(out[1], out[0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_stable_softmax_per_row_shift_invariance(dtype):
    O = torch.round(randn(3, 6, dtype=dtype, seed=5) * 256) / 256
    shift = torch.tensor([[1000.0], [-1000.0], [88.0]], dtype=dtype)  # exact sums
    torch.testing.assert_close(stable_softmax(O + shift), torch.softmax(O, dim=1))


def test_stable_softmax_float16_wide_rows():
    O = randn(2, 2000, dtype=torch.float16, scale=8, seed=6)
    out = stable_softmax(O)
    assert out.dtype == torch.float16 and not torch.isnan(out).any()
    torch.testing.assert_close(out.double().sum(1), torch.ones(2, dtype=torch.float64),
                               rtol=0, atol=2e-2)
    assert_matches(out, torch.softmax(O.double(), dim=1), torch.float16)


@settings(max_examples=40, deadline=None)
@given(finite_logits_rows())
def test_stable_softmax_property(rows):
    O = torch.tensor(rows, dtype=torch.float64)
    out = stable_softmax(O)
    torch.testing.assert_close(out, torch.softmax(O, dim=1))
    torch.testing.assert_close(out.sum(1), torch.ones(len(rows), dtype=torch.float64))


def test_stable_softmax_gradcheck():
    O = randn(3, 4, seed=7).requires_grad_(True)
    assert torch.autograd.gradcheck(stable_softmax, (O,))


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_matches_torch(dtype):
    O = randn(8, 5, dtype=dtype, scale=3, seed=8)
    y = labels(8, 5, seed=9)
    out = softmax_cross_entropy(O, y)
    assert out.shape == (8,)
    assert_matches(out, F.cross_entropy(O.double(), y, reduction="none"), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_extremes(dtype):
    O = extreme_logits(dtype)[:3]  # finite rows only
    y = torch.tensor([2, 0, 1])
    out = softmax_cross_entropy(O, y)
    assert torch.isfinite(out).all()
    assert_matches(out, F.cross_entropy(O.double(), y, reduction="none"), dtype)


@pytest.mark.parametrize("shape", [(1, 6), (3, 1), (0, 4)])
def test_softmax_cross_entropy_one_row_one_column_empty(shape):
    O = randn(*shape, scale=50)
    y = labels(shape[0], shape[1])
    torch.testing.assert_close(softmax_cross_entropy(O, y),
                               F.cross_entropy(O, y, reduction="none"))


@settings(max_examples=40, deadline=None)
@given(finite_logits_rows(), st.integers(0, 10**6))
def test_softmax_cross_entropy_finite_for_finite_logits(rows, seed):
    O = torch.tensor(rows, dtype=torch.float64)
    y = labels(O.shape[0], O.shape[1], seed=seed)
    out = softmax_cross_entropy(O, y)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, F.cross_entropy(O, y, reduction="none"))


@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_softmax_cross_entropy_gradient_is_softmax_minus_one_hot(scale):
    O = randn(5, 4, scale=scale, seed=10).requires_grad_(True)
    y = labels(5, 4, seed=11)
    softmax_cross_entropy(O, y).sum().backward()
    expected = torch.softmax(O.detach(), dim=1) - F.one_hot(y, 4).double()
    assert torch.isfinite(O.grad).all()
    torch.testing.assert_close(O.grad, expected)


def test_softmax_cross_entropy_gradcheck():
    O = randn(4, 3, seed=12).requires_grad_(True)
    y = labels(4, 3, seed=13)
    assert torch.autograd.gradcheck(lambda O: softmax_cross_entropy(O, y), (O,))


# Exercise 4: expected_cost, bayes_decision, decide_with_reject

def probabilities(n, k, seed=0, dtype=torch.float64):
    return torch.softmax(randn(n, k, scale=2, seed=seed), dim=1).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_expected_cost_matches_einsum_and_loop(dtype):
    probs = probabilities(6, 4, seed=14, dtype=dtype)
    cost = randn(3, 4, seed=15, dtype=dtype).abs()  # 3 actions, 4 classes: not square
    out = expected_cost(probs, cost)
    assert out.shape == (6, 3) and out.dtype == dtype
    assert_matches(out, torch.einsum("nk,ak->na", probs.double(), cost.double()), dtype)
    loop = torch.tensor([[sum(cost[a, k].item() * probs[i, k].item() for k in range(4))
                          for a in range(3)] for i in range(6)], dtype=torch.float64)
    assert_matches(out, loop, dtype)


def test_expected_cost_zero_one_loss_is_one_minus_probability():
    probs = probabilities(5, 3, seed=16)
    cost = 1 - torch.eye(3, dtype=torch.float64)
    torch.testing.assert_close(expected_cost(probs, cost), 1 - probs)


# classes (healthy, sick); actions (send home, treat):
# missing a sick patient costs 100, treating a healthy one costs 1.
MEDICAL_COST = torch.tensor([[0.0, 100.0],
                             [1.0, 0.0]])


def test_bayes_decision_differs_from_argmax_for_medical_costs():
    probs = torch.tensor([[0.9, 0.1], [0.999, 0.001], [0.2, 0.8]])
    out = bayes_decision(probs, MEDICAL_COST)
    assert out.dtype == torch.long and out.shape == (3,)
    assert probs.argmax(1).tolist() == [0, 0, 1]
    # row 0: send home costs 0.1 * 100 = 10, treat costs 0.9 * 1 = 0.9
    assert out.tolist() == [1, 0, 1]


def test_bayes_decision_is_argmin_of_einsum_oracle():
    probs = probabilities(50, 5, seed=17)
    cost = randn(4, 5, seed=18).abs()
    oracle = torch.einsum("nk,ak->na", probs, cost).argmin(dim=1)
    assert torch.equal(bayes_decision(probs, cost), oracle)


def test_bayes_decision_zero_one_cost_is_argmax():
    probs = probabilities(30, 6, seed=19)
    assert torch.equal(bayes_decision(probs, 1 - torch.eye(6, dtype=torch.float64)),
                       probs.argmax(1))


def test_decide_with_reject_strict_threshold():
    # dyadic values, so "equal to the threshold" is exact in floating point
    probs = torch.tensor([[0.5, 0.25, 0.25],
                          [0.375, 0.375 - 2 ** -10, 0.25 + 2 ** -10],
                          [0.125, 0.125, 0.75],
                          [0.25, 0.5, 0.25]])
    out = decide_with_reject(probs, 0.5)
    assert out.dtype == torch.long
    assert out.tolist() == [0, -1, 2, 1]


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_decide_with_reject_matches_oracle(dtype):
    probs = probabilities(40, 5, seed=20, dtype=dtype)
    out = decide_with_reject(probs, 0.6)
    oracle = [-1 if max(row) < 0.6 else row.index(max(row)) for row in probs.tolist()]
    assert out.dtype == torch.long and out.tolist() == oracle
    assert -1 in oracle and any(o >= 0 for o in oracle)


def test_decide_with_reject_bounds_and_empty():
    probs = probabilities(10, 4, seed=21)
    assert torch.equal(decide_with_reject(probs, 0.0), probs.argmax(1))
    assert decide_with_reject(probs, 1.01).tolist() == [-1] * 10
    empty = decide_with_reject(torch.empty(0, 4), 0.5)
    assert empty.shape == (0,) and empty.dtype == torch.long


# Exercise 5: full_log_prob, two_level_log_prob

def vocab_problem(n, d, C, m, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)
    y = torch.randint(0, C * m, (n,), generator=g)
    return r(n, d), y, r(d, C), r(C), r(C, d, m), r(C, m)


def full_two_level_log_probs(H, Wc, bc, Ww, bw):
    """Oracle: all V = C * m word log-probabilities, cluster by cluster, with torch ops."""
    H, Wc, bc, Ww, bw = (t.double() for t in (H, Wc, bc, Ww, bw))
    log_p_cluster = torch.log_softmax(H @ Wc + bc, dim=1)                     # [n, C]
    return torch.cat([log_p_cluster[:, c:c + 1] + torch.log_softmax(H @ Ww[c] + bw[c], dim=1)
                      for c in range(Wc.shape[1])], dim=1)                    # [n, V]


@pytest.mark.parametrize("dtype", DTYPES)
def test_full_log_prob_matches_torch(dtype):
    H, y, W, b, _, _ = vocab_problem(6, 4, 5, 1, seed=22)
    W, b = randn(4, 12, seed=23), randn(12, seed=24)
    y = labels(6, 12, seed=25)
    H, W, b = H.to(dtype), W.to(dtype), b.to(dtype)
    out = full_log_prob(H, y, W, b)
    assert out.shape == (6,)
    oracle = torch.log_softmax(H.double() @ W.double() + b.double(), dim=1)
    oracle = oracle.gather(1, y[:, None]).squeeze(1)
    rtol, atol = TOL[dtype]
    # the matmul is done in the dtype itself, hence the looser bound for 16-bit
    torch.testing.assert_close(out, oracle.to(dtype), rtol=4 * rtol, atol=4 * atol)


def test_full_log_prob_gradcheck():
    H, y, _, _, _, _ = vocab_problem(3, 2, 2, 3, seed=26)
    W, b = randn(2, 6, seed=27).requires_grad_(True), randn(6, seed=28).requires_grad_(True)
    H.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda H, W, b: full_log_prob(H, y, W, b), (H, W, b))


@pytest.mark.parametrize("dtype", DTYPES)
def test_two_level_matches_materialised_oracle(dtype):
    H, y, Wc, bc, Ww, bw = vocab_problem(9, 5, 4, 3, seed=29, dtype=dtype)
    y[:4] = torch.tensor([0, 2, 3, 11])  # cluster boundaries and the last word
    out = two_level_log_prob(H, y, Wc, bc, Ww, bw)
    assert out.shape == (9,)
    oracle = full_two_level_log_probs(H, Wc, bc, Ww, bw).gather(1, y[:, None]).squeeze(1)
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(out, oracle.to(dtype), rtol=4 * rtol, atol=4 * atol)


def test_two_level_oracle_is_normalised():
    H, _, Wc, bc, Ww, bw = vocab_problem(5, 3, 4, 6, seed=30)
    full = full_two_level_log_probs(H, Wc, bc, Ww, bw)
    torch.testing.assert_close(full.exp().sum(1), torch.ones(5, dtype=torch.float64))


def test_two_level_is_normalised_over_all_words():
    n, d, C, m = 3, 4, 5, 7
    H, _, Wc, bc, Ww, bw = vocab_problem(n, d, C, m, seed=31)
    V = C * m
    # every (example, word) pair scored by the function itself
    H_rep = H.repeat_interleave(V, dim=0)
    words = torch.arange(V).repeat(n)
    log_p = two_level_log_prob(H_rep, words, Wc, bc, Ww, bw).reshape(n, V)
    torch.testing.assert_close(log_p.exp().sum(1), torch.ones(n, dtype=torch.float64))
    torch.testing.assert_close(log_p, full_two_level_log_probs(H, Wc, bc, Ww, bw))


def test_two_level_with_one_cluster_is_full_softmax():
    H, y, Wc, bc, Ww, bw = vocab_problem(6, 4, 1, 8, seed=32)
    torch.testing.assert_close(two_level_log_prob(H, y, Wc, bc, Ww, bw),
                               full_log_prob(H, y, Ww[0], bw[0]))
    oracle = torch.log_softmax(H @ Ww[0] + bw[0], dim=1).gather(1, y[:, None]).squeeze(1)
    torch.testing.assert_close(two_level_log_prob(H, y, Wc, bc, Ww, bw), oracle)


def test_two_level_with_one_word_per_cluster_is_cluster_softmax():
    H, y, Wc, bc, Ww, bw = vocab_problem(6, 4, 8, 1, seed=33)
    oracle = torch.log_softmax(H @ Wc + bc, dim=1).gather(1, y[:, None]).squeeze(1)
    torch.testing.assert_close(two_level_log_prob(H, y, Wc, bc, Ww, bw), oracle)


def test_two_level_large_logits_stay_finite():
    H, y, Wc, bc, Ww, bw = vocab_problem(4, 3, 3, 4, seed=34, dtype=torch.float32)
    H = H * 1e3
    out = two_level_log_prob(H, y, Wc, bc, Ww, bw)
    assert torch.isfinite(out).all()
    oracle = full_two_level_log_probs(H, Wc, bc, Ww, bw).gather(1, y[:, None]).squeeze(1)
    torch.testing.assert_close(out, oracle.float(), rtol=1e-4, atol=1e-2)


def test_two_level_gradcheck():
    H, y, Wc, bc, Ww, bw = vocab_problem(3, 2, 3, 2, seed=35)
    inputs = tuple(t.requires_grad_(True) for t in (H, Wc, bc, Ww, bw))
    assert torch.autograd.gradcheck(
        lambda H, Wc, bc, Ww, bw: two_level_log_prob(H, y, Wc, bc, Ww, bw), inputs)
