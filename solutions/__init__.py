"""softgrade's reference solution: softmax regression from scratch (d2l 3.6) and
the five exercises. Device-agnostic: every function follows its inputs' device
and dtype; training and data take a `device` argument ('auto' = CUDA if present).
"""

from .data import (DataNotFoundError, TensorBatches, find_fashion_mnist,
                   load_data_fashion_mnist, load_data_fashion_mnist_fast,
                   load_fashion_mnist_tensors)
from .device import DeviceUnavailableError, resolve_device
from .exercises import (bayes_decision, decide_with_reject, expected_cost, full_log_prob,
                        log_softmax, naive_cross_entropy_breaks,
                        naive_softmax_breaks, overflow_threshold, softmax_cross_entropy,
                        stable_softmax, two_level_log_prob)
from .softmax_regression import (TEXT_LABELS, Accumulator, accuracy, cross_entropy,
                                 evaluate_accuracy, get_fashion_mnist_labels, init_params,
                                 net, predict_ch3, sgd, softmax, train_ch3, train_epoch_ch3)

__all__ = [
    "Accumulator", "DataNotFoundError", "DeviceUnavailableError", "TEXT_LABELS",
    "TensorBatches", "accuracy", "bayes_decision", "cross_entropy", "decide_with_reject",
    "evaluate_accuracy", "expected_cost", "find_fashion_mnist", "full_log_prob",
    "get_fashion_mnist_labels", "init_params", "load_data_fashion_mnist",
    "load_data_fashion_mnist_fast", "load_fashion_mnist_tensors", "log_softmax",
    "naive_cross_entropy_breaks", "naive_softmax_breaks", "net",
    "overflow_threshold", "predict_ch3", "resolve_device", "sgd", "softmax",
    "softmax_cross_entropy", "stable_softmax", "train_ch3", "train_epoch_ch3",
    "two_level_log_prob",
]
