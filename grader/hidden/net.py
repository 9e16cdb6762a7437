"""Hidden tests of `net(X)`: softmax(X.reshape(-1, W.shape[0]) @ W + b) with the globals W, b.

Every test binds its own W [784, 10] and b [10] (requires_grad, as the notebook's
are) before calling, so it also checks that net reads the CURRENT globals.
"""

import torch

from . import HiddenTest, softmax
from .checks import compare, describe, generator, randn

PART = "net"

NO_BIAS = "the model without the bias b: softmax(X W)"


def parameters(seed, dtype=torch.float32):
    """W [784, 10] ~ N(0, 0.1^2) and b [10] ~ N(0, 1): logits of a few units, so the bias matters."""
    W = randn((784, 10), seed, scale=0.1, dtype=dtype).requires_grad_(True)
    b = randn((10,), seed + 1, dtype=dtype).requires_grad_(True)
    return W, b


def images(n, seed, dtype=torch.float32):
    """Pixel-like inputs [n, 1, 28, 28] in [0, 1)."""
    return torch.rand((n, 1, 28, 28), generator=generator(seed), dtype=torch.float64).to(dtype)


def oracle(X, W, b):
    return torch.softmax(X.reshape(-1, 784).double() @ W.detach().double() + b.detach().double(), dim=1)


def logit_scale(X, W, b):
    """Bound on the logits' terms, [n, 1]: the matmul rounds relative to it, not to the result."""
    return (X.reshape(-1, 784).double().abs() @ W.detach().double().abs() + b.detach().double().abs()).amax(
        dim=1, keepdim=True)


def call_with(student, X, W, b, what):
    """Bind W and b, call net(X) and compare with torch.softmax(X W + b)."""
    student.set_global("W", W)
    student.set_global("b", b)
    Y = student.call("net", X)
    logits = X.reshape(-1, 784) @ W.detach() + b.detach()
    # net calls the student's softmax: its mistakes show here too
    mistakes = {NO_BIAS: lambda: torch.softmax(X.reshape(-1, 784).double() @ W.detach().double(), dim=1),
                **{f"{name} (in your softmax)": compute for name, compute in softmax.known_mistakes(logits).items()}}
    return compare(Y, oracle(X, W, b), what, X.dtype, logit_scale(X, W, b), mistakes)


def images_batch(student):
    X, (W, b) = images(16, 201), parameters(202)
    return call_with(student, X, W, b, f"net on images {describe(X)}")


def flat_batch(student):
    X, (W, b) = images(16, 204).reshape(16, 784), parameters(205)
    return call_with(student, X, W, b, f"net on flat inputs {describe(X)}")


def one_image(student):
    X, (W, b) = images(1, 207), parameters(208)
    return call_with(student, X, W, b, f"net on a single image {describe(X)}")


def current_globals(student):
    """The same X under two parameter sets: the second result must follow the second W and b."""
    X = images(8, 210)
    first = call_with(student, X, *parameters(211), f"net on {describe(X)} with a first W and b")
    if not first.passed:
        return first
    return call_with(student, X, *parameters(213), f"net on {describe(X)} after W and b were replaced")


def float64_everything(student):
    X, (W, b) = images(8, 215, torch.float64), parameters(216, torch.float64)
    return call_with(student, X, W, b, f"net on float64 images {describe(X)} with float64 W and b")


TESTS = [
    HiddenTest("images [16, 1, 28, 28] match softmax(X W + b)", PART, 2.0, images_batch),
    HiddenTest("flat inputs [16, 784] match softmax(X W + b)", PART, 1.0, flat_batch),
    HiddenTest("a single image [1, 1, 28, 28]", PART, 1.0, one_image),
    HiddenTest("float64 W, b and images", PART, 0.5, float64_everything),
    # last, so that the globals are left float32 [784, 10] and [10] with requires_grad, as the notebook's
    HiddenTest("reads the current globals W and b", PART, 1.0, current_globals),
]
