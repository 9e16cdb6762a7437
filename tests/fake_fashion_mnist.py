"""Tiny Fashion-MNIST look-alikes in the original idx format, for tests that must
not depend on the real data or on the network."""

import gzip
import struct
from pathlib import Path

import torch

from solutions.data_files import RAW_FILES


def idx_bytes(tensor):
    """uint8 tensor -> idx file bytes (magic 0x08 = unsigned byte, then dims big-endian)."""
    header = struct.pack(">HBB", 0, 0x08, tensor.ndim)
    header += b"".join(struct.pack(">I", size) for size in tensor.shape)
    return header + tensor.numpy().tobytes()


def fake_split(n, seed):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (n,), dtype=torch.uint8, generator=generator)
    return images, labels


def fake_files(n_train=12, n_test=5):
    """{raw file name: bytes} for the four files."""
    train_images, train_labels = fake_split(n_train, seed=1)
    test_images, test_labels = fake_split(n_test, seed=2)
    return dict(zip(RAW_FILES, map(idx_bytes, (train_images, train_labels,
                                               test_images, test_labels))))


def write_torchvision_layout(root, **sizes):
    raw = Path(root) / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name, content in fake_files(**sizes).items():
        (raw / name).write_bytes(content)
    return Path(root)


def write_debian_layout(directory, **sizes):
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in fake_files(**sizes).items():
        (directory / f"{name}.gz").write_bytes(gzip.compress(content))
    return directory
