"""Reference answers to the five exercises of d2l section 3.6.

Written to be read: each function is one idea, with the shapes in its docstring.
"""

import torch

from .softmax_regression import softmax


# Exercise 1: exp overflows, and the naive softmax turns inf / inf into NaN.

def overflow_threshold(dtype):
    """The smallest x (a value of `dtype`) with torch.exp(tensor(x, dtype)) == inf.

    Bisection over the numbers the dtype can represent: exp(0) is finite and
    exp(finfo.max) is inf, so keep an interval [lo, hi] with exactly that
    property and halve it until no representable number lies strictly inside.
    Measured with torch.exp itself rather than derived from log(finfo.max),
    because rounding in exp decides the last digit.
    """
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
    """Logits [1, 2] of `dtype` on which the naive softmax returns NaN.

    exp(threshold) is inf, so the row computes inf / inf = NaN; a stable
    softmax gives [1, 0].
    """
    return torch.tensor([[overflow_threshold(dtype), 0.0]], dtype=dtype)


# Exercise 2: log(0) = -inf, so cross-entropy of an underflowed probability is inf.

def logsumexp(O):
    """log(sum_j exp(O[i, j])) per row, computed without overflow: O [n, q] -> [n, 1].

    With m the row max, log sum exp(O) = m + log sum exp(O - m), and every
    exp(O - m) lies in [0, 1], with at least one term equal to 1.
    """
    m = O.max(dim=1, keepdim=True).values
    return m + torch.log(torch.exp(O - m).sum(dim=1, keepdim=True))


def log_softmax(O):
    """Row-wise log-softmax of logits: O [n, q] -> [n, q], finite for finite O.

    log softmax(O)[i, j] = O[i, j] - log sum_k exp(O[i, k]): never a log of a
    probability that has underflowed to 0. With m the row max it is computed as
    (O - m) - log sum exp(O - m): subtracting m first keeps the result exact near
    the max even when |m| is large (O - logsumexp(O) would round the log-sum-exp
    to the precision of m, an error of 8 at 1e4 in float16).
    """
    O_shifted = O - O.max(dim=1, keepdim=True).values
    return O_shifted - torch.log(torch.exp(O_shifted).sum(dim=1, keepdim=True))


def naive_cross_entropy_breaks():
    """(y_hat [1, 2], y [1]): valid probabilities on which `cross_entropy` returns inf.

    exp(-200) underflows to 0 in float32, so the softmax gives the true class a
    probability of exactly 0 and -log(0) = inf.
    """
    y_hat = softmax(torch.tensor([[0.0, -200.0]]))
    y = torch.tensor([1])
    return y_hat, y


# Exercise 3: shift each row by its max, and compute the loss from the logits.

def stable_softmax(O):
    """Row-wise softmax that cannot overflow: O [n, q] -> [n, q].

    softmax is shift invariant per row, so subtract each row's own max (a
    global max would underflow whole rows whose values are far below it).
    -inf entries give probability 0.
    """
    O_shifted = O - O.max(dim=1, keepdim=True).values
    O_exp = torch.exp(O_shifted)
    return O_exp / O_exp.sum(dim=1, keepdim=True)


def softmax_cross_entropy(O, y):
    """Per-example cross-entropy straight from logits: O [n, q], y [n] -> [n].

    -log softmax(O)[i, y[i]], taken from the stable `log_softmax`, so it is
    finite for any finite logits and autograd gives softmax(O) - one_hot(y).
    """
    rows = torch.arange(O.shape[0], device=O.device)
    return -log_softmax(O)[rows, y]


# Exercise 4: the most likely label is not the best decision when errors cost differently.

def expected_cost(probs, cost):
    """Expected cost of each action: probs [n, k], cost [a, k] -> [n, a].

    cost[action, true_class]; E[cost(action)] = sum_k cost[action, k] * probs[i, k].
    """
    return probs @ cost.T


def bayes_decision(probs, cost):
    """The action of least expected cost for each example: LongTensor [n]."""
    return expected_cost(probs, cost).argmin(dim=1)


def decide_with_reject(probs, threshold):
    """Argmax class [n], or -1 (refer to a specialist) where max probability < threshold."""
    confidence, label = probs.max(dim=1)
    return torch.where(confidence < threshold, torch.full_like(label, -1), label)


# Exercise 5: a softmax over V words costs O(n d V); two levels cost O(n d (C + m)).

def full_log_prob(H, y, W, b):
    """log softmax(H @ W + b)[i, y[i]]: H [n, d], y [n], W [d, V], b [V] -> [n]."""
    rows = torch.arange(H.shape[0], device=H.device)
    return log_softmax(H @ W + b)[rows, y]


def two_level_log_prob(H, y, Wc, bc, Ww, bw):
    """Class-factored softmax: log p(cluster | h) + log p(word | cluster, h) -> [n].

    V = C * m words; word y is in cluster y // m at position y % m.
    H [n, d], y [n], Wc [d, C], bc [C], Ww [C, d, m], bw [C, m].
    Only each example's own cluster is scored at the second level, so the cost
    is O(n d (C + m)) instead of O(n d V), and the result is still a normalised
    distribution over all V words.
    """
    m = Ww.shape[2]
    cluster, position = y // m, y % m
    rows = torch.arange(H.shape[0], device=H.device)
    log_p_cluster = log_softmax(H @ Wc + bc)[rows, cluster]                 # [n]
    # [n, 1, d] @ [n, d, m] -> [n, 1, m]: each example against its own cluster's words
    word_logits = (H.unsqueeze(1) @ Ww[cluster]).squeeze(1) + bw[cluster]  # [n, m]
    log_p_word = log_softmax(word_logits)[rows, position]                   # [n]
    return log_p_cluster + log_p_word
