"""The reference core (d2l 3.6) against independent oracles: torch's own softmax and
cross-entropy, autograd through torch ops, and hand-written training steps."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from solutions import softmax_regression as sr
from solutions.softmax_regression import (
    Accumulator,
    accuracy,
    cross_entropy,
    evaluate_accuracy,
    get_fashion_mnist_labels,
    predict_ch3,
    sgd,
    softmax,
    train_ch3,
    train_epoch_ch3,
)

# The contract's class order, written out here rather than read from the code.
FASHION_LABELS = ["t-shirt", "trouser", "pullover", "dress", "coat",
                  "sandal", "shirt", "sneaker", "bag", "ankle boot"]

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


@pytest.fixture
def fresh_params(monkeypatch):
    """init_params with a seeded generator; the module's globals are restored afterwards."""
    monkeypatch.setattr(sr, "W", sr.W)
    monkeypatch.setattr(sr, "b", sr.b)

    def make(num_inputs=784, num_outputs=10, dtype=torch.float64, seed=0):
        return sr.init_params(num_inputs, num_outputs, dtype=dtype,
                              generator=torch.Generator().manual_seed(seed))
    return make


# softmax

@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_matches_torch(dtype):
    X = randn(5, 7, dtype=dtype, scale=3)
    out = softmax(X)
    assert_matches(out, torch.softmax(X.double(), dim=1), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_rows_sum_to_one(dtype):
    out = softmax(randn(6, 10, dtype=dtype, scale=2))
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(out.double().sum(1), torch.ones(6, dtype=torch.float64),
                               rtol=0, atol=10 * rtol)
    assert (out >= 0).all()


def test_softmax_normalises_rows_not_columns():
    X = randn(2, 3)  # not square: a dim-0 softmax would give a different answer
    torch.testing.assert_close(softmax(X), torch.softmax(X, dim=1))


@pytest.mark.parametrize("shape", [(1, 10), (4, 1), (0, 3)])
def test_softmax_one_row_one_column_empty(shape):
    X = randn(*shape, scale=2)
    torch.testing.assert_close(softmax(X), torch.softmax(X, dim=1))


def test_softmax_is_naive_and_overflows():
    # Exercises 1-3 rely on the core softmax being the plain definition.
    assert torch.isnan(softmax(torch.tensor([[1000.0, 0.0]]))).any()


# net

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_net_matches_linear_softmax(fresh_params, dtype):
    W, b = fresh_params(dtype=dtype, seed=1)
    with torch.no_grad():
        b += randn(10, dtype=dtype, seed=2)  # b = 0 after init would hide a missing bias
    X = randn(4, 1, 28, 28, dtype=dtype, seed=3)
    oracle = torch.softmax(X.double().reshape(4, 784) @ W.double() + b.double(), dim=1)
    assert_matches(sr.net(X), oracle, dtype)


def test_net_accepts_flat_input_and_other_sizes(fresh_params):
    W, b = fresh_params(num_inputs=6, num_outputs=3, seed=4)
    X = randn(5, 2, 3, seed=5)
    assert sr.net(X).shape == (5, 3)
    torch.testing.assert_close(sr.net(X), torch.softmax(X.reshape(5, 6) @ W + b, dim=1))


def test_init_params_shapes_and_distribution(fresh_params):
    W, b = fresh_params(dtype=torch.float32, seed=6)
    assert W.shape == (784, 10) and b.shape == (10,)
    assert W.dtype == b.dtype == torch.float32
    assert W.requires_grad and b.requires_grad and W.is_leaf and b.is_leaf
    assert torch.equal(b, torch.zeros(10))
    assert 0.009 < W.std().item() < 0.011 and abs(W.mean().item()) < 1e-3
    assert sr.W is W and sr.b is b  # net reads the module globals


def test_init_params_seeded_repeats(fresh_params):
    W1, _ = fresh_params(seed=7)
    W2, _ = fresh_params(seed=7)
    W3, _ = fresh_params(seed=8)
    assert torch.equal(W1, W2) and not torch.equal(W1, W3)


# cross_entropy

def test_cross_entropy_book_example():
    y_hat = torch.tensor([[0.1, 0.3, 0.6], [0.3, 0.2, 0.5]])
    out = cross_entropy(y_hat, torch.tensor([0, 2]))
    torch.testing.assert_close(out, -torch.log(torch.tensor([0.1, 0.5])))


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_matches_torch(dtype):
    O = randn(8, 5, scale=2)
    y = torch.tensor([0, 1, 2, 3, 4, 4, 0, 2])
    y_hat = torch.softmax(O, dim=1).to(dtype)
    out = cross_entropy(y_hat, y)
    assert out.shape == (8,)  # per example, not the mean
    oracle = F.cross_entropy(torch.log(y_hat.double()), y, reduction="none")
    assert_matches(out, oracle, dtype)


def test_cross_entropy_empty_batch():
    out = cross_entropy(torch.empty(0, 4), torch.empty(0, dtype=torch.long))
    assert out.shape == (0,)


def test_cross_entropy_gradient_matches_autograd_oracle():
    O = randn(4, 3, seed=9).requires_grad_(True)
    y = torch.tensor([2, 0, 1, 1])
    (g,) = torch.autograd.grad(cross_entropy(torch.softmax(O, 1), y).sum(), O)
    (g_ref,) = torch.autograd.grad(F.cross_entropy(O, y, reduction="sum"), O)
    torch.testing.assert_close(g, g_ref)


# accuracy

def test_accuracy_book_example_is_a_count():
    y_hat = torch.tensor([[0.1, 0.3, 0.6], [0.3, 0.2, 0.5]])
    out = accuracy(y_hat, torch.tensor([0, 2]))
    assert type(out) is float and out == 1.0


def test_accuracy_counts_not_fraction():
    y_hat = randn(50, 10, seed=10)
    y = torch.randint(0, 10, (50,), generator=torch.Generator().manual_seed(11))
    y[:20] = y_hat[:20].argmax(1)  # at least 20 right, so a fraction would be < 1 < count
    expected = sum(int(max(range(10), key=lambda j: y_hat[i, j].item()) == y[i].item())
                   for i in range(50))
    out = accuracy(y_hat, y)
    assert type(out) is float and out == float(expected) and out >= 20


def test_accuracy_argmax_over_dim_1():
    # Square, so argmax over dim 0 would also run but give [2, 2, 0].
    y_hat = torch.tensor([[0.1, 0.2, 0.7], [0.8, 0.1, 0.1], [0.3, 0.6, 0.1]])
    assert accuracy(y_hat, torch.tensor([2, 0, 1])) == 3.0
    assert accuracy(y_hat, torch.tensor([2, 2, 0])) == 1.0


def test_accuracy_with_predicted_labels():
    y = torch.tensor([0, 1, 1, 3])
    assert accuracy(torch.tensor([0, 2, 1, 3]), y) == 3.0
    assert accuracy(torch.tensor([0.0, 2.0, 1.0, 3.0]), y) == 3.0  # labels as floats
    assert type(accuracy(torch.tensor([0, 2, 1, 3]), y)) is float


# evaluate_accuracy

def make_batches(n, sizes, dtype=torch.float64, seed=0, scale=1.0):
    """A list of (X [b, 1, 28, 28], y [b]) batches of the given sizes."""
    g = torch.Generator().manual_seed(seed)
    X = (scale * torch.randn(n, 1, 28, 28, generator=g, dtype=torch.float64)).to(dtype)
    y = torch.randint(0, 10, (n,), generator=g)
    batches, start = [], 0
    for size in sizes:
        batches.append((X[start:start + size], y[start:start + size]))
        start += size
    assert start == n
    return batches


def correct_count(logits, y):
    return (logits.argmax(dim=1) == y).sum().item()


def test_evaluate_accuracy_fraction_with_function_net():
    batches = make_batches(10, [4, 4, 2], seed=12)
    Wt = randn(784, 10, seed=13)
    grad_enabled = []

    def net(X):
        grad_enabled.append(torch.is_grad_enabled())
        return X.reshape(len(X), -1) @ Wt

    expected = sum(correct_count(X.reshape(len(X), -1) @ Wt, y) for X, y in batches) / 10
    out = evaluate_accuracy(net, batches)
    assert out == pytest.approx(expected) and 0 <= out <= 1
    assert grad_enabled == [False, False, False]


class Probe(nn.Module):
    """Linear layer then dropout; records the mode and grad state it was called in."""

    def __init__(self, dtype=torch.float64):
        super().__init__()
        self.lin = nn.Linear(784, 10, dtype=dtype)
        self.drop = nn.Dropout(0.9)
        self.calls = []

    def forward(self, X):
        self.calls.append((self.training, torch.is_grad_enabled()))
        return self.drop(self.lin(X.reshape(len(X), -1)))


def test_evaluate_accuracy_module_eval_mode_and_no_grad():
    torch.manual_seed(0)
    net = Probe()
    net.train()
    batches = make_batches(10, [4, 4, 2], seed=14)
    with torch.no_grad():
        expected = sum(correct_count(net.lin(X.reshape(len(X), -1)), y) for X, y in batches) / 10
    # With dropout at p=0.9 left on, the predictions would be mostly noise.
    assert evaluate_accuracy(net, batches) == pytest.approx(expected)
    assert net.training is False
    assert net.calls == [(False, False)] * 3


# Accumulator

def test_accumulator_sums_resets_and_indexes():
    acc = Accumulator(3)
    acc.add(1, 2.5, torch.tensor(3.0))
    acc.add(2, 0.5, torch.tensor(4))
    assert [acc[0], acc[1], acc[2]] == [3.0, 3.0, 7.0]
    assert all(type(acc[i]) is float for i in range(3))
    assert acc[-1] == 7.0
    acc.reset()
    assert [acc[0], acc[1], acc[2]] == [0.0, 0.0, 0.0]
    acc.add(5, 6, 7)
    assert [acc[0], acc[1], acc[2]] == [5.0, 6.0, 7.0]


def test_accumulator_width():
    acc = Accumulator(2)
    acc.add(1, 2)
    with pytest.raises(IndexError):
        acc[2]


# sgd

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sgd_updates_in_place_and_zeroes_grads(dtype):
    w = randn(5, 3, dtype=dtype, seed=15).requires_grad_(True)
    b = randn(3, dtype=dtype, seed=16).requires_grad_(True)
    X = randn(4, 5, dtype=dtype, seed=17)
    ((X @ w + b) ** 2).sum().backward()
    lr, batch_size = 0.3, 4
    expected = [p.detach().clone() - lr * p.grad.clone() / batch_size for p in (w, b)]
    ids = [(id(p), p.data_ptr()) for p in (w, b)]
    sgd([w, b], lr, batch_size)
    rtol, atol = TOL[dtype]
    for p, e in zip((w, b), expected):
        torch.testing.assert_close(p.detach(), e, rtol=rtol, atol=atol)
        assert torch.equal(p.grad, torch.zeros_like(p))
        assert p.is_leaf and p.requires_grad and p.grad_fn is None
    assert [(id(p), p.data_ptr()) for p in (w, b)] == ids


# train_epoch_ch3 and train_ch3

def manual_epoch(W, b, batches, lr):
    """Independent minibatch SGD pass: F.cross_entropy on logits, torch.autograd.grad,
    out-of-place updates. Loss and accuracy are measured before each step and
    averaged over examples. Returns (W, b, mean loss, accuracy, per-batch mean losses)."""
    W, b = W.detach().clone(), b.detach().clone()
    loss_sum, correct, seen, batch_means = 0.0, 0, 0, []
    for X, y in batches:
        W.requires_grad_(True)
        b.requires_grad_(True)
        logits = X.reshape(len(X), -1) @ W + b
        l = F.cross_entropy(logits, y, reduction="none")
        loss_sum += l.sum().item()
        batch_means.append(l.mean().item())
        correct += correct_count(logits, y)
        seen += len(y)
        gW, gb = torch.autograd.grad(l.mean(), [W, b])
        W, b = (W - lr * gW).detach(), (b - lr * gb).detach()
    return W, b, loss_sum / seen, correct / seen, batch_means


class LinearNet(nn.Module):
    """A d2l-style concise model, its weight copied from given (W, b)."""

    def __init__(self, W, b):
        super().__init__()
        self.lin = nn.Linear(W.shape[0], W.shape[1], dtype=W.dtype)
        with torch.no_grad():
            self.lin.weight.copy_(W.T)
            self.lin.bias.copy_(b)
        self.modes = []

    def forward(self, X):
        self.modes.append(self.training)
        return self.lin(X.reshape(len(X), -1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("net_kind", ["function", "module"])
@pytest.mark.parametrize("updater_kind", ["callable", "optimizer"])
def test_train_epoch_matches_manual_sgd(fresh_params, dtype, net_kind, updater_kind):
    lr = 0.1
    W0, b0 = fresh_params(dtype=dtype, seed=20)
    with torch.no_grad():
        b0 += randn(10, dtype=dtype, seed=21)
    batches = make_batches(10, [4, 4, 2], dtype=dtype, seed=22)
    # A last partial batch with much larger inputs (hence losses) makes a
    # per-batch average of the loss far from the per-example average.
    batches[2] = (batches[2][0] * 20, batches[2][1])
    W_ref, b_ref, loss_ref, acc_ref, batch_means = manual_epoch(W0, b0, batches, lr)
    assert abs(loss_ref - sum(batch_means) / 3) > 0.1

    if net_kind == "function":
        net, loss, params = sr.net, cross_entropy, [W0, b0]
    else:
        net = LinearNet(W0, b0)
        net.eval()
        loss, params = nn.CrossEntropyLoss(reduction="none"), list(net.parameters())
    sizes = []
    if updater_kind == "optimizer":
        updater = torch.optim.SGD(params, lr=lr)
    else:
        def updater(batch_size):
            sizes.append(batch_size)
            sgd(params, lr, batch_size)

    W_before = (net.lin.weight.T if net_kind == "module" else W0).detach().clone()
    train_loss, train_acc = train_epoch_ch3(net, batches, loss, updater)

    if net_kind == "module":
        W_after, b_after = net.lin.weight.T, net.lin.bias
        assert net.modes == [True] * 3  # switched to training mode
    else:
        W_after, b_after = sr.W, sr.b
    if updater_kind == "callable":
        assert sizes == [4, 4, 2]
    assert not torch.equal(W_after.detach(), W_before)
    rtol, atol = (1e-4, 1e-5) if dtype == torch.float32 else (1e-9, 1e-11)
    torch.testing.assert_close(W_after.detach(), W_ref, rtol=rtol, atol=atol)
    torch.testing.assert_close(b_after.detach(), b_ref, rtol=rtol, atol=atol)
    assert type(train_loss) is float and type(train_acc) is float
    assert train_loss == pytest.approx(loss_ref, rel=rtol)
    assert train_acc == pytest.approx(acc_ref)


def test_train_epoch_single_full_batch_and_accuracy_before_step(fresh_params):
    W0, b0 = fresh_params(seed=23)
    batches = make_batches(6, [6], seed=24)
    _, _, loss_ref, acc_ref, _ = manual_epoch(W0, b0, batches, 0.5)
    out = train_epoch_ch3(sr.net, batches, cross_entropy,
                          lambda n: sgd([sr.W, sr.b], 0.5, n))
    assert out == pytest.approx((loss_ref, acc_ref))


def accuracy_of(W, b, batches):
    correct = sum(correct_count(X.reshape(len(X), -1) @ W + b, y) for X, y in batches)
    return correct / sum(len(y) for _, y in batches)


def test_train_ch3_history_matches_manual_epochs(fresh_params):
    lr, num_epochs = 0.1, 3
    W, b = fresh_params(seed=25)
    train_iter = make_batches(12, [5, 5, 2], seed=26)
    test_iter = make_batches(7, [4, 3], seed=27)
    W_ref, b_ref = W.detach().clone(), b.detach().clone()  # sgd updates W in place
    calls = []
    history = train_ch3(sr.net, train_iter, test_iter, cross_entropy, num_epochs,
                        lambda n: sgd([sr.W, sr.b], lr, n),
                        on_epoch=lambda epoch, metrics: calls.append((epoch, metrics)))

    assert len(history) == num_epochs
    for entry in history:
        W_ref, b_ref, loss_ref, acc_ref, _ = manual_epoch(W_ref, b_ref, train_iter, lr)
        assert isinstance(entry, tuple) and len(entry) == 3
        assert all(type(v) is float for v in entry)
        assert entry == pytest.approx((loss_ref, acc_ref, accuracy_of(W_ref, b_ref, test_iter)))
    torch.testing.assert_close(sr.W.detach(), W_ref)
    assert history[-1][2] == pytest.approx(accuracy_of(sr.W.detach(), sr.b.detach(), test_iter))
    assert calls == [(i, history[i]) for i in range(num_epochs)]


def test_train_ch3_learns_separable_data():
    g = torch.Generator().manual_seed(28)
    W_true = torch.randn(784, 10, generator=g, dtype=torch.float64)
    X = torch.randn(64, 784, generator=g, dtype=torch.float64)
    y = (X @ W_true).argmax(1)
    batches = [(X[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10, dtype=torch.float64))
    history = train_ch3(net, batches, batches, nn.CrossEntropyLoss(reduction="none"), 5,
                        torch.optim.SGD(net.parameters(), lr=0.1))
    assert len(history) == 5
    assert history[-1][0] < history[0][0] / 2
    assert history[-1][2] > 0.9


# labels and predictions

def test_fashion_mnist_labels_in_contract_order():
    assert get_fashion_mnist_labels(torch.arange(10)) == FASHION_LABELS
    assert get_fashion_mnist_labels([9, 0, 3, 3]) == ["ankle boot", "t-shirt", "dress", "dress"]
    assert get_fashion_mnist_labels(torch.tensor([], dtype=torch.long)) == []


def label_net(X):
    """Predicts (3 * label) % 10 for images filled with their label."""
    labels = X.reshape(len(X), -1)[:, 0].long()
    return F.one_hot((3 * labels) % 10, 10).to(X.dtype)


def label_batch(labels):
    y = torch.tensor(labels)
    return y.double().reshape(-1, 1, 1, 1).expand(-1, 1, 28, 28).clone(), y


@pytest.mark.parametrize("n", [6, 1, 10])
def test_predict_ch3_first_batch_strings(n):
    first = [4, 7, 0, 9, 2, 5, 1, 8, 3, 6]
    test_iter = [label_batch(first), label_batch([1] * 10)]
    true, predicted = predict_ch3(label_net, test_iter, n=n)
    assert true == [FASHION_LABELS[i] for i in first[:n]]
    assert predicted == [FASHION_LABELS[(3 * i) % 10] for i in first[:n]]


def test_predict_ch3_default_n_with_trained_params(fresh_params):
    W, b = fresh_params(seed=29)
    with torch.no_grad():
        W.mul_(100)
    test_iter = make_batches(12, [8, 4], seed=30)
    true, predicted = predict_ch3(sr.net, test_iter)
    X, y = test_iter[0]
    assert type(true) is list and type(predicted) is list
    assert true == [FASHION_LABELS[i] for i in y[:6].tolist()]
    pred_ref = (X.reshape(8, -1) @ W.detach() + b.detach()).argmax(1)
    assert predicted == [FASHION_LABELS[i] for i in pred_ref[:6].tolist()]
    assert all(type(s) is str for s in true + predicted)
