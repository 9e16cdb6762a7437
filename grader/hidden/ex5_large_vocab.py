"""Hidden tests of exercise 5: `full_log_prob` and `two_level_log_prob`.

Oracles: -F.cross_entropy(H W + b, y) for the full softmax; for the two-level
softmax, the whole [n, V] table of log p(cluster) + log p(word | cluster) built
with einsum over every cluster (the O(n d V) way the student must avoid), in
float64. Normalisation is checked on the student's own values: for one h, the
probabilities of all V words must sum to 1. Timing budgets are checked elsewhere.
"""

import torch
import torch.nn.functional as F

from . import HiddenTest
from .checks import compare, describe, failed, labels, near_miss_verdict, passed, randn, tensor_problem, value_problem

PART = "ex5_large_vocab"

ALL_WORDS = "the log-probabilities of all V words ([n, V]) instead of the true word's ([n])"
NO_BIAS = "the scores without the bias b"
PROBABILITY = "the probability instead of its log"
WHOLE_VOCABULARY = ("the second level normalised over the whole vocabulary instead of within the "
                    "word's own cluster")
SWAPPED = "cluster y % C at position y // C (the layout is cluster y // m at position y % m)"
NO_CLUSTER_TERM = "the word's log-probability within its cluster only, without log p(cluster | h)"
NO_WORD_TERM = "the cluster's log-probability only, without log p(word | cluster, h)"


# The full softmax.

def full_check(student, n, d, V, dtype, seed, weight_scale=1.0, what="N(0, 1) features"):
    H = randn((n, d), seed).to(dtype)
    W, b = randn((d, V), seed + 1, weight_scale).to(dtype), randn((V,), seed + 2).to(dtype)
    y = labels(n, V, seed + 3)
    logits = H.double() @ W.double() + b.double()
    # The matmul rounds relative to its terms' magnitude, not to the logits'.
    scale = (H.double().abs() @ W.double().abs() + b.double().abs()).amax(dim=1)
    rows = torch.arange(n)
    mistakes = {ALL_WORDS: lambda: torch.log_softmax(logits, dim=1),
                NO_BIAS: lambda: torch.log_softmax(H.double() @ W.double(), dim=1)[rows, y],
                PROBABILITY: lambda: torch.softmax(logits, dim=1)[rows, y]}
    lp = student.call("full_log_prob", H, y, W, b)
    return compare(lp, -F.cross_entropy(logits, y, reduction="none"),
                   f"full_log_prob on {what}: H {describe(H)}, W {describe(W)}", dtype, scale, mistakes)


# The two-level softmax.

def two_level_parameters(n, d, C, m, seed, dtype, scale=1.0):
    """H [n, d], Wc [d, C], bc [C], Ww [C, d, m], bw [C, m]."""
    return (randn((n, d), seed).to(dtype), randn((d, C), seed + 1, scale).to(dtype),
            randn((C,), seed + 2).to(dtype), randn((C, d, m), seed + 3, scale).to(dtype),
            randn((C, m), seed + 4).to(dtype))


def two_level_table(H, Wc, bc, Ww, bw, normalise_words_over_all=False):
    """log p(word v | h) for all V = C m words, [n, V] float64; word v = cluster * m + position."""
    H, Wc, bc, Ww, bw = (t.double() for t in (H, Wc, bc, Ww, bw))
    log_cluster = torch.log_softmax(H @ Wc + bc, dim=1)                    # [n, C]
    word_logits = torch.einsum("nd,cdm->ncm", H, Ww) + bw                  # [n, C, m]
    if normalise_words_over_all:
        log_word = torch.log_softmax(word_logits.flatten(1), dim=1).view_as(word_logits)
    else:
        log_word = torch.log_softmax(word_logits, dim=2)
    return (log_cluster.unsqueeze(2) + log_word).flatten(1)


def two_level_scale(H, Wc, bc, Ww, bw):
    """Per example [n]: the largest magnitude of the terms of any logit, cluster or word."""
    H, Wc, bc, Ww, bw = (t.double().abs() for t in (H, Wc, bc, Ww, bw))
    cluster = (H @ Wc + bc).amax(dim=1)
    word = (torch.einsum("nd,cdm->ncm", H, Ww) + bw).flatten(1).amax(dim=1)
    return torch.maximum(cluster, word)


def two_level_mistakes(H, y, Wc, bc, Ww, bw):
    """{mistake: its result [n]}, in float64."""
    H64, Wc64, bc64, Ww64, bw64 = (t.double() for t in (H, Wc, bc, Ww, bw))
    C, m = bw.shape
    rows = torch.arange(len(y))
    log_cluster = torch.log_softmax(H64 @ Wc64 + bc64, dim=1)

    def log_word(cluster, position):
        logits = torch.einsum("nd,ndm->nm", H64, Ww64[cluster]) + bw64[cluster]
        return torch.log_softmax(logits, dim=1)[rows, position]

    return {WHOLE_VOCABULARY: lambda: two_level_table(H, Wc, bc, Ww, bw, True)[rows, y],
            SWAPPED: lambda: log_cluster[rows, y % C] + log_word(y % C, y // C),
            NO_CLUSTER_TERM: lambda: log_word(y // m, y % m),
            NO_WORD_TERM: lambda: log_cluster[rows, y // m]}


def two_level_check(student, n, d, C, m, dtype, seed, scale=1.0, what="N(0, 1) features"):
    H, Wc, bc, Ww, bw = two_level_parameters(n, d, C, m, seed, dtype, scale)
    y = labels(n, C * m, seed + 5)
    lp = student.call("two_level_log_prob", H, y, Wc, bc, Ww, bw)
    expected = two_level_table(H, Wc, bc, Ww, bw)[torch.arange(n), y]
    return compare(lp, expected, f"two_level_log_prob on {what}: H {describe(H)}, C = {C} clusters of m = {m} words",
                   dtype, two_level_scale(H, Wc, bc, Ww, bw), two_level_mistakes(H, y, Wc, bc, Ww, bw))


def normalised(student):
    """For each of 3 feature vectors, exp(log p) over all V = 35 words sums to 1 (one call, [3 V] rows)."""
    k, d, C, m = 3, 6, 5, 7
    V = C * m
    H0, Wc, bc, Ww, bw = two_level_parameters(k, d, C, m, 801, torch.float64)
    H, y = H0.repeat_interleave(V, dim=0), torch.arange(V).repeat(k)  # row i * V + v: h_i with word v
    lp = student.call("two_level_log_prob", H, y, Wc, bc, Ww, bw)
    what = f"two_level_log_prob over all V = {V} words (C = {C}, m = {m}) for {k} feature vectors"
    mistakes = two_level_mistakes(H, y, Wc, bc, Ww, bw)
    verdict = sums_to_one(lp, k, V, what, mistakes)
    if verdict.passed:
        return verdict
    partly = near_miss_verdict(lp, (k * V,), what,
                               lambda reshaped: sums_to_one(reshaped, k, V, what, mistakes))
    return partly or verdict


def sums_to_one(lp, k, V, what, mistakes):
    """Verdict on log-probabilities [k V] of all V words for each of k feature vectors."""
    problem = tensor_problem(lp, (k * V,), torch.float64)
    if problem is None:
        total = torch.exp(lp.double().reshape(k, V)).sum(dim=1)  # [k], 1 for a distribution
        problem, numbers = value_problem(total, torch.ones(k, dtype=torch.float64), torch.float64)
        if problem is None:
            return passed(f"{what}: sums of probabilities", numbers)
        problem = f"the probabilities of the {V} words sum to {[float(f'{t:.12g}') for t in total]}, not 1"
    return failed(what, problem, actual=lp, mistakes=mistakes)


TESTS = [
    HiddenTest("full_log_prob: float64 n = 12, d = 8, V = 30", PART, 1.0,
               lambda s: full_check(s, 12, 8, 30, torch.float64, 811)),
    HiddenTest("full_log_prob: float32 n = 64, d = 16, V = 500", PART, 1.0,
               lambda s: full_check(s, 64, 16, 500, torch.float32, 815)),
    HiddenTest("full_log_prob: logits in the thousands stay finite (float64)", PART, 1.0,
               lambda s: full_check(s, 10, 8, 50, torch.float64, 819, 300.0, "large weights")),
    HiddenTest("full_log_prob: a single example, V = 1000", PART, 0.5,
               lambda s: full_check(s, 1, 16, 1000, torch.float32, 823)),
    HiddenTest("two_level_log_prob: float64 n = 10, C = 5, m = 7", PART, 1.5,
               lambda s: two_level_check(s, 10, 6, 5, 7, torch.float64, 831)),
    HiddenTest("two_level_log_prob: float32 n = 64, C = 20, m = 30", PART, 1.0,
               lambda s: two_level_check(s, 64, 16, 20, 30, torch.float32, 837)),
    HiddenTest("two_level_log_prob: a distribution over all V words", PART, 2.0, normalised,
               counts_alone=False),
    HiddenTest("two_level_log_prob: one cluster (C = 1) is the full softmax", PART, 0.5,
               lambda s: two_level_check(s, 8, 6, 1, 12, torch.float64, 843)),
    HiddenTest("two_level_log_prob: one word per cluster (m = 1)", PART, 0.5,
               lambda s: two_level_check(s, 8, 6, 12, 1, torch.float64, 849)),
    HiddenTest("two_level_log_prob: logits in the hundreds stay finite (float64)", PART, 0.5,
               lambda s: two_level_check(s, 8, 6, 5, 7, torch.float64, 855, 100.0, "large weights")),
]
