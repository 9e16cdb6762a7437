"""Scenarios: grader-written harness code that runs INSIDE the submission's process,
where the student's functions need live objects (models, iterators, optimizers,
tensors with gradients). Each scenario is `name(namespace, *plain_args)` and
returns plain data only; the hidden tests judge that data in the grader.

Nothing here is secret (no expected values, no reference code): it is copied into
the sandbox next to sandbox_child.py, imports only the standard library and torch,
and must never trust the student's objects beyond what it returns.
"""

import struct
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

FASHION_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                       "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


# Helpers: the student's names, their results as plain data, and the live objects
# the student's functions are handed.

def _student(namespace, name):
    """The submission's `name`; NameError when it is missing, as for a plain call."""
    if name not in namespace:
        raise NameError(f"name {name!r} is not defined")
    return namespace[name]


def _plain(value):
    """A student's result as plain data: lists and tuples element-wise (as lists), numbers
    (int, 0-d or one-element tensors, numpy scalars) as floats, anything else as it is
    (a tensor stays a tensor; the protocol names the type of anything not plain)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, bytes, bool)):
        return value
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):
        return value


class _Batches:
    """Minibatches (X[idx], y[idx]) like a DataLoader's: re-iterable, with len(), the last
    batch holding the remainder; in order, or shuffled anew on every pass by `generator`."""

    def __init__(self, X, y, batch_size, generator=None):
        self.X, self.y, self.batch_size, self.generator = X, y, batch_size, generator

    def __len__(self):
        return -(-len(self.y) // self.batch_size)

    def __iter__(self):
        n = len(self.y)
        if self.generator is None:
            order = torch.arange(n)
        else:
            order = torch.randperm(n, generator=self.generator)
        for idx in order.to(self.y.device).split(self.batch_size):
            yield self.X.index_select(0, idx), self.y.index_select(0, idx)


class _LinearModule(nn.Module):
    """scores = X.reshape(n, -1) @ W + b, then dropout; in eval mode multiplied by
    `eval_scale` (0: nothing to learn from, so training in eval mode shows in W and b);
    logs each call as [training mode, grad enabled, batch size] in `calls`."""

    def __init__(self, W, b, dropout, eval_scale=1.0):
        super().__init__()
        self.W, self.b = nn.Parameter(W.detach().clone()), nn.Parameter(b.detach().clone())
        self.dropout = nn.Dropout(dropout)
        self.eval_scale = eval_scale
        self.calls = []

    def forward(self, X):
        self.calls.append([self.training, torch.is_grad_enabled(), len(X)])
        scores = self.dropout(X.reshape(len(X), -1) @ self.W + self.b)
        return scores if self.training else scores * self.eval_scale


def _linear_net(kind, W, b, dropout=0.0, eval_scale=1.0, grad_flips=False):
    """(net, [W, b] as the net's own leaf tensors, its call log) for a linear net of `kind`
    'module' (an nn.Module, see _LinearModule) or 'function' (a plain closure, logging
    [None, grad enabled, batch size]; with `grad_flips`, its scores are negated while
    gradients are tracked, so evaluating without torch.no_grad() shows in the accuracy).
    The logs are for messages only: the student's code can rewrite them, so every verdict
    rests on what the run returned or left in W and b."""
    if kind == "module":
        net = _LinearModule(W, b, dropout, eval_scale)
        return net, [net.W, net.b], net.calls
    W, b = W.detach().clone().requires_grad_(True), b.detach().clone().requires_grad_(True)
    calls = []

    def net(X):
        calls.append([None, torch.is_grad_enabled(), len(X)])
        scores = X.reshape(len(X), -1) @ W + b
        return -scores if grad_flips and torch.is_grad_enabled() else scores

    return net, [W, b], calls


def _loss(scores, y):
    """Per-example losses [n] from scores [n, q]: the harness's loss, independent of the student's."""
    return F.cross_entropy(scores, y, reduction="none")


def _updater(kind, params, lr, sizes):
    """'optimizer': torch.optim.SGD over params. 'callable': updater(batch_size), the book's
    sgd, appending each batch_size it is given to `sizes` (None where params had no .grad)."""
    if kind == "optimizer":
        return torch.optim.SGD(params, lr=lr)

    def updater(batch_size):
        if any(p.grad is None for p in params):
            sizes.append(None)  # no backward() before the update: nothing to step with
            return
        sizes.append(_plain(batch_size))
        with torch.no_grad():
            for p in params:
                p -= lr * p.grad / batch_size
                p.grad.zero_()

    return updater


def _detached(params):
    return [p.detach().clone() for p in params]


# Scenarios, one or more per part.

def run_evaluate_accuracy(namespace, kind, W, b, X, y, batch_size, grad_flips=False):
    """evaluate_accuracy(net, batches of X, y) on a linear net of `kind` (see _linear_net); a
    module has dropout 0.5 and is handed over in training mode, so only eval mode scores
    right; with `grad_flips` only torch.no_grad() does. Returns {'accuracy': what it
    returned, 'calls': the net's call log}."""
    torch.manual_seed(0)  # the dropout masks, should the module stay in training mode
    net, _, calls = _linear_net(kind, W, b, dropout=0.5, grad_flips=grad_flips)
    accuracy = _student(namespace, "evaluate_accuracy")(net, _Batches(X, y, batch_size))
    return {"accuracy": _plain(accuracy), "calls": calls}


def run_accumulator(namespace, operations):
    """Drive Accumulators: operations are ['new', key, n], ['add', key, [values]],
    ['reset', key] or ['get', key, index]. Returns the values the 'get's read, in order."""
    cls = _student(namespace, "Accumulator")
    made, read = {}, []
    for op, key, *rest in operations:
        if op == "new":
            made[key] = cls(*rest)
        elif op == "add":
            made[key].add(*rest[0])
        elif op == "reset":
            made[key].reset()
        else:
            read.append(_plain(made[key][rest[0]]))
    return read


def run_sgd(namespace, values, grads, lr, batch_size):
    """sgd(params, lr, batch_size) on leaf tensors holding `values`, with .grad = `grads`.
    Reports each parameter object as it is afterwards: its values and .grad, whether it is
    still the tensor in the list handed over, still on its storage, a leaf, requiring grad."""
    params = [v.detach().clone().requires_grad_(True) for v in values]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    storage = [p.data_ptr() for p in params]
    handed = list(params)
    _student(namespace, "sgd")(handed, lr, batch_size)
    return {"values": _detached(params),
            "grads": [None if p.grad is None else p.grad.detach().clone() for p in params],
            "in_list": [q is p for q, p in zip(handed, params)],
            "same_storage": [p.data_ptr() == s for p, s in zip(params, storage)],
            "leaf": [p.is_leaf for p in params],
            "requires_grad": [p.requires_grad for p in params]}


def run_train_epoch(namespace, net_kind, updater_kind, W, b, X, y, batch_size, lr,
                    eval_scale=1.0):
    """train_epoch_ch3 over batches of X, y with a linear net of `net_kind` (a module is
    handed over in eval mode, as evaluate_accuracy leaves it; see _LinearModule for
    `eval_scale`), the harness's loss and an updater of `updater_kind` (see _updater).
    Returns what it returned, the net's [W, b] afterwards, its call log and the batch sizes
    the callable updater was given."""
    net, params, calls = _linear_net(net_kind, W, b, eval_scale=eval_scale)
    if net_kind == "module":
        net.eval()
    sizes = []
    result = _student(namespace, "train_epoch_ch3")(
        net, _Batches(X, y, batch_size), _loss, _updater(updater_kind, params, lr, sizes))
    return {"result": _plain(result), "params": _detached(params), "calls": calls, "sizes": sizes}


def run_train(namespace, net_kind, updater_kind, W, b, train, test, batch_size, lr, num_epochs):
    """train_ch3(net, train_iter, test_iter, loss, num_epochs, updater), the six positional
    arguments only, as run_train_epoch does one epoch; train and test are (X, y) pairs.
    Returns {'history': what it returned, 'params': the net's [W, b] afterwards}."""
    net, params, _ = _linear_net(net_kind, W, b)
    history = _student(namespace, "train_ch3")(
        net, _Batches(*train, batch_size), _Batches(*test, batch_size), _loss, num_epochs,
        _updater(updater_kind, params, lr, []))
    return {"history": _plain(history), "params": _detached(params)}


def run_predict(namespace, W, b, X, y, batch_size, n):
    """predict_ch3(net, test_iter[, n]) with a linear net and batches of X, y; n None leaves
    the default. Returns what it returned."""
    net, _, _ = _linear_net("function", W, b)
    args = (net, _Batches(X, y, batch_size)) + (() if n is None else (n,))
    return _plain(_student(namespace, "predict_ch3")(*args))


def loss_gradient(namespace, name, inputs, cotangents, through_softmax):
    """Gradients, through the student's own autograd graph, of name(x, *rest) with
    inputs = [x, *rest]: one vector-Jacobian product d(v . out)/dx per cotangent v in
    `cotangents` [k, *out.shape] (the identity gives the whole Jacobian). With
    through_softmax, x are logits and the student's function gets torch.softmax(x, dim=1).
    Returns {'output': the result, 'grads': [k, *x.shape], or None where the result is no
    tensor of the cotangents' shape that autograd can differentiate}."""
    x = inputs[0].detach().clone().requires_grad_(True)
    out = _student(namespace, name)(torch.softmax(x, dim=1) if through_softmax else x,
                                    *inputs[1:])
    if not (isinstance(out, torch.Tensor) and out.shape == cotangents.shape[1:]
            and out.requires_grad):
        return {"output": out, "grads": None}
    grads = [torch.autograd.grad(out, x, v.to(out.dtype), retain_graph=True, allow_unused=True)[0]
             for v in cotangents]
    if any(g is None for g in grads):  # the result does not depend on x through autograd
        return {"output": out.detach(), "grads": None}
    return {"output": out.detach(), "grads": torch.stack(grads)}


def inputs_after_call(namespace, name, inputs):
    """Calls name(*inputs) and returns the inputs as they are afterwards: the grader compares
    them with what it sent, to see whether the function modified its input in place."""
    _student(namespace, name)(*inputs)
    return list(inputs)


def read_idx(path):
    """An idx file (magic: two zero bytes, type code, number of dims; then the dims as
    big-endian uint32; then the data) of unsigned bytes -> uint8 tensor of those dims."""
    data = Path(path).read_bytes()
    _, _, ndim = struct.unpack(">HBB", data[:4])
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    return torch.frombuffer(bytearray(data), dtype=torch.uint8, offset=4 + 4 * ndim).reshape(shape)


def train_fashion_mnist(namespace, data_dir, epochs, lr, batch_size, seed):
    """The book's run with the student's own net, cross_entropy, sgd and train_ch3 on
    Fashion-MNIST's raw files in data_dir: globals W [784, 10] ~ N(0, 0.01) and b = 0,
    minibatches shuffled anew each epoch (seeded), test batches in order.
    Returns {'history': what train_ch3 returned, 'W': W, 'b': b afterwards}."""
    train_images, train_labels, test_images, test_labels = (
        read_idx(Path(data_dir) / name) for name in FASHION_MNIST_FILES)
    generator = torch.Generator().manual_seed(seed)
    train_iter = _Batches(train_images.unsqueeze(1).float() / 255, train_labels.long(),
                          batch_size, generator)
    test_iter = _Batches(test_images.unsqueeze(1).float() / 255, test_labels.long(), batch_size)
    W = torch.normal(0, 0.01, size=(784, 10), generator=generator).requires_grad_(True)
    b = torch.zeros(10, requires_grad=True)
    namespace["W"], namespace["b"] = W, b  # the globals the student's net reads
    sgd = _student(namespace, "sgd")
    history = _student(namespace, "train_ch3")(
        _student(namespace, "net"), train_iter, test_iter, _student(namespace, "cross_entropy"),
        epochs, lambda size: sgd([W, b], lr, size))
    return {"history": _plain(history), "W": W.detach().clone(), "b": b.detach().clone()}
