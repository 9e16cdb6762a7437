"""Softmax regression from scratch: the reference for the core parts (d2l, section 3.6).

Each function is the book's definition, written so a student can read it line by
line. The naive `softmax` and `cross_entropy` stay naive on purpose: exercises 1
to 3 (see `exercises.py`) are about what goes wrong with them and how to fix it.
Everything follows the device and dtype of its inputs.
"""

import torch
from torch import nn

NUM_INPUTS = 28 * 28
NUM_OUTPUTS = 10

TEXT_LABELS = ["t-shirt", "trouser", "pullover", "dress", "coat",
               "sandal", "shirt", "sneaker", "bag", "ankle boot"]


def softmax(X):
    """Row-wise softmax by the definition: X [n, q] -> [n, q], each row sums to 1."""
    X_exp = torch.exp(X)
    partition = X_exp.sum(1, keepdim=True)  # [n, 1]: broadcast over the q columns below
    return X_exp / partition


def init_params(num_inputs=NUM_INPUTS, num_outputs=NUM_OUTPUTS, device="cpu",
                dtype=torch.float32, generator=None):
    """Set the model's globals `W` [num_inputs, num_outputs] ~ N(0, 0.01) and `b` = 0.

    The book keeps the parameters in globals that `net` reads; this function is
    that notebook cell, seeded through `generator` so runs can be repeated.
    Returns (W, b).
    """
    global W, b
    W = torch.normal(0, 0.01, size=(num_inputs, num_outputs), generator=generator,
                     dtype=dtype).to(device).requires_grad_(True)
    b = torch.zeros(num_outputs, dtype=dtype, device=device, requires_grad=True)
    return W, b


W, b = init_params(generator=torch.Generator().manual_seed(0))


def net(X):
    """The model: images X [n, 1, 28, 28] (or [n, 784]) -> class probabilities [n, 10]."""
    return softmax(X.reshape((-1, W.shape[0])) @ W + b)


def cross_entropy(y_hat, y):
    """Per-example loss -log(y_hat[i, y[i]]): y_hat [n, q] probabilities, y [n] labels -> [n]."""
    # The index pair (rows, y) picks, in each row, the probability of the true class.
    rows = torch.arange(y_hat.shape[0], device=y_hat.device)
    return -torch.log(y_hat[rows, y])


def accuracy(y_hat, y):
    """The NUMBER of correct predictions, as a Python float.

    y_hat is either scores [n, q] (the prediction is the argmax of each row) or
    predicted labels [n]; y holds the true labels [n].
    """
    if len(y_hat.shape) > 1 and y_hat.shape[1] > 1:
        y_hat = y_hat.argmax(dim=1)
    cmp = y_hat.type(y.dtype) == y
    return float(cmp.type(y.dtype).sum())


class Accumulator:
    """Running sums of n values, e.g. (loss, number correct, number seen)."""

    def __init__(self, n):
        self.data = [0.0] * n

    def add(self, *args):
        self.data = [a + float(b) for a, b in zip(self.data, args)]

    def reset(self):
        self.data = [0.0] * len(self.data)

    def __getitem__(self, idx):
        return self.data[idx]


def evaluate_accuracy(net, data_iter):
    """Fraction of correct predictions of `net` over all examples of `data_iter`."""
    if isinstance(net, nn.Module):
        net.eval()  # e.g. dropout off
    metric = Accumulator(2)  # correct predictions, examples
    with torch.no_grad():  # evaluation needs no graph: saves memory and time
        for X, y in data_iter:
            metric.add(accuracy(net(X), y), y.numel())
    return metric[0] / metric[1]


def sgd(params, lr, batch_size):
    """Minibatch SGD, in place: p -= lr * p.grad / batch_size, then zero the gradient.

    The loss was summed over the batch, hence the division by batch_size.
    """
    with torch.no_grad():  # the update itself must not be recorded by autograd
        for param in params:
            param -= lr * param.grad / batch_size
            param.grad.zero_()


def train_epoch_ch3(net, train_iter, loss, updater):
    """One pass over `train_iter`; returns (mean training loss, training accuracy).

    `loss` returns per-example losses. `updater` is a torch optimizer (which
    expects the mean loss) or a function updater(batch_size) like `sgd` (which
    expects the summed loss). Means are over examples, so a smaller last batch
    counts for what it holds.
    """
    if isinstance(net, nn.Module):
        net.train()
    metric = Accumulator(3)  # summed loss, correct predictions, examples
    for X, y in train_iter:
        y_hat = net(X)
        l = loss(y_hat, y)
        if isinstance(updater, torch.optim.Optimizer):
            updater.zero_grad()
            l.mean().backward()
            updater.step()
        else:
            l.sum().backward()
            updater(X.shape[0])
        metric.add(float(l.detach().sum()), accuracy(y_hat, y), y.numel())
    return metric[0] / metric[2], metric[1] / metric[2]


def train_ch3(net, train_iter, test_iter, loss, num_epochs, updater, *, on_epoch=None):
    """Train for `num_epochs`; returns [(train_loss, train_acc, test_acc), ...], one per epoch.

    `on_epoch(epoch, metrics)` (optional, keyword only) is called after each
    epoch, e.g. to draw curves or print a table; the book's Animator does this.
    """
    history = []
    for epoch in range(num_epochs):
        train_loss, train_acc = train_epoch_ch3(net, train_iter, loss, updater)
        test_acc = evaluate_accuracy(net, test_iter)
        history.append((train_loss, train_acc, test_acc))
        if on_epoch is not None:
            on_epoch(epoch, history[-1])
    return history


def get_fashion_mnist_labels(labels):
    """Numeric labels (tensor or list of ints) -> the book's text labels, a list of str."""
    return [TEXT_LABELS[int(i)] for i in labels]


def predict_ch3(net, test_iter, n=6):
    """(true labels, predicted labels) as two lists of n strings, for the first batch."""
    X, y = next(iter(test_iter))
    with torch.no_grad():
        predicted = net(X).argmax(dim=1)
    return get_fashion_mnist_labels(y[:n]), get_fashion_mnist_labels(predicted[:n])
