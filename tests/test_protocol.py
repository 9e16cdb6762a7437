"""The wire format: any tensor a student's function returns travels, whatever its strides,
and arrives equal to what was sent; receive buffers are reused only when nothing holds them."""

import os
import threading

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grader import protocol

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64,
          torch.complex128, torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64,
          torch.bool]


def base_tensor(dtype, shape, seed):
    g = torch.Generator().manual_seed(seed)
    values = torch.randn(shape, generator=g, dtype=torch.float64) * 50
    if dtype.is_complex:
        return torch.complex(values, values.flip(-1) if values.dim() else values).to(dtype)
    if dtype == torch.bool:
        return values > 0
    return values.to(dtype)


@st.composite
def views(draw):
    """A tensor of a supported dtype seen through a chain of views: transposes, stepped
    slices, expansions, diagonals, as_strided windows, conjugate and negative bits."""
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(st.lists(st.integers(0, 5), min_size=0, max_size=3))
    tensor = base_tensor(dtype, shape, draw(st.integers(0, 2 ** 16)))
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["transpose", "slice", "expand", "diagonal", "as_strided",
                                     "select", "conj", "neg"]))
        if kind == "transpose" and tensor.dim() >= 2:
            tensor = tensor.transpose(0, tensor.dim() - 1)
        elif kind == "slice" and tensor.dim() >= 1:
            start = draw(st.integers(0, max(tensor.shape[0] - 1, 0)))
            tensor = tensor[start::draw(st.integers(1, 3))]
        elif kind == "expand":
            tensor = tensor.unsqueeze(0).expand(draw(st.integers(0, 3)), *tensor.shape)
        elif kind == "diagonal" and tensor.dim() >= 2:
            tensor = tensor.diagonal()
        elif kind == "as_strided" and tensor.numel() > 0:
            size = draw(st.lists(st.integers(0, 3), min_size=1, max_size=2))
            stride = draw(st.lists(st.integers(0, 2), min_size=len(size), max_size=len(size)))
            reach = sum((n - 1) * s for n, s in zip(size, stride) if n > 0)
            storage_numel = tensor.untyped_storage().nbytes() // tensor.element_size()
            if all(n > 0 for n in size) and reach + tensor.storage_offset() < storage_numel:
                tensor = tensor.as_strided(size, stride)
        elif kind == "select" and tensor.dim() >= 1 and tensor.shape[0] > 0:
            tensor = tensor[draw(st.integers(0, tensor.shape[0] - 1))]
        elif kind == "conj" and tensor.is_complex():
            tensor = tensor.conj()
        elif kind == "neg" and tensor.is_complex():
            tensor = tensor.conj().imag  # a view with the negative bit set
    return tensor


def round_trip(value):
    blobs = []
    encoded = protocol.encode_value(value, blobs)
    return protocol.decode_value(encoded, blobs)


def through_a_pipe(value):
    """value -> write_message -> a real pipe -> read_message -> decode_value."""
    read_fd, write_fd = os.pipe()
    blobs = []
    header = {"value": protocol.encode_value(value, blobs)}
    # a writer thread: the message may exceed the pipe's buffer
    writer = threading.Thread(target=lambda: _write_and_close(write_fd, header, blobs))
    writer.start()
    with os.fdopen(read_fd, "rb", buffering=0) as stream:
        received, received_blobs = protocol.read_message(stream)
    writer.join()
    return protocol.decode_value(received["value"], received_blobs)


def _write_and_close(fd, header, blobs):
    with os.fdopen(fd, "wb", buffering=0) as stream:
        protocol.write_message(stream, header, blobs)


def plain(tensor):
    return tensor.resolve_conj().resolve_neg()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(views())
def test_any_view_travels_and_arrives_equal(tensor):
    for arrived in (round_trip(tensor), through_a_pipe(tensor)):
        assert type(arrived) is torch.Tensor
        assert arrived.dtype == tensor.dtype and arrived.shape == tensor.shape
        assert arrived.is_contiguous() and not arrived.is_conj() and not arrived.is_neg()
        assert torch.equal(arrived, plain(tensor))


@pytest.mark.parametrize("make", [
    lambda: torch.randn(4, 5)[:, torch.tensor([3])].diagonal(),  # one element, stride 2
    lambda: torch.tensor(2.5),
    lambda: torch.empty(0, 3),
    lambda: torch.randn(3).expand(4, 3),
    lambda: torch.randn(6, 4).t()[::2],
    lambda: torch.randn(3, dtype=torch.complex64).conj(),
    lambda: torch.randn(5).to_sparse(),
], ids=["diagonal_of_one", "zero_dim", "empty", "expanded", "transposed_stepped", "conj",
        "sparse"])
def test_the_shapes_students_return_travel(make):
    tensor = make()
    arrived = through_a_pipe(tensor)
    expected = tensor.to_dense() if tensor.layout != torch.strided else plain(tensor)
    assert torch.equal(arrived, expected)


def test_a_tensor_without_data_arrives_as_foreign():
    arrived = round_trip(torch.empty(3, device="meta"))
    assert isinstance(arrived, protocol.Foreign) and "cannot be read" in arrived.summary


def test_a_pool_buffer_is_reused_only_when_nothing_holds_it():
    pool = protocol.BufferPool()
    first = pool.take(1000)
    tensor = torch.frombuffer(first, dtype=torch.uint8)
    del first
    second = pool.take(1000)  # the tensor still holds the first buffer: a new one
    assert len(pool.buffers) == 2 and second.obj is pool.buffers[1]
    del second
    third = pool.take(800)  # the second buffer is free again and large enough
    assert third.obj is pool.buffers[1] and len(third) == 800
    del tensor, third
    assert pool.take(1000).obj is pool.buffers[0]
