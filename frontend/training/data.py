"""Arrays in, batches out: standardize x/y/sample_weight, check them, split and shuffle (Keras 3 rules)."""
from __future__ import annotations

import numpy as np

from kcompile.ir import check_input_dtype


def to_list(x) -> list | None:
    if x is None:
        return None
    if isinstance(x, (list, tuple)):
        return [_as_array(a) for a in x]
    return [_as_array(x)]


def _as_array(a) -> np.ndarray:
    if hasattr(a, "numpy"):
        a = a.numpy()
    if not isinstance(a, np.ndarray):
        if hasattr(a, "__next__") or hasattr(a, "element_spec"):
            raise TypeError(f"expected NumPy arrays (or lists/dicts of them) here, got {type(a).__name__}: a "
                            "generator, iterator or PyDataset goes in as x alone, yielding (x, y[, sample_weight])")
        a = np.asarray(a)
    if a.dtype == object or a.dtype.kind in "USO":
        raise TypeError(f"expected numeric arrays, got an array of dtype {a.dtype}")
    check_input_dtype("the data", a.dtype)   # complex refused, as the runtime does
    return a


def merge_nested_lists(data):
    """Nested Python lists of numbers are one array (Keras converts them); a list of arrays stays a list."""
    if isinstance(data, (list, tuple)) and not all(hasattr(a, "shape") for a in data):
        return _as_array(data)
    return data


def by_names(data, names: list[str], what: str) -> list | None:
    """Order a dict (keyed by input/output names) or a list/array by `names`."""
    if data is None:
        return None
    if isinstance(data, dict):
        missing = [n for n in names if n not in data]
        extra = sorted(set(data) - set(names))
        if missing or extra:
            raise ValueError(f"{what}: missing keys {missing}, unexpected keys {extra}; expected {names}")
        return [_as_array(data[n]) for n in names]
    arrays = to_list(merge_nested_lists(data))
    if len(arrays) != len(names):
        raise ValueError(f"{what}: the model has {len(names)} ({', '.join(names)}), but {len(arrays)} array(s) "
                         "were given")
    return arrays


def check_lengths(xs, ys, sample_weight):
    sizes = {("x", i): len(a) for i, a in enumerate(xs)}
    sizes.update({("y", i): len(a) for i, a in enumerate(ys or [])})
    if sample_weight is not None:
        sizes[("sample_weight", 0)] = len(sample_weight)
    if len(set(sizes.values())) > 1:
        detail = ", ".join(f"{k}{'' if len(xs) + len(ys or []) <= 2 else f'[{i}]'}: {n}"
                           for (k, i), n in sizes.items())
        raise ValueError(f"Data cardinality is ambiguous: all arrays must have the same number of samples. "
                         f"Got {detail}")
    n = next(iter(sizes.values()))
    if n == 0:
        raise ValueError("the data is empty: no samples were given")
    return n


def check_features(xs, specs, input_names):
    """Each x must match its Input's shape (batch aside)."""
    for a, spec, name in zip(xs, specs, input_names):
        want = tuple(spec)
        got = a.shape[1:]
        if len(got) != len(want) or any(isinstance(w, int) and w != g for w, g in zip(want, got)):
            raise ValueError(f"Input '{name}' of the model expects samples of shape {_fmt(want)} (batch shape "
                             f"(None, {', '.join(map(str, want))})), but the data has shape {a.shape}: "
                             f"samples of shape {_fmt(got)}")


def _fmt(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _bound(pred_shape: tuple, y_shape: tuple) -> tuple:
    """pred_shape with its symbolic dims (a dynamic length T) taken from the labels where they line up."""
    if len(y_shape) < len(pred_shape) or not any(isinstance(d, str) for d in pred_shape):
        return tuple(pred_shape)
    return tuple(y if isinstance(d, str) else d for d, y in zip(pred_shape, y_shape))


def check_labels(loss, y: np.ndarray, pred_shape: tuple, output_name: str):
    """Labels that cannot fit the loss are an error before any training (sparse ids, one-hot width)."""
    kind = type(loss).__name__
    shown = pred_shape
    pred_shape = _bound(pred_shape, y.shape[1:])
    n_classes = pred_shape[-1] if pred_shape else None
    where = f"output '{output_name}' ({kind}, predictions of shape (None, {', '.join(map(str, shown))}))"
    if kind == "SparseCategoricalCrossentropy":
        return _check_sparse(y, pred_shape, n_classes, where)
    if kind == "CategoricalCrossentropy":
        if y.shape[1:] != tuple(pred_shape):
            hint = (" Integer class ids need sparse_categorical_crossentropy, or one-hot encode them with "
                    "kc.utils.to_categorical." if y.ndim == len(pred_shape) or y.shape[1:] in ((), (1,)) else "")
            raise ValueError(f"{where}: labels must be one-hot rows of shape {_fmt(tuple(pred_shape))}, got labels "
                             f"of shape {y.shape}.{hint}")
        return
    if kind in ("BinaryCrossentropy", "MeanSquaredError", "MeanAbsoluteError"):
        ys = y.shape[1:]
        ok = ys == tuple(pred_shape) or ys + (1,) == tuple(pred_shape) or ys == tuple(pred_shape) + (1,)
        if not ok:
            raise ValueError(f"{where}: labels of shape {y.shape} do not match the predictions")


def _check_sparse(y, pred_shape, n_classes, where):
    ys = y.shape[1:]
    if not (ys == tuple(pred_shape[:-1]) or ys == tuple(pred_shape[:-1]) + (1,)):
        raise ValueError(f"{where}: sparse labels must be integer class ids of shape "
                         f"{_fmt(tuple(pred_shape[:-1]))} (or with a trailing 1), got labels of shape {y.shape}."
                         + (" One-hot labels need categorical_crossentropy." if ys == tuple(pred_shape) else ""))
    if y.size and (np.any(y != np.floor(y)) if y.dtype.kind == "f" else False):
        raise ValueError(f"{where}: sparse labels must be whole numbers (class ids), got non-integer values")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"{where}: sparse labels must be class ids in [0, {n_classes}), got values in "
                         f"[{y.min()}, {y.max()}]")


def split_validation(arrays: list, validation_split: float):
    """Keras takes the LAST fraction of the samples (before any shuffling) for validation."""
    if not 0 < validation_split < 1:
        raise ValueError(f"validation_split must be in (0, 1), got {validation_split}")
    n = len(next(a for a in arrays if a is not None))
    split_at = int(n * (1.0 - validation_split))
    if split_at in (0, n):
        raise ValueError(f"validation_split={validation_split} leaves no training or no validation samples "
                         f"out of {n}")
    train = [None if a is None else a[:split_at] for a in arrays]
    val = [None if a is None else a[split_at:] for a in arrays]
    return train, val


def batch_slices(n: int, batch_size: int, shuffle: bool, steps: int | None = None) -> list:
    """Index arrays of each batch (the last one may be smaller); shuffled with NumPy's global RNG."""
    if batch_size is None or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    order = np.random.permutation(n) if shuffle else np.arange(n)
    batches = [order[i:i + batch_size] for i in range(0, n, batch_size)]
    # Keras stops when the arrays run out: `steps` beyond the data are not wrapped around
    return batches if steps is None else batches[:steps]


def take(arrays, idx, contiguous: bool):
    """Rows `idx` of each array; slicing (no copy) when the batch is a contiguous range."""
    if contiguous:
        lo, hi = int(idx[0]), int(idx[-1]) + 1
        return [None if a is None else a[lo:hi] for a in arrays]
    return [None if a is None else a[idx] for a in arrays]


def class_weights_to_sample_weights(y: np.ndarray, class_weight: dict) -> np.ndarray:
    labels = np.argmax(y, axis=-1) if y.ndim > 1 and y.shape[-1] > 1 else y.reshape(len(y), -1)[:, 0]
    labels = labels.astype(np.int64)
    missing = sorted(set(np.unique(labels).tolist()) - set(int(k) for k in class_weight))
    if missing:
        raise ValueError(f"class_weight has no entry for class(es) {missing}")
    lookup = {int(k): float(v) for k, v in class_weight.items()}
    return np.array([lookup[int(c)] for c in labels], np.float32)
