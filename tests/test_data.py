import pytest
import torch
import torchvision
from fake_fashion_mnist import fake_files, write_debian_layout, write_torchvision_layout
from torchvision import transforms

from solutions import data_files
from solutions.data import TensorBatches, load_fashion_mnist_tensors
from solutions.data_files import DataNotFoundError, find_fashion_mnist


@pytest.fixture
def places(tmp_path, monkeypatch):
    """Every place the data is looked for, under tmp_path and empty."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(data_files.ENV_VAR, raising=False)
    monkeypatch.setattr(data_files, "DEBIAN_DIR", tmp_path / "debian")
    return tmp_path


def test_explicit_dir_comes_first(places):
    write_torchvision_layout(places / "cache" / "softgrade")
    explicit = write_torchvision_layout(places / "explicit")
    assert find_fashion_mnist(explicit, download=False) == explicit


def test_environment_variable_is_used_without_explicit_dir(places, monkeypatch):
    from_env = write_torchvision_layout(places / "env")
    write_torchvision_layout(places / "cache" / "softgrade")
    monkeypatch.setenv(data_files.ENV_VAR, str(from_env))
    assert find_fashion_mnist(download=False) == from_env


def test_user_cache_before_debian(places):
    cache = write_torchvision_layout(places / "cache" / "softgrade")
    write_debian_layout(places / "debian")
    assert find_fashion_mnist(download=False) == cache


def test_debian_files_are_unpacked_into_the_cache(places):
    write_debian_layout(places / "debian")
    root = find_fashion_mnist(download=False)
    assert root == places / "cache" / "softgrade"
    for name, content in fake_files().items():
        assert (root / "FashionMNIST" / "raw" / name).read_bytes() == content
    # and torchvision loads them offline
    dataset = torchvision.datasets.FashionMNIST(root=root, train=False, download=False)
    assert len(dataset) == 5


def test_debian_files_are_unpacked_into_an_empty_explicit_dir(places):
    write_debian_layout(places / "debian")
    explicit = places / "explicit"
    assert find_fashion_mnist(explicit, download=False) == explicit
    assert data_files.has_raw_files(explicit)
    assert not data_files.has_raw_files(places / "cache" / "softgrade")


def test_not_found_names_every_place_and_the_install_command(places):
    with pytest.raises(DataNotFoundError) as info:
        find_fashion_mnist(places / "explicit", download=False)
    message = str(info.value)
    for place in (places / "explicit", places / "cache" / "softgrade", places / "debian"):
        assert str(place) in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "download (disabled)" in message


def test_failed_download_is_reported_in_one_line(places, monkeypatch):
    class Offline:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("Error downloading:\nName or service not known")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", Offline)
    with pytest.raises(DataNotFoundError) as info:
        find_fashion_mnist(download=True)
    line = next(l for l in str(info.value).splitlines() if "torchvision download" in l)
    assert "Error downloading: Name or service not known" in line


def test_tensors_equal_what_to_tensor_gives(places):
    root = write_torchvision_layout(places / "explicit")
    images, labels = load_fashion_mnist_tensors(True, data_dir=root, download=False)
    book = torchvision.datasets.FashionMNIST(root=root, train=True, download=False,
                                             transform=transforms.ToTensor())
    assert images.shape == (12, 1, 28, 28) and images.dtype == torch.float32
    for i in range(len(book)):
        image, label = book[i]
        assert torch.equal(images[i], image)
        assert labels[i].item() == label


def batches_of(iterator):
    return [(X.clone(), y.clone()) for X, y in iterator]


def test_tensor_batches_cover_each_example_once_with_a_partial_last_batch():
    X = torch.arange(10.0).reshape(10, 1)
    y = torch.arange(10)
    for shuffle in (False, True):
        batches = batches_of(TensorBatches(X, y, 4, shuffle=shuffle,
                                           generator=torch.Generator().manual_seed(0)))
        assert [len(b[1]) for b in batches] == [4, 4, 2]
        assert sorted(torch.cat([b[1] for b in batches]).tolist()) == list(range(10))
        for X_batch, y_batch in batches:
            assert torch.equal(X_batch[:, 0].long(), y_batch)  # images stay with their labels
    assert len(TensorBatches(X, y, 4)) == 3


def test_tensor_batches_reshuffle_each_pass_and_repeat_with_the_seed():
    X, y = torch.zeros(100, 1), torch.arange(100)

    def two_passes(seed):
        batches = TensorBatches(X, y, 100, shuffle=True,
                                generator=torch.Generator().manual_seed(seed))
        return [next(iter(batches))[1] for _ in range(2)]

    first, second = two_passes(0)
    assert not torch.equal(first, second)
    assert all(torch.equal(a, b) for a, b in zip(two_passes(0), (first, second)))


def test_real_data_matches_the_book_pipeline():
    """The fast path serves the same images as the book's DataLoader path (real data)."""
    root = find_fashion_mnist(download=False)
    images, labels = load_fashion_mnist_tensors(False, data_dir=root, download=False)
    assert images.shape == (10000, 1, 28, 28) and labels.shape == (10000,)
    book = torchvision.datasets.FashionMNIST(root=root, train=False, download=False,
                                             transform=transforms.ToTensor())
    for i in (0, 1, 4321, 9999):
        image, label = book[i]
        assert torch.equal(images[i], image) and labels[i].item() == label
    assert torch.bincount(labels).tolist() == [1000] * 10  # the test split is balanced


@pytest.mark.parametrize("train", [True, False])
def test_the_graders_idx_reader_matches_torchvision(train):
    """The grader (and its harness in the sandbox) reads the idx files without torchvision;
    torchvision's dataset is the oracle."""
    from grader.hidden.train import fashion_mnist_test_set
    from grader.scenarios import FASHION_MNIST_FILES, read_idx

    root = find_fashion_mnist(download=False)
    oracle = torchvision.datasets.FashionMNIST(root=root, train=train, download=False)
    images_file, labels_file = FASHION_MNIST_FILES[:2] if train else FASHION_MNIST_FILES[2:]
    raw = root / "FashionMNIST" / "raw"
    assert torch.equal(read_idx(raw / images_file), oracle.data)
    assert torch.equal(read_idx(raw / labels_file), oracle.targets.to(torch.uint8))
    if not train:
        X, y = fashion_mnist_test_set()
        assert torch.equal(X, oracle.data.reshape(10000, 784).float() / 255)
        assert torch.equal(y, oracle.targets)
