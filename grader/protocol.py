"""The wire format between the grader and a submission's process: plain data only.

A message is a JSON header plus raw byte blobs, each length-prefixed. Values are
None, bool, int, float, str, list, tuple, dict (str keys), torch dtypes and tensors; a tensor
travels as its dtype, shape, device and bytes, and arrives in the grader as a
new, plain CPU `torch.Tensor` (never the child's object: a subclass with a lying
`__eq__` or `__torch_function__` cannot follow it). Anything else arrives as a
`Foreign` naming its type. Never pickle: unpickling would run the child's code
in the grader.

This file is also copied into the sandbox and imported there by
`sandbox_child.py`, so it imports only the standard library and torch.
"""

import json
import struct
import sys
from dataclasses import dataclass

import torch

MAX_MESSAGE_BYTES = 1 << 30  # a bound on what the grader will read from a child
_LENGTH = struct.Struct(">Q")


@dataclass(frozen=True)
class Foreign:
    """A value the child returned that is not plain data (e.g. a numpy array, a generator)."""

    type_name: str
    """Qualified type name of the child's object, e.g. 'numpy.ndarray'."""
    summary: str
    """A short repr, for messages."""


class ProtocolError(Exception):
    """The other side sent something that is not a well-formed message."""


def _tensor_bytes(tensor):
    """The tensor's values as raw bytes, in row-major order, from a fresh copy: a view of
    any strides (one element with a stride of 2, a transpose, an expansion), a conjugate
    or negative view, a sparse tensor: whatever the student's code returns travels."""
    # Read the storage without calling methods a subclass may override.
    with torch._C.DisableTorchFunctionSubclass():
        source = tensor.detach()
        if source.layout != torch.strided:
            source = source.to_dense()
        # copy_ resolves the conjugate and negative bits; a fresh tensor has unit strides
        plain = torch.empty(source.shape, dtype=source.dtype).copy_(source)
        return memoryview(plain.reshape(-1).view(torch.uint8).numpy())


def encode_value(value, blobs):
    """value -> JSON-able structure; tensor bytes are appended to `blobs`."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if type(value) in (int, float):
        return value
    if isinstance(value, torch.dtype):
        return {"__dtype__": str(value).removeprefix("torch.")}
    if isinstance(value, torch.Tensor):
        try:
            blobs.append(_tensor_bytes(value))
        except (RuntimeError, TypeError, NotImplementedError) as err:  # e.g. a meta tensor
            return {"__foreign__": f"{type(value).__module__}.{type(value).__qualname__}",
                    "summary": f"a tensor that cannot be read ({err})"[:200]}
        with torch._C.DisableTorchFunctionSubclass():
            return {"__tensor__": len(blobs) - 1, "dtype": str(value.dtype).removeprefix("torch."),
                    "shape": list(value.shape), "device": str(value.device),
                    "requires_grad": bool(value.requires_grad),
                    "type": f"{type(value).__module__}.{type(value).__qualname__}"}
    if type(value) in (list, tuple):
        return {"__seq__": type(value).__name__, "items": [encode_value(v, blobs) for v in value]}
    if type(value) is dict and all(type(k) is str for k in value):
        return {"__dict__": {k: encode_value(v, blobs) for k, v in value.items()}}
    type_name = f"{type(value).__module__}.{type(value).__qualname__}"
    try:
        summary = repr(value)[:200]
    except Exception:  # a hostile __repr__ must not break the transport
        summary = "<unprintable>"
    return {"__foreign__": type_name, "summary": summary}


def _decode_tensor(header, blobs):
    dtype = getattr(torch, header["dtype"], None)
    if not isinstance(dtype, torch.dtype):
        raise ProtocolError(f"unknown dtype {header['dtype']!r}")
    shape = [int(n) for n in header["shape"]]
    data = blobs[header["__tensor__"]]
    numel = 1
    for n in shape:
        numel *= n
    if len(data) != numel * dtype.itemsize:
        raise ProtocolError(f"tensor of shape {shape} and {dtype} cannot hold {len(data)} bytes")
    if numel == 0:
        tensor = torch.empty(shape, dtype=dtype)
    else:  # a message's blob is its own buffer: the tensor takes it over, no copy
        buffer = data if isinstance(data, (bytearray, memoryview)) else bytearray(data)
        tensor = torch.frombuffer(buffer, dtype=torch.uint8).view(dtype).reshape(shape)
    return tensor.requires_grad_(bool(header.get("requires_grad"))) if dtype.is_floating_point \
        else tensor


def decode_value(data, blobs, devices=None):
    """The inverse of encode_value. Tensors arrive on the CPU; if `devices` is a list,
    the device each tensor was on in the sender is appended to it."""
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if isinstance(data, list):
        raise ProtocolError("bare list in message")
    if "__tensor__" in data:
        if devices is not None:
            devices.append(data.get("device", "cpu"))
        return _decode_tensor(data, blobs)
    if "__seq__" in data:
        items = [decode_value(v, blobs, devices) for v in data["items"]]
        return tuple(items) if data["__seq__"] == "tuple" else items
    if "__dict__" in data:
        return {k: decode_value(v, blobs, devices) for k, v in data["__dict__"].items()}
    if "__dtype__" in data:
        dtype = getattr(torch, str(data["__dtype__"]), None)
        if not isinstance(dtype, torch.dtype):
            raise ProtocolError(f"unknown dtype {data['__dtype__']!r}")
        return dtype
    if "__foreign__" in data:
        return Foreign(str(data["__foreign__"]), str(data.get("summary", "")))
    raise ProtocolError(f"unknown value {str(data)[:80]}")


def write_message(stream, header, blobs=()):
    """Write one message (a dict header and byte blobs) to a binary stream."""
    body = json.dumps({**header, "blob_count": len(blobs)}).encode()
    parts = [_LENGTH.pack(len(body)), body]
    for blob in blobs:
        parts += [_LENGTH.pack(memoryview(blob).nbytes), blob]
    for part in parts:  # not joined first: a round's inputs are tens of MiB
        _write_all(stream, part)
    stream.flush()


def _write_all(stream, data):
    view = memoryview(data).cast("B")
    while view:
        view = view[stream.write(view):]


def _read_exactly(stream, n, buffer=None):
    """n bytes into `buffer` (writable, n bytes long) or a new bytearray: a tensor may
    take it over without a copy."""
    buffer = bytearray(n) if buffer is None else buffer
    view, done = memoryview(buffer), 0
    while done < n:
        count = stream.readinto(view[done:])
        if not count:
            raise EOFError("the other side closed the channel")
        done += count
    return buffer


def read_message(stream, limit=MAX_MESSAGE_BYTES, pool=None):
    """Read one message: (header dict, [blobs]). EOFError when the stream ends. With a
    BufferPool, the blobs of a message whose header says "pooled" are read into it."""
    total = 0

    def read_sized(take=None):
        nonlocal total
        (size,) = _LENGTH.unpack(_read_exactly(stream, _LENGTH.size))
        total += size
        if total > limit:
            raise ProtocolError(f"message larger than {limit} bytes")
        return _read_exactly(stream, size, take and take(size))

    try:
        header = json.loads(read_sized())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ProtocolError(f"header is not JSON: {err}") from None
    if not isinstance(header, dict) or not isinstance(header.get("blob_count"), int):
        raise ProtocolError("header is not a message")
    take = pool.take if pool is not None and header.get("pooled") is True else None
    blobs = [read_sized(take) for _ in range(header["blob_count"])]
    return header, blobs


class BufferPool:
    """Receive buffers, each reused once nothing refers to it any more (no tensor made
    from it is alive). The child's fixed mmap threshold gives every new buffer fresh
    pages, and faulting them in costs as much as the calls a timed round carries."""

    def __init__(self, max_bytes=256 << 20):
        self.buffers = []
        self.max_bytes = max_bytes

    def take(self, n):
        """A writable view of exactly n bytes, on a buffer nothing else holds."""
        for buffer in self.buffers:
            # the list, this loop's name and getrefcount's argument: nothing else
            if len(buffer) >= n and sys.getrefcount(buffer) == 3:
                return memoryview(buffer)[:n]
        buffer = bytearray(n)
        if sum(map(len, self.buffers)) + n <= self.max_bytes:
            self.buffers.append(buffer)
        return memoryview(buffer)
