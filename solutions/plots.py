"""Pictures of a training run: curves as d2l's Animator draws them, and predictions."""

import matplotlib

matplotlib.use("Agg")  # files only: works without a display
import matplotlib.pyplot as plt  # noqa: E402


def plot_curves(history, path, title=None):
    """history: [(train_loss, train_acc, test_acc), ...] per epoch -> PNG at `path`."""
    epochs = range(1, len(history) + 1)
    fig, ax = plt.subplots(figsize=(4.5, 3.2), dpi=120)
    for values, style, label in zip(zip(*history), ("-", "m--", "g-."),
                                    ("train loss", "train acc", "test acc")):
        ax.plot(epochs, values, style, label=label)
    ax.set_xlabel("epoch")
    ax.set_xlim(1, max(len(history), 2))
    ax.set_ylim(0.3, 0.9)
    ax.grid(True)
    ax.legend()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_predictions(images, true_labels, predicted_labels, path):
    """images [n, 1, 28, 28] with 'true / predicted' titles -> PNG at `path`."""
    n = len(true_labels)
    fig, axes = plt.subplots(1, n, figsize=(1.5 * n, 2.0), dpi=120, squeeze=False)
    for ax, image, true, pred in zip(axes[0], images, true_labels, predicted_labels):
        ax.imshow(image.reshape(28, 28).numpy(), cmap="gray_r")
        ax.set_title(f"{true}\n{pred}", fontsize=8, color="black" if true == pred else "red")
        ax.axis("off")
    fig.suptitle("true label / predicted label (red: wrong)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
