"""The reference training run behind `softgrade train`: the book's model, loss and
updater, fed by the fast tensor pipeline of `data.py`."""

import time
from dataclasses import dataclass, field

import torch

from . import softmax_regression as sr
from .data import load_data_fashion_mnist_fast
from .device import resolve_device


@dataclass
class TrainConfig:
    """Hyper-parameters and placement of one run; the defaults are the book's."""

    epochs: int = 10
    """Passes over the 60,000 training images."""
    lr: float = 0.1
    """Learning rate of minibatch SGD."""
    batch_size: int = 256
    """Examples per minibatch."""
    device: str = "auto"
    """'auto' (CUDA when available), 'cpu', 'cuda' or 'cuda:N'."""
    seed: int = 0
    """Seeds the weight initialisation and the shuffling."""
    data_dir: str | None = None
    """Where to look for Fashion-MNIST first (see data_files.find_fashion_mnist)."""
    download: bool = True
    """Whether torchvision may download the data when no local copy is found."""
    threads: int = 1
    """CPU threads for torch. The matrices are small ([256, 784] @ [784, 10]): one
    thread is as fast as several, and it does not slow down by 30x when another
    process keeps a core busy (threads that wait for each other do)."""


@dataclass
class EpochRecord:
    """Metrics of one epoch."""

    epoch: int
    """1-based epoch number."""
    train_loss: float
    """Mean cross-entropy over the training examples seen in the epoch."""
    train_acc: float
    """Fraction of training examples classified right during the epoch."""
    test_acc: float
    """Fraction of the 10,000 test images classified right after the epoch."""
    seconds: float
    """Wall time of the epoch, evaluation included."""


@dataclass
class TrainResult:
    """What a run produced."""

    config: TrainConfig
    """The configuration it ran with."""
    device: str
    """The device it actually ran on."""
    epochs: list[EpochRecord] = field(default_factory=list)
    """One record per epoch."""
    test_images: torch.Tensor | None = None
    """The first test batch's images [n, 1, 28, 28], on the CPU, for display."""
    true_labels: list[str] = field(default_factory=list)
    """Text labels of those images."""
    predicted_labels: list[str] = field(default_factory=list)
    """What the trained model predicts for them."""


def train_reference(config, on_epoch=None, num_predictions=8):
    """Train softmax regression as the book does; `on_epoch(record)` after each epoch."""
    device = resolve_device(config.device)
    torch.set_num_threads(config.threads)
    generator = torch.Generator().manual_seed(config.seed)
    train_iter, test_iter = load_data_fashion_mnist_fast(
        config.batch_size, device=device, data_dir=config.data_dir, generator=generator,
        download=config.download)
    params = sr.init_params(device=device, generator=generator)
    result = TrainResult(config=config, device=str(device))
    epoch_start = time.perf_counter()

    def record(epoch, metrics):
        nonlocal epoch_start
        now = time.perf_counter()
        result.epochs.append(EpochRecord(epoch + 1, *metrics, seconds=now - epoch_start))
        epoch_start = now
        if on_epoch is not None:
            on_epoch(result.epochs[-1])

    sr.train_ch3(sr.net, train_iter, test_iter, sr.cross_entropy, config.epochs,
                 lambda batch_size: sr.sgd(params, config.lr, batch_size), on_epoch=record)
    result.true_labels, result.predicted_labels = sr.predict_ch3(sr.net, test_iter,
                                                                 n=num_predictions)
    result.test_images = next(iter(test_iter))[0][:num_predictions].cpu()
    return result
