"""softgrade's reference solution: softmax regression from scratch (d2l 3.6) and
the five exercises. Device-agnostic: every function follows its inputs' device
and dtype; training and data take a `device` argument ('auto' = CUDA if present).

Import the module you need (this package imports nothing by itself, so that the
grader can find the data files without importing torch):
  softmax_regression  the book's core functions, from softmax to train_ch3
  exercises           the five exercises
  data, data_files    Fashion-MNIST: loading it, and finding its files
  training            the run behind `softgrade train`
  plots, device
"""
