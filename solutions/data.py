"""Fashion-MNIST: the book's DataLoader pipeline, and a fast tensor pipeline.

Where the data comes from (first match wins, see `find_fashion_mnist`):
  1. an explicit directory (`data_dir` argument / `--data-dir`), else $SOFTGRADE_DATA;
  2. the user's cache, $XDG_CACHE_HOME/softgrade (default ~/.cache/softgrade);
  3. Debian's package `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist),
     decompressed into the directory of 1 or 2 (Debian recompressed the files, so
     torchvision's checksums reject the .gz files themselves);
  4. torchvision's download, into that same directory.
A directory "has the data" when it holds torchvision's layout,
<dir>/FashionMNIST/raw/<the four idx files, not gzipped>.
"""

import gzip
import math
import os
import shutil
import tempfile
from pathlib import Path

import torch
from torch.utils import data

ENV_VAR = "SOFTGRADE_DATA"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
INSTALL_HINT = "apt-get install dataset-fashion-mnist"
RAW_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


class DataNotFoundError(FileNotFoundError):
    """Fashion-MNIST is in none of the places looked in."""


def default_cache_dir():
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_home) / "softgrade"


def raw_dir(root):
    return Path(root) / "FashionMNIST" / "raw"


def has_raw_files(root):
    return all((raw_dir(root) / name).is_file() for name in RAW_FILES)


def decompress_debian_files(source_dir, root):
    """Gunzip the four files of `source_dir` into torchvision's layout under `root`.

    Each file is written to a temporary name and renamed, so an interrupted run
    never leaves a truncated file that would later pass for the data.
    """
    target = raw_dir(root)
    target.mkdir(parents=True, exist_ok=True)
    for name in RAW_FILES:
        with gzip.open(Path(source_dir) / f"{name}.gz", "rb") as src, \
                tempfile.NamedTemporaryFile(dir=target, delete=False) as tmp:
            shutil.copyfileobj(src, tmp)
        os.replace(tmp.name, target / name)


def find_fashion_mnist(data_dir=None, download=True, debian_dir=None):
    """Return a root directory from which torchvision's FashionMNIST loads offline.

    Raises DataNotFoundError naming every place looked in and how to install the data.
    """
    debian_dir = Path(debian_dir or DEBIAN_DIR)
    explicit = data_dir or os.environ.get(ENV_VAR) or None
    target = Path(explicit) if explicit else default_cache_dir()
    looked = []
    for root in ([Path(explicit)] if explicit else []) + [default_cache_dir()]:
        if has_raw_files(root):
            return root
        looked.append(f"{raw_dir(root)} (no unpacked idx files)")

    debian_files = [debian_dir / f"{name}.gz" for name in RAW_FILES]
    if all(path.is_file() for path in debian_files):
        try:
            decompress_debian_files(debian_dir, target)
            return target
        except OSError as err:
            looked.append(f"{debian_dir} (found, but could not unpack into {target}: {err})")
    else:
        looked.append(f"{debian_dir} (Debian package dataset-fashion-mnist not installed)")

    if download:
        try:
            import torchvision  # here, not at the top: finding the files needs no torchvision

            torchvision.datasets.FashionMNIST(root=target, train=True, download=True)
            torchvision.datasets.FashionMNIST(root=target, train=False, download=True)
            return target
        except Exception as err:  # any network or checksum failure means: not found here
            reason = " ".join(str(err).split())  # torchvision's message spans lines
            looked.append(f"torchvision download into {target} ({type(err).__name__}: {reason})")
    else:
        looked.append("torchvision download (disabled)")

    raise DataNotFoundError(
        "Fashion-MNIST was not found. Looked in:\n"
        + "\n".join(f"  - {place}" for place in looked)
        + f"\nInstall it with `{INSTALL_HINT}` (as root), or pass --data-dir / set "
        f"${ENV_VAR} to a directory holding FashionMNIST/raw/{RAW_FILES[0]} and the other three files.")


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
