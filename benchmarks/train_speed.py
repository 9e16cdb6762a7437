"""The book's training loop against `softgrade train`'s, one after the other in one run.

Same model, loss, updater and hyper-parameters (10 epochs, lr 0.1, batch 256,
N(0, 0.01) weights); the difference is the input pipeline: the book decodes every
image with ToTensor through a DataLoader each epoch, softgrade keeps each split as
one tensor on the device. Prints both times (data loading included in both), their ratio and both test
accuracies. softgrade's loop is short next to the machine's noise, so it runs
three times, once before and twice after the book's loop, and the median counts.

    .venv/bin/python benchmarks/train_speed.py [--epochs 10] [--device auto]
"""

import argparse
import statistics
import time

import torch

from solutions import softmax_regression as sr
from solutions.data import load_data_fashion_mnist
from solutions.device import resolve_device
from solutions.training import TrainConfig, train_reference


def book_loop(config):
    """d2l 3.6 as printed: DataLoader + ToTensor, the book's functions, on the CPU,
    with torch's default number of threads (as the book runs it)."""
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)  # the DataLoader's shuffling draws from the global RNG
    start = time.perf_counter()
    train_iter, test_iter = load_data_fashion_mnist(config.batch_size, data_dir=config.data_dir)
    params = sr.init_params(generator=generator)
    history = sr.train_ch3(sr.net, train_iter, test_iter, sr.cross_entropy, config.epochs,
                           lambda batch_size: sr.sgd(params, config.lr, batch_size))
    return time.perf_counter() - start, history[-1][2]


def softgrade_loop(config):
    start = time.perf_counter()
    result = train_reference(config)
    return time.perf_counter() - start, result.epochs[-1].test_acc, result.device


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--device", default="auto", help="device of softgrade's loop")
    args = parser.parse_args()
    config = TrainConfig(epochs=args.epochs, device=args.device)
    resolve_device(args.device)  # fail before the long run, not after it

    default_threads = torch.get_num_threads()
    fast_runs = [softgrade_loop(config)]
    torch.set_num_threads(default_threads)  # softgrade's loop set its own count
    book_seconds, book_acc = book_loop(config)
    fast_runs += [softgrade_loop(config), softgrade_loop(config)]
    fast_seconds = statistics.median(seconds for seconds, _, _ in fast_runs)
    _, fast_acc, device = fast_runs[0]
    print(f"{'loop':<28} {'seconds':>8} {'test acc':>9}")
    print(f"{'book (DataLoader, cpu)':<28} {book_seconds:>8.2f} {book_acc:>9.4f}")
    print(f"{'softgrade train (' + device + ')':<28} {fast_seconds:>8.2f} {fast_acc:>9.4f}"
          f"   median of {', '.join(f'{seconds:.2f}' for seconds, _, _ in fast_runs)}")
    print(f"speed-up: {book_seconds / fast_seconds:.1f}x over {args.epochs} epochs "
          f"(torch threads: book {default_threads}, softgrade {config.threads})")


if __name__ == "__main__":
    main()
