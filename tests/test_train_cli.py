"""`softgrade train` end to end, as a user runs it (a subprocess of the console script)."""

import json
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest
import torch

SOFTGRADE = [sys.executable, "-m", "grader.cli"]


def softgrade(*args, cwd):
    return subprocess.run([*SOFTGRADE, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


@pytest.fixture(scope="module")
def two_default_runs(tmp_path_factory):
    runs = []
    for i in range(2):
        out = tmp_path_factory.mktemp(f"run{i}")
        proc = softgrade("train", "--device", "cpu", "--json", "-", "--plot", str(out),
                         cwd=out)
        assert proc.returncode == 0, proc.stderr
        runs.append((json.loads(proc.stdout), proc.stderr, out))
    return runs


def test_default_run_reaches_the_book_accuracy(two_default_runs):
    summary, _, _ = two_default_runs[0]
    assert summary["config"]["epochs"] == 10 and len(summary["epochs"]) == 10
    assert summary["final"]["test_acc"] >= 0.83
    assert summary["final"]["train_loss"] < 0.5
    assert summary["device"] == "cpu"


def test_same_seed_same_numbers(two_default_runs):
    (first, _, _), (second, _, _) = two_default_runs
    metrics = ("train_loss", "train_acc", "test_acc")
    assert [[e[k] for k in metrics] for e in first["epochs"]] == \
        [[e[k] for k in metrics] for e in second["epochs"]]
    assert first["predictions"] == second["predictions"]


def test_table_goes_to_stderr_when_json_takes_stdout(two_default_runs):
    summary, stderr, _ = two_default_runs[0]
    lines = stderr.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["epoch", "train"])
    rows = [line.split() for line in lines[header + 1:header + 11]]
    assert [int(row[0]) for row in rows] == list(range(1, 11))
    assert float(rows[-1][3]) == pytest.approx(summary["final"]["test_acc"], abs=1e-4)


def test_pictures_are_written(two_default_runs):
    summary, _, out = two_default_runs[0]
    curves = matplotlib.image.imread(summary["pictures"]["curves"])
    predictions = matplotlib.image.imread(summary["pictures"]["predictions"])
    assert Path(summary["pictures"]["curves"]).parent == out
    assert curves.shape[0] > 100 and curves.shape[1] > 100
    assert predictions.shape[1] > 4 * predictions.shape[0]  # a row of images
    assert curves[..., :3].std() > 0.05  # not a blank canvas
    assert len(summary["predictions"]["true"]) == len(summary["predictions"]["predicted"]) == 8


def test_other_hyper_parameters_are_applied(tmp_path):
    proc = softgrade("train", "--epochs", "1", "--lr", "0.05", "--batch-size", "1000",
                     "--seed", "3", "--plot", "", "--json", str(tmp_path / "s.json"),
                     cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["config"] | {"data_dir": None} == {
        "epochs": 1, "lr": 0.05, "batch_size": 1000, "device": "auto", "seed": 3,
        "data_dir": None, "download": True, "threads": 1}
    assert summary["pictures"] == {} and not (tmp_path / "out").exists()
    assert "epoch" in proc.stdout  # the table is on stdout when --json writes a file


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on CPU-only machines")
def test_cuda_without_cuda_is_a_clear_error(tmp_path):
    proc = softgrade("train", "--device", "cuda", cwd=tmp_path)
    assert proc.returncode == 2
    assert "CUDA is not available" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_run(tmp_path):
    proc = softgrade("train", "--device", "cuda", "--json", "-", "--plot", "", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["device"].startswith("cuda") and summary["final"]["test_acc"] >= 0.83


@pytest.mark.parametrize("args, complaint", [
    (["--epochs", "0"], "invalid positive integer value"),
    (["--lr", "-1"], "invalid positive number value"),
    (["--device", "tpu"], "unknown device 'tpu'"),
])
def test_bad_arguments_are_named(tmp_path, args, complaint):
    proc = softgrade("train", *args, "--plot", "", cwd=tmp_path)
    assert proc.returncode == 2
    assert complaint in proc.stderr and "Traceback" not in proc.stderr


def test_missing_data_lists_the_places_looked_in(tmp_path, monkeypatch, capsys):
    from grader import cli
    from solutions import data_files
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(data_files, "DEBIAN_DIR", tmp_path / "no-debian")
    code = cli.main(["train", "--no-download", "--data-dir", str(tmp_path / "empty"),
                     "--plot", ""])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("softgrade train: error: Fashion-MNIST was not found")
    assert str(tmp_path / "empty") in err and str(tmp_path / "no-debian") in err
    assert "apt-get install dataset-fashion-mnist" in err


def test_unwritable_plot_dir_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("")
    proc = softgrade("train", "--epochs", "1", "--plot", str(tmp_path / "file" / "sub"),
                     cwd=tmp_path)
    assert proc.returncode == 2
    assert "softgrade train: error:" in proc.stderr and "Traceback" not in proc.stderr
