"""Matching call inputs to a tensor signature: count/names, dtype, rank, static dims, one batch size."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .types import TensorType

Signature = Sequence[tuple[str, TensorType]]


class SignatureError(ValueError):
    """Call inputs that do not match a signature (count, names, dtype, rank, shape or batch size)."""


class SignatureDtypeError(SignatureError, TypeError):
    """An input whose dtype does not convert safely (same-kind cast) to the signature's dtype."""


def check_input_dtype(where: str, dtype) -> None:
    """The one input dtype policy of every executor (front end, runtime, CLI): bool, integer and float
    arrays only. Complex is refused, never cast (the imaginary part would silently vanish); strings,
    Python objects and records are refused too."""
    dt = np.dtype(dtype)
    if dt.kind == "c":
        raise SignatureDtypeError(f"{where}: complex input (dtype {dt}) is refused: models compute in real "
                                  "numbers and casting would drop the imaginary part; pass x.real, or the real "
                                  "and imaginary parts as separate features")
    if dt.kind not in "biuf":
        raise SignatureDtypeError(f"{where}: dtype {dt} is not numeric; expected bool, integer or float arrays")


def check_batch_size(batch_size, where: str) -> int | None:
    """A batch_size argument: None (the default) or a positive int; 0, negatives and non-ints are refused."""
    if batch_size is None:
        return None
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"{where}: batch_size must be a positive integer (or None), got {batch_size!r}")
    return int(batch_size)


def check_signature(owner: str, signature: Signature, inputs, *, convert: bool = False,
                    allow_unexpected: bool = False, max_batch: int | None = None,
                    dims: dict | None = None) -> tuple[list, int | None]:
    """Match inputs (a list in order, or a dict by name) to `signature`; returns (arrays, batch size).

    owner names the callee in messages ("graph @net"). convert: cast dtypes that convert same-kind
    (else refuse any other dtype). allow_unexpected: a dict may carry names the signature lacks.
    The batch size is the common extent of every leading symbolic dimension, None when there is none;
    other symbols (a dynamic sequence length T) must agree across inputs and are bound in `dims`.
    """
    arrays = _in_order(owner, signature, inputs, allow_unexpected)
    batch, out, dims = None, [], {} if dims is None else dims
    for (name, t), a in zip(signature, arrays):
        a, batch = _check_one(f"{owner}, input '{name}'", t, np.asarray(a), batch, convert, max_batch, dims)
        out.append(a)
    return out, batch


def check_lengths(owner: str, dims: dict) -> None:
    """Native code refuses an empty dynamic dimension (a sequence of length 0), as the reference
    interpreter's scan does: say so by name before the call instead of a status code after it."""
    empty = sorted(k for k, v in dims.items() if v == 0)
    if empty:
        raise SignatureError(f"{owner}: the dynamic dimension(s) {', '.join(empty)} are 0 (an empty sequence); "
                             "native code needs a length of at least 1")


def _in_order(owner: str, signature: Signature, inputs, allow_unexpected: bool) -> list:
    names = [name for name, _ in signature]
    if isinstance(inputs, Mapping):
        missing = [n for n in names if n not in inputs]
        extra = [] if allow_unexpected else sorted(set(inputs) - set(names))
        if missing or extra:
            unexpected = "" if allow_unexpected else f", unexpected inputs {extra}"
            raise SignatureError(f"{owner}: missing inputs {missing}{unexpected}")
        return [inputs[n] for n in names]
    arrays = list(inputs)
    if len(arrays) != len(names):
        raise SignatureError(f"{owner} takes {len(names)} inputs ({', '.join(names)}), got {len(arrays)}")
    return arrays


def _check_one(where: str, t: TensorType, a: np.ndarray, batch, convert: bool, max_batch, dims: dict):
    check_input_dtype(where, a.dtype)
    if a.dtype != t.dtype.np:
        expected = f"{where}: expected dtype {t.dtype.name} ({t.dtype.np}), got {a.dtype}"
        if not convert:
            raise SignatureError(expected)
        if not np.can_cast(a.dtype, t.dtype.np, casting="same_kind"):
            raise SignatureDtypeError(f"{expected}, which does not convert safely (same-kind cast)")
        a = a.astype(t.dtype.np)
    if a.ndim != t.rank:
        raise SignatureError(f"{where}: expected rank {t.rank} {t}, got shape {a.shape}")
    for i, (want, got) in enumerate(zip(t.shape, a.shape)):
        if isinstance(want, str) and i:
            if dims.setdefault(want, got) != got:
                raise SignatureError(f"{where}: dimension {i} ({want}) is {got}, but another input binds "
                                     f"{want} = {dims[want]}")
        elif isinstance(want, str):
            if batch is not None and got != batch:
                raise SignatureError(f"{where}: batch size {got} differs from other inputs' batch {batch}")
            if max_batch is not None and got > max_batch:
                raise SignatureError(f"{where}: batch size {got} is too large (at most {max_batch})")
            batch = got
        elif want != got:
            raise SignatureError(f"{where}: expected shape {t}, got {a.shape} (dimension {i})")
    return a, batch
