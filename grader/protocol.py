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
    # Read the storage without calling methods a subclass may override.
    with torch._C.DisableTorchFunctionSubclass():
        plain = tensor.detach().to("cpu").contiguous()
        return plain.reshape(-1).view(torch.uint8).numpy().tobytes()


def encode_value(value, blobs):
    """value -> JSON-able structure; tensor bytes are appended to `blobs`."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if type(value) in (int, float):
        return value
    if isinstance(value, torch.dtype):
        return {"__dtype__": str(value).removeprefix("torch.")}
    if isinstance(value, torch.Tensor):
        blobs.append(_tensor_bytes(value))
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
    else:
        tensor = torch.frombuffer(bytearray(data), dtype=torch.uint8).view(dtype).reshape(shape)
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
        parts += [_LENGTH.pack(len(blob)), blob]
    stream.write(b"".join(parts))
    stream.flush()


def _read_exactly(stream, n):
    chunks, remaining = [], n
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            raise EOFError("the other side closed the channel")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_message(stream, limit=MAX_MESSAGE_BYTES):
    """Read one message: (header dict, [blobs]). EOFError when the stream ends."""
    total = 0

    def read_sized():
        nonlocal total
        (size,) = _LENGTH.unpack(_read_exactly(stream, _LENGTH.size))
        total += size
        if total > limit:
            raise ProtocolError(f"message larger than {limit} bytes")
        return _read_exactly(stream, size)

    try:
        header = json.loads(read_sized())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ProtocolError(f"header is not JSON: {err}") from None
    if not isinstance(header, dict) or not isinstance(header.get("blob_count"), int):
        raise ProtocolError("header is not a message")
    blobs = [read_sized() for _ in range(header["blob_count"])]
    return header, blobs
