"""`softgrade train`: the reference solution trained on Fashion-MNIST, with a table,
curves and predictions."""

import json
import sys
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from solutions.data_files import DataNotFoundError
from solutions.device import DEVICE_CHOICES, DeviceUnavailableError
from solutions.training import TrainConfig, train_reference

USER_ERRORS = (DataNotFoundError, DeviceUnavailableError, OSError)

DESCRIPTION = """\
Train the reference softmax regression (d2l 3.6) on Fashion-MNIST with the book's
defaults, print a per-epoch table, and save the training curves and a picture of
test predictions as PNG files.

Fashion-MNIST is looked for in --data-dir (or $SOFTGRADE_DATA), ~/.cache/softgrade,
/usr/share/datasets/fashion-mnist (apt-get install dataset-fashion-mnist), then
downloaded by torchvision."""

def positive_int(text):
    value = int(text)
    if value <= 0:
        raise ValueError
    return value


positive_int.__name__ = "positive integer"


def positive_float(text):
    value = float(text)
    if not value > 0:
        raise ValueError
    return value


positive_float.__name__ = "positive number"


def add_arguments(parser):
    defaults = TrainConfig()
    parser.add_argument("--epochs", type=positive_int, default=defaults.epochs,
                        help="passes over the training set (default: %(default)s)")
    parser.add_argument("--lr", type=positive_float, default=defaults.lr,
                        help="SGD learning rate (default: %(default)s)")
    parser.add_argument("--batch-size", type=positive_int, default=defaults.batch_size,
                        help="minibatch size (default: %(default)s)")
    parser.add_argument("--device", default=defaults.device, metavar="{" + ",".join(DEVICE_CHOICES) + "}",
                        help="where to train; auto = CUDA when available (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=defaults.seed,
                        help="seeds initialisation and shuffling (default: %(default)s)")
    parser.add_argument("--threads", type=positive_int, default=defaults.threads,
                        help="CPU threads for torch (default: %(default)s; the model is small)")
    parser.add_argument("--data-dir", default=None,
                        help="directory to look for (or unpack) Fashion-MNIST first")
    parser.add_argument("--no-download", dest="download", action="store_false",
                        help="never download: fail unless a local copy is found")
    parser.add_argument("--plot", default="out/train", metavar="DIR",
                        help="where to write curves.png and predictions.png "
                             "(default: %(default)s; '' for no pictures)")
    parser.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                        help="write a machine-readable summary to PATH ('-' or no PATH: stdout, "
                             "and the table goes to stderr)")


def format_row(record):
    return (f"{record.epoch:>5}  {record.train_loss:>10.4f}  {record.train_acc:>9.4f}  "
            f"{record.test_acc:>8.4f}  {record.seconds:>7.2f}")


def summary(result, pictures):
    last = result.epochs[-1]
    return {
        "config": asdict(result.config),
        "device": result.device,
        "final": {"train_loss": last.train_loss, "train_acc": last.train_acc,
                  "test_acc": last.test_acc},
        "epochs": [asdict(record) for record in result.epochs],
        "total_seconds": sum(record.seconds for record in result.epochs),
        "predictions": {"true": result.true_labels, "predicted": result.predicted_labels},
        "pictures": pictures,
    }


def run(args):
    config = TrainConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                         device=args.device, seed=args.seed, data_dir=args.data_dir,
                         download=args.download, threads=args.threads)
    # With --json on stdout, everything for people goes to stderr so stdout parses.
    table = sys.stderr if args.json == "-" else sys.stdout
    progress = tqdm(total=config.epochs, desc="training", unit="epoch", file=sys.stderr,
                    leave=False, disable=None)
    header = f"{'epoch':>5}  {'train loss':>10}  {'train acc':>9}  {'test acc':>8}  {'seconds':>7}"

    def on_epoch(record):
        if record.epoch == 1:
            progress.write(header, file=table)
        progress.write(format_row(record), file=table)
        progress.update()

    with progress:
        result = train_reference(config, on_epoch=on_epoch)
    last = result.epochs[-1]
    print(f"device {result.device}: test accuracy {last.test_acc:.4f}, train loss "
          f"{last.train_loss:.4f} after {config.epochs} epochs in "
          f"{sum(r.seconds for r in result.epochs):.1f} s", file=table)

    pictures = {}
    if args.plot:
        from solutions.plots import plot_curves, plot_predictions
        out = Path(args.plot)
        out.mkdir(parents=True, exist_ok=True)
        history = [(r.train_loss, r.train_acc, r.test_acc) for r in result.epochs]
        pictures["curves"] = str(out / "curves.png")
        pictures["predictions"] = str(out / "predictions.png")
        plot_curves(history, pictures["curves"], title=f"softmax regression ({result.device})")
        plot_predictions(result.test_images, result.true_labels, result.predicted_labels,
                         pictures["predictions"])
        print(f"pictures: {pictures['curves']}, {pictures['predictions']}", file=table)

    if args.json is not None:
        text = json.dumps(summary(result, pictures), indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
    return 0
