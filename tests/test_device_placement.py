"""Device-agnosticism without a GPU: every tensor function runs on the 'meta' device
(shapes and dtypes only, no data), where a tensor hard-coded on the CPU mixed into
the arithmetic raises. Device resolution is tested with torch.cuda monkeypatched.
The tests marked `cuda` compare real CUDA results with the CPU oracle."""

import pytest
import torch
import torch.nn.functional as F

from solutions import softmax_regression as sr
from solutions.data import TensorBatches
from solutions.device import DeviceUnavailableError, resolve_device
from solutions.exercises import (
    bayes_decision,
    decide_with_reject,
    expected_cost,
    full_log_prob,
    log_softmax,
    softmax_cross_entropy,
    stable_softmax,
    two_level_log_prob,
)
from solutions.softmax_regression import cross_entropy, sgd, softmax, train_epoch_ch3

META = torch.device("meta")
DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
TOL = {torch.float16: (5e-3, 1e-3), torch.bfloat16: (4e-2, 1e-2),
       torch.float32: (1e-5, 1e-6), torch.float64: (1e-10, 1e-12)}


@pytest.fixture
def fresh_params(monkeypatch):
    """init_params with a seeded generator; the module's globals are restored afterwards."""
    monkeypatch.setattr(sr, "W", sr.W)
    monkeypatch.setattr(sr, "b", sr.b)

    def make(device="cpu", dtype=torch.float64, seed=0):
        return sr.init_params(device=device, dtype=dtype,
                              generator=torch.Generator().manual_seed(seed))
    return make


def test_meta_rejects_cpu_operands():
    # The premise of this file: mixing a CPU tensor into meta arithmetic fails.
    with pytest.raises(RuntimeError):
        torch.ones(2, 3, device=META) + torch.ones(2, 3)


# Everything stays on the input's device (meta)

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fn", [softmax, stable_softmax, log_softmax])
def test_row_functions_stay_on_meta(fn, dtype):
    out = fn(torch.empty(5, 7, device=META, dtype=dtype))
    assert out.device == META and out.dtype == dtype and out.shape == (5, 7)


@pytest.mark.parametrize("dtype", DTYPES)
def test_losses_stay_on_meta(dtype):
    y = torch.zeros(4, dtype=torch.long, device=META)
    O = torch.empty(4, 3, device=META, dtype=dtype)
    for out in (cross_entropy(softmax(O), y), softmax_cross_entropy(O, y)):
        assert out.device == META and out.dtype == dtype and out.shape == (4,)


def test_softmax_cross_entropy_backward_on_meta():
    O = torch.empty(4, 3, device=META, requires_grad=True)
    softmax_cross_entropy(O, torch.zeros(4, dtype=torch.long, device=META)).sum().backward()
    assert O.grad.device == META and O.grad.shape == (4, 3)


def test_net_and_init_params_on_meta(fresh_params):
    W, b = fresh_params(device="meta", dtype=torch.float32)
    assert W.device == META and b.device == META
    assert W.requires_grad and b.requires_grad
    out = sr.net(torch.empty(3, 1, 28, 28, device=META))
    assert out.device == META and out.shape == (3, 10)


def test_sgd_on_meta():
    p = torch.empty(3, 2, device=META, requires_grad=True)
    p.grad = torch.empty(3, 2, device=META)
    sgd([p], 0.1, 4)
    assert p.device == META and p.grad.device == META and p.is_leaf


def test_decisions_stay_on_meta():
    probs = torch.empty(6, 4, device=META)
    cost = torch.empty(3, 4, device=META)
    out = expected_cost(probs, cost)
    assert out.device == META and out.shape == (6, 3)
    for out in (bayes_decision(probs, cost), decide_with_reject(probs, 0.5)):
        assert out.device == META and out.dtype == torch.long and out.shape == (6,)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_vocab_functions_stay_on_meta(dtype):
    n, d, C, m = 5, 4, 3, 6
    H = torch.empty(n, d, device=META, dtype=dtype)
    y = torch.zeros(n, dtype=torch.long, device=META)
    full = full_log_prob(H, y, torch.empty(d, C * m, device=META, dtype=dtype),
                         torch.empty(C * m, device=META, dtype=dtype))
    two = two_level_log_prob(H, y, torch.empty(d, C, device=META, dtype=dtype),
                             torch.empty(C, device=META, dtype=dtype),
                             torch.empty(C, d, m, device=META, dtype=dtype),
                             torch.empty(C, m, device=META, dtype=dtype))
    for out in (full, two):
        assert out.device == META and out.dtype == dtype and out.shape == (n,)


@pytest.mark.parametrize("shuffle", [False, True])
def test_tensor_batches_stay_on_data_device(shuffle):
    X = torch.empty(10, 1, 28, 28, device=META)
    y = torch.empty(10, dtype=torch.long, device=META)
    batches = list(TensorBatches(X, y, 4, shuffle=shuffle,
                                 generator=torch.Generator().manual_seed(0)))
    assert [len(yb) for _, yb in batches] == [4, 4, 2]
    assert all(Xb.device == META and yb.device == META for Xb, yb in batches)


# resolve_device, with CUDA's availability monkeypatched

@pytest.fixture
def cuda_present(monkeypatch):
    def set_cuda(available, count=0):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    return set_cuda


def test_auto_without_cuda_is_cpu(cuda_present):
    cuda_present(False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device() == torch.device("cpu")


def test_auto_with_cuda_is_cuda(cuda_present):
    cuda_present(True, 1)
    assert resolve_device("auto") == torch.device("cuda")


@pytest.mark.parametrize("available", [False, True])
def test_cpu_is_always_cpu(cuda_present, available):
    cuda_present(available, int(available))
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_cuda_unavailable_raises_naming_cuda(cuda_present, name):
    cuda_present(False)
    with pytest.raises(DeviceUnavailableError, match="CUDA") as info:
        resolve_device(name)
    assert name in str(info.value)
    assert isinstance(info.value, RuntimeError)


def test_cuda_available(cuda_present):
    cuda_present(True, 2)
    assert resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)


@pytest.mark.parametrize("name, count", [("cuda:3", 2), ("cuda:2", 2), ("cuda:1", 1)])
def test_cuda_index_beyond_device_count(cuda_present, name, count):
    cuda_present(True, count)
    with pytest.raises(DeviceUnavailableError, match=name) as info:
        resolve_device(name)
    assert str(count) in str(info.value)


@pytest.mark.parametrize("name", ["tpu", "gpu", "", "cuda:x", "meta", "mps"])
def test_unknown_or_unsupported_names(cuda_present, name):
    cuda_present(True, 1)
    with pytest.raises(DeviceUnavailableError) as info:
        resolve_device(name)
    assert "cpu" in str(info.value) and "cuda" in str(info.value)  # says what to use


# Real CUDA: results on the GPU match the CPU float64 oracle

HAS_CUDA = torch.cuda.is_available()
NO_CUDA = "needs a CUDA device"


def randn(*shape, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(*shape, generator=g, dtype=torch.float64)


def assert_matches(actual, oracle64, dtype):
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(actual.cpu(), oracle64.to(dtype), rtol=rtol, atol=atol)


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason=NO_CUDA)
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_softmaxes_match_cpu_oracle(dtype):
    X = randn(6, 9, scale=3).to(dtype)
    oracle = torch.softmax(X.double(), dim=1)
    for fn in (softmax, stable_softmax):
        out = fn(X.cuda())
        assert out.device.type == "cuda" and out.dtype == dtype
        assert_matches(out, oracle, dtype)
    big = torch.tensor([[1e4, 0.0, -1e4], [0.0, float("-inf"), 1.0]], dtype=dtype)
    assert_matches(stable_softmax(big.cuda()), torch.softmax(big.double(), dim=1), dtype)


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason=NO_CUDA)
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_softmax_cross_entropy_matches_cpu_oracle(dtype):
    O = randn(8, 5, scale=3, seed=1).to(dtype)
    y = torch.randint(0, 5, (8,), generator=torch.Generator().manual_seed(2))
    out = softmax_cross_entropy(O.cuda(), y.cuda())
    assert out.device.type == "cuda" and out.dtype == dtype
    assert_matches(out, F.cross_entropy(O.double(), y, reduction="none"), dtype)


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason=NO_CUDA)
def test_cuda_two_level_matches_cpu_oracle():
    n, d, C, m = 7, 5, 4, 3
    H, Wc, bc = randn(n, d, seed=3), randn(d, C, seed=4), randn(C, seed=5)
    Ww, bw = randn(C, d, m, seed=6), randn(C, m, seed=7)
    y = torch.tensor([0, 2, 3, 11, 5, 7, 9])
    log_p_cluster = torch.log_softmax(H @ Wc + bc, dim=1)
    full = torch.cat([log_p_cluster[:, c:c + 1] + torch.log_softmax(H @ Ww[c] + bw[c], dim=1)
                      for c in range(C)], dim=1)
    out = two_level_log_prob(*(t.cuda() for t in (H, y, Wc, bc, Ww, bw)))
    assert out.device.type == "cuda"
    torch.testing.assert_close(out.cpu(), full.gather(1, y[:, None]).squeeze(1))


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason=NO_CUDA)
def test_cuda_train_epoch_matches_cpu_oracle(fresh_params):
    lr = 0.1
    W, b = fresh_params(device="cuda", seed=8)
    W0, b0 = W.detach().cpu(), b.detach().cpu()
    g = torch.Generator().manual_seed(9)
    X = torch.randn(10, 1, 28, 28, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (10,), generator=g)
    batches = [(X[i:i + 4], y[i:i + 4]) for i in (0, 4, 8)]  # 4, 4, 2

    # CPU oracle: F.cross_entropy, autograd, out-of-place SGD on the mean loss
    W_ref, b_ref, loss_sum, correct = W0.clone(), b0.clone(), 0.0, 0
    for Xb, yb in batches:
        W_ref.requires_grad_(True)
        b_ref.requires_grad_(True)
        logits = Xb.reshape(len(Xb), -1) @ W_ref + b_ref
        l = F.cross_entropy(logits, yb, reduction="none")
        loss_sum += l.sum().item()
        correct += (logits.argmax(1) == yb).sum().item()
        gW, gb = torch.autograd.grad(l.mean(), [W_ref, b_ref])
        W_ref, b_ref = (W_ref - lr * gW).detach(), (b_ref - lr * gb).detach()

    cuda_batches = [(Xb.cuda(), yb.cuda()) for Xb, yb in batches]
    loss, acc = train_epoch_ch3(sr.net, cuda_batches, cross_entropy,
                                lambda n: sgd([sr.W, sr.b], lr, n))
    assert sr.W.device.type == "cuda"
    torch.testing.assert_close(sr.W.detach().cpu(), W_ref)
    torch.testing.assert_close(sr.b.detach().cpu(), b_ref)
    assert (loss, acc) == pytest.approx((loss_sum / 10, correct / 10))


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason=NO_CUDA)
def test_cuda_resolve_device_real():
    assert resolve_device("auto").type == "cuda"
    assert resolve_device("cuda") == torch.device("cuda")
    with pytest.raises(DeviceUnavailableError):
        resolve_device(f"cuda:{torch.cuda.device_count()}")
