"""Protobuf's wire format written by hand, for the tf.Examples made a batch at a time with NumPy (a fixed layout
whose values are filled in): what `predict` encodes and what ExampleGen adds to a row. Standard library only."""


def varint(n: int) -> bytes:
    """A non-negative integer as a base-128 varint."""
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2): a string or a message."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def read_varint(data: bytes, at: int) -> tuple[int, int]:
    """The base-128 varint at `at` of data, and where it ends; ValueError if data ends inside it."""
    value, shift = 0, 0
    while at < len(data):
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if byte < 0x80:
            return value, at
        shift += 7
    raise ValueError("a varint cut short")
