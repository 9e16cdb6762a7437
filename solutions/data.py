"""Fashion-MNIST: the book's DataLoader pipeline, and a fast tensor pipeline.

Where the files come from is `data_files.find_fashion_mnist`.
"""

import math

import torch
from torch.utils import data

from .data_files import find_fashion_mnist


def get_dataloader_workers():
    """The book's choice of worker processes for reading the data."""
    return 4


def load_data_fashion_mnist(batch_size, resize=None, data_dir=None, download=True):
    """The book's pipeline: (train_iter, test_iter) DataLoaders of ToTensor images [B, 1, 28, 28]."""
    import torchvision
    from torchvision import transforms

    trans = [transforms.ToTensor()]
    if resize:
        trans.insert(0, transforms.Resize(resize))
    trans = transforms.Compose(trans)
    root = find_fashion_mnist(data_dir, download)
    mnist_train = torchvision.datasets.FashionMNIST(root=root, train=True, transform=trans,
                                                    download=False)
    mnist_test = torchvision.datasets.FashionMNIST(root=root, train=False, transform=trans,
                                                   download=False)
    return (data.DataLoader(mnist_train, batch_size, shuffle=True,
                            num_workers=get_dataloader_workers()),
            data.DataLoader(mnist_test, batch_size, shuffle=False,
                            num_workers=get_dataloader_workers()))


def load_fashion_mnist_tensors(train, device="cpu", data_dir=None, download=True):
    """One split as two tensors on `device`: images [N, 1, 28, 28] float32 in [0, 1], labels [N].

    The same numbers as ToTensor gives (uint8 / 255), converted once for the
    whole split instead of once per image per epoch.
    """
    import torchvision

    root = find_fashion_mnist(data_dir, download)
    dataset = torchvision.datasets.FashionMNIST(root=root, train=train, download=False)
    images = dataset.data.to(device).unsqueeze(1).to(torch.float32) / 255
    return images, dataset.targets.to(device)


class TensorBatches:
    """Mini-batches (X[idx], y[idx]) of tensors already in memory, in any order.

    With `shuffle`, every pass draws a new permutation from `generator` (a CPU
    torch.Generator, so runs repeat on any device). The last batch holds the
    remainder, as a DataLoader's does.
    """

    def __init__(self, X, y, batch_size, shuffle=False, generator=None):
        self.X, self.y = X, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator

    def __len__(self):
        return math.ceil(len(self.y) / self.batch_size)

    def __iter__(self):
        n = len(self.y)
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator).to(self.y.device)
            for start in range(0, n, self.batch_size):
                idx = order[start:start + self.batch_size]
                # index_select picks the same rows as X[idx], with a kernel about
                # four times faster on the CPU: the gather is most of an epoch's cost.
                yield self.X.index_select(0, idx), self.y.index_select(0, idx)
        else:
            for start in range(0, n, self.batch_size):
                yield self.X[start:start + self.batch_size], self.y[start:start + self.batch_size]


def load_data_fashion_mnist_fast(batch_size, device="cpu", data_dir=None, generator=None,
                                 download=True):
    """(train_iter, test_iter) like `load_data_fashion_mnist`, served from tensors on `device`."""
    X_train, y_train = load_fashion_mnist_tensors(True, device, data_dir, download)
    X_test, y_test = load_fashion_mnist_tensors(False, device, data_dir, download)
    return (TensorBatches(X_train, y_train, batch_size, shuffle=True, generator=generator),
            TensorBatches(X_test, y_test, batch_size))
