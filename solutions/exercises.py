"""Reference answers to the five exercises of d2l section 3.6.

Written to be read: each function is one idea, with the shapes in its docstring.
Docstrings say what to compute (students see them in their stubs); the comments
in the bodies say how and why (students do not).
"""

import torch

from .softmax_regression import softmax

# Exercise 1: exp overflows, and the naive softmax turns inf / inf into NaN.

def overflow_threshold(dtype):
    """The smallest x (a value of `dtype`) with torch.exp(torch.tensor(x, dtype=dtype)) == inf."""
    # Bisection over the numbers the dtype can represent: exp(0) is finite and
    # exp(finfo.max) is inf, so keep an interval [lo, hi] with exactly that
    # property and halve it until no representable number lies strictly inside.
    # Measured with torch.exp itself rather than derived from log(finfo.max),
    # because rounding inside exp decides the last digit.
    def exp_is_inf(x):
        return torch.isinf(torch.exp(torch.tensor(x, dtype=dtype))).item()

    lo, hi = 0.0, torch.finfo(dtype).max
    while True:
        mid = torch.tensor((lo + hi) / 2, dtype=dtype).item()  # rounded to the dtype
        if mid in (lo, hi):
            return hi
        if exp_is_inf(mid):
            hi = mid
        else:
            lo = mid


def naive_softmax_breaks(dtype):
    """Logits [1, k] of `dtype` on which the naive `softmax` returns NaN (a correct one does not)."""
    # exp(threshold) is inf, so the row computes inf / inf = NaN; a stable
    # softmax gives [1, 0].
    return torch.tensor([[overflow_threshold(dtype), 0.0]], dtype=dtype)


# Exercise 2: log(0) = -inf, so cross-entropy of an underflowed probability is inf.

def log_softmax(O):
    """Row-wise log-softmax of logits: O [n, q] -> [n, q], finite for finite O, like torch.log_softmax."""
    # log softmax(O)[i, j] = O[i, j] - log sum_k exp(O[i, k]) never takes the log
    # of a probability that underflowed to 0. With m the row max, compute it as
    # (O - m) - log sum_k exp(O - m): every exp lies in [0, 1] with one term equal
    # to 1, so nothing overflows and the log sees a number >= 1. Subtract m first:
    # m + log(3) at 1e4 in float16 (numbers 8 apart) would round back to m.
    O_shifted = O - O.max(dim=1, keepdim=True).values
    return O_shifted - torch.log(torch.exp(O_shifted).sum(dim=1, keepdim=True))


def naive_cross_entropy_breaks():
    """(y_hat [n, q], y [n]): valid probabilities and labels on which `cross_entropy` returns inf or NaN."""
    # exp(-200) underflows to 0 in float32, so the softmax gives the true class
    # a probability of exactly 0, and -log(0) = inf.
    y_hat = softmax(torch.tensor([[0.0, -200.0]]))
    y = torch.tensor([1])
    return y_hat, y


# Exercise 3: shift each row by its max, and compute the loss from the logits.

def stable_softmax(O):
    """Row-wise softmax that never overflows: O [n, q] -> [n, q], fine for ±1e4, -inf entries and float16."""
    # softmax is shift invariant per row, so subtract each row's own max (a
    # global max would underflow whole rows whose values lie far below it).
    # -inf entries become exp(-inf) = 0.
    O_shifted = O - O.max(dim=1, keepdim=True).values
    O_exp = torch.exp(O_shifted)
    return O_exp / O_exp.sum(dim=1, keepdim=True)


def softmax_cross_entropy(O, y):
    """Per-example cross-entropy straight from logits: O [n, q], y [n] -> [n], finite for finite O."""
    # -log softmax(O)[i, y[i]], read off the stable log_softmax: finite for any
    # finite logits, and autograd gives the gradient softmax(O) - one_hot(y).
    rows = torch.arange(O.shape[0], device=O.device)
    return -log_softmax(O)[rows, y]


# Exercise 4: the most likely label is not the best decision when errors cost differently.

def expected_cost(probs, cost):
    """Expected cost of every action: probs [n, k], cost [a, k] (cost[action, true_class]) -> [n, a]."""
    # E[cost of action a] = sum_k cost[a, k] * probs[i, k], for all i and a at once.
    return probs @ cost.T


def bayes_decision(probs, cost):
    """The action of least expected cost for each example: probs [n, k], cost [a, k] -> LongTensor [n]."""
    return expected_cost(probs, cost).argmin(dim=1)


def decide_with_reject(probs, threshold):
    """The argmax class [n], or -1 (refer to a specialist) where the largest probability is below `threshold`."""
    confidence, label = probs.max(dim=1)
    return torch.where(confidence < threshold, torch.full_like(label, -1), label)


# Exercise 5: a softmax over V words costs O(n d V); two levels cost O(n d (C + m)).

def full_log_prob(H, y, W, b):
    """log softmax(H @ W + b)[i, y[i]]: H [n, d], y [n], W [d, V], b [V] -> [n]."""
    rows = torch.arange(H.shape[0], device=H.device)
    return log_softmax(H @ W + b)[rows, y]


def two_level_log_prob(H, y, Wc, bc, Ww, bw):
    """log p(cluster | h) + log p(word | cluster, h) of the class-factored softmax -> [n].

    V = C * m words; word y is in cluster y // m at position y % m.
    H [n, d], y [n], Wc [d, C], bc [C], Ww [C, d, m], bw [C, m].
    Must cost O(n d (C + m)), not O(n d V).
    """
    # Score all C clusters, but at the second level only each example's own
    # cluster's m words: O(n d (C + m)) work, and still a normalised
    # distribution over all V words (each level is a softmax).
    m = Ww.shape[2]
    cluster, position = y // m, y % m
    rows = torch.arange(H.shape[0], device=H.device)
    log_p_cluster = log_softmax(H @ Wc + bc)[rows, cluster]                 # [n]
    # [n, 1, d] @ [n, d, m] -> [n, 1, m]: each example against its own cluster's words
    word_logits = (H.unsqueeze(1) @ Ww[cluster]).squeeze(1) + bw[cluster]  # [n, m]
    log_p_word = log_softmax(word_logits)[rows, position]                   # [n]
    return log_p_cluster + log_p_word
