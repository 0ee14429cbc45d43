"""sparse_matmul: a @ W where the kernel W [K, N] is stored as nonzero blocks (a compiled pruned layer).

W is cut into blocks of `block` = (bk, bn) elements (bk along K, the contraction; bn along N, the
outputs). Block column j (outputs j*bn .. j*bn+bn-1) owns the stored blocks p in
offsets[j] .. offsets[j+1]-1; block p sits at rows index[p]*bk .. +bk and holds
values[p*bk*bn : (p+1)*bk*bn] (row-major bk x bn). Every other element of W is zero; a block
stored twice adds up. block (1, 1) is CSC of W (unstructured); (1, 16) stores 16 outputs of one
input together; (4, 1) four inputs of one output.

layout "windows" (block = (G, C), attribute n = N) is a sliced-ELLPACK form for vectors across the
outputs: outputs in panels of C, inputs in windows of G. Group g = panel * nwin + window (nwin =
ceil(K / G)) owns the steps offsets[g] .. offsets[g+1]-1; step s holds C values values[s*C : s*C+C],
one per output of the panel, and their inputs as u8 offsets into the window, index[s*C + lane]
(PAD: an empty slot, value 0). A panel's lanes have different input counts in a window, so steps
run to the largest (the rest PAD): the kernel keeps the window's G inputs in registers and picks
each lane's input with a permute instead of a gather (compiler/kernels/sparse_windows.py).
A third block entry P (block = (G, C, P), default 1) gives each lane P slots per step: step s holds
C*P values, lane l's at s*C*P + l*P .. + P (the int8 kernel multiplies four bytes of a lane and
adds them into one i32 lane: ir/ops/sparse_int8.py, compiler/kernels/sparse_int8.py).
Windows and panels run over permuted inputs and outputs: after the groups + 1 step offsets,
offsets holds K input rows (window position q holds input offsets[groups+1+q]) and N output
columns (panel position j is output offsets[groups+1+K+j]), both permutations. Sorting rows and
columns by their nonzero counts puts alike ones together, so fewer slots are padding (a trained
MNIST layer at 90%: 25% fewer steps than in natural order).

The pass `sparsify` (passes/sparsify.py) makes these nodes from dense kernels known at compile
time; `to_dense` restores W (ONNX export, runtime get_weights, the reference).
"""
from __future__ import annotations

import numpy as np

from ..registry import Attr, defop
from ..types import TensorType
from ._util import fmt_shape, require

LAYOUTS = ("blocks", "windows")
PAD = 255                # "windows" index of an empty slot


def _infer(ts, attrs):
    if attrs["layout"] == "windows":
        return _infer_windows(ts, attrs)
    require(attrs["layout"] == "blocks", f"sparse_matmul layout must be one of {LAYOUTS}, got {attrs['layout']!r}")
    a, values, index, offsets = ts
    bk, bn = attrs["block"]
    require(a.dtype.is_float, f"sparse_matmul needs a floating-point input, got {a}")
    require(a.rank >= 2, f"sparse_matmul needs a rank >= 2 input, got {a}")
    require(values.dtype == a.dtype and values.rank == 1,
            f"sparse_matmul values must be a 1-D {a.dtype.name} tensor, got {values}")
    for name, t in (("index", index), ("offsets", offsets)):
        require(t.dtype.name == "i32" and t.rank == 1 and t.is_static,
                f"sparse_matmul {name} must be a static 1-D i32 tensor, got {t}")
    require(bk >= 1 and bn >= 1, f"sparse_matmul block must be positive, got {list(attrs['block'])}")
    k = a.shape[-1]
    require(isinstance(k, int) and k % bk == 0,
            f"sparse_matmul input {fmt_shape(a.shape)}: contraction size {k} is not a multiple of block rows {bk}")
    require(values.shape[0] == index.shape[0] * bk * bn,
            f"sparse_matmul: {index.shape[0]} blocks of {bk}x{bn} need {index.shape[0] * bk * bn} values, "
            f"got {values.shape[0]}")
    require(offsets.shape[0] >= 2, f"sparse_matmul offsets need at least 2 entries, got {offsets}")
    return [TensorType(a.shape[:-1] + ((offsets.shape[0] - 1) * bn,), a.dtype)]


def _infer_windows(ts, attrs):
    a, values = ts[:2]
    require(a.dtype.is_float and a.rank >= 2 and isinstance(a.shape[-1], int),
            f"sparse_matmul needs a floating-point input of rank >= 2 with a static last axis, got {a}")
    require(values.dtype == a.dtype, f"sparse_matmul values must be {a.dtype.name} like the input, got {values}")
    return [TensorType(a.shape[:-1] + (check_windows_types("sparse_matmul", ts, attrs),), a.dtype)]


def check_windows_types(op: str, ts, attrs) -> int:
    """Check the (values, index, offsets) types of a "windows" layout for input ts[0]; returns N."""
    a, values, index, offsets = ts[:4]
    n = attrs["n"]
    require(len(attrs["block"]) in (2, 3) and isinstance(a.shape[-1], int),
            f"{op} windows need block (window, panel[, slots per lane]) and a static last input axis, got "
            f"{list(attrs['block'])} and {a}")
    g, c, p = window_block(attrs["block"])
    require(g >= 1 and c >= 1 and p >= 1 and g <= PAD and n >= 1,
            f"{op} windows need block (window 1..{PAD}, panel >= 1, slots >= 1) and n >= 1, got "
            f"{list(attrs['block'])}, n={n}")
    require(values.rank == 1 and values.is_static, f"{op} values must be a static 1-D tensor, got {values}")
    require(index.dtype.name == "u8" and index.rank == 1 and index.shape == values.shape,
            f"{op} windows index must be u8 shaped like values {fmt_shape(values.shape)}, got {index}")
    want = windows_groups(a.shape[-1], n, (g, c)) + 1 + a.shape[-1] + n
    require(offsets.dtype.name == "i32" and offsets.shape == (want,),
            f"{op} windows offsets must be i32[{want}] (panels x windows + 1 step offsets, the input "
            f"and output orders), got {offsets}")
    require(values.shape[0] % (c * p) == 0, f"{op} windows: {values.shape[0]} values are not whole steps of {c * p}")
    return n


def window_block(block) -> tuple:
    """(G, C, P) of a "windows" block (G, C) or (G, C, P)."""
    return (*block, 1) if len(block) == 2 else tuple(block)


def windows_groups(k: int, n: int, block) -> int:
    """Panels x windows of a "windows" layout."""
    g, c = block[:2]
    return -(-n // c) * -(-k // g)


def check_structure(index, offsets, k: int, block, layout: str = "blocks", n: int = 0) -> None:
    """Raise ValueError unless offsets run 0..len(index) without decreasing and every index is a block row
    (for "windows": 0..steps over the panels x windows groups, every index in the window or PAD)."""
    index, offsets = np.asarray(index), np.asarray(offsets)
    if layout == "windows":
        return _check_windows(index, offsets, k, block, n)
    rows = k // block[0]
    if offsets[0] != 0 or offsets[-1] != len(index) or np.any(np.diff(offsets) < 0):
        raise ValueError(f"sparse_matmul offsets must rise from 0 to {len(index)} (the block count), "
                         f"got {offsets[:4].tolist()}..{offsets[-1]}")
    if len(index) and (index.min() < 0 or index.max() >= rows):
        raise ValueError(f"sparse_matmul index holds block row {int(index.max() if index.max() >= rows else index.min())}"
                         f", outside [0, {rows}) for a contraction of {k} in blocks of {block[0]}")


def _check_windows(index, offsets, k: int, block, n: int) -> None:
    g, c, p = window_block(block)
    groups = windows_groups(k, n, block)
    if len(offsets) != groups + 1 + k + n:
        raise ValueError(f"sparse_matmul windows offsets must have {groups + 1 + k + n} entries ({groups + 1} step "
                         f"offsets, {k} input rows, {n} output columns), got {len(offsets)}")
    steps, rows, cols = np.split(offsets, [groups + 1, groups + 1 + k])
    if steps[0] != 0 or steps[-1] * c * p != len(index) or np.any(np.diff(steps) < 0):
        raise ValueError(f"sparse_matmul windows offsets must rise from 0 to {len(index) // (c * p)} (the steps), got "
                         f"{steps[:4].tolist()}..{steps[-1]}")
    for what, order, size in (("input rows", rows, k), ("output columns", cols, n)):
        if not np.array_equal(np.sort(order), np.arange(size)):
            raise ValueError(f"sparse_matmul windows {what} must be an order of 0..{size - 1}, got "
                             f"{order[:4].tolist()}...")
    bad = (index >= g) & (index != PAD)
    if bad.any():
        raise ValueError(f"sparse_matmul windows index holds {int(index[bad][0])}, outside a window of {g} "
                         f"inputs (or {PAD}, an empty slot)")


def windows_coords(index, offsets, k: int, n: int, block) -> tuple:
    """(row, col) in W of every "windows" slot, and a bool array of the slots that hold an element."""
    g, c, p = window_block(block)
    index, offsets = np.asarray(index), np.asarray(offsets)
    nwin, groups = -(-k // g), windows_groups(k, n, block)
    step = np.arange(len(index)) // (c * p)
    group = np.repeat(np.arange(groups), np.diff(offsets[:groups + 1]))[step]
    q = (group % nwin) * g + index.astype(np.int64)                  # window position
    j = (group // nwin) * c + np.arange(len(index)) % (c * p) // p   # panel position
    ok = (index != PAD) & (q < k) & (j < n)
    order_in, order_out = offsets[groups + 1:groups + 1 + k], offsets[groups + 1 + k:]
    return np.where(ok, order_in[np.where(ok, q, 0)], 0), np.where(ok, order_out[np.where(ok, j, 0)], 0), ok


def to_dense(values, index, offsets, k: int, block, layout: str = "blocks", n: int = 0) -> np.ndarray:
    """The dense kernel W [K, N] that (values, index, offsets) encode."""
    check_structure(index, offsets, k, block, layout, n)
    if layout == "windows":
        rows, cols, ok = windows_coords(index, offsets, k, n, block)
        w = np.zeros((k, n), np.asarray(values).dtype)
        np.add.at(w, (rows[ok], cols[ok]), np.asarray(values)[ok])
        return w
    bk, bn = block
    cols = len(offsets) - 1
    w = np.zeros((k // bk, bk, cols, bn), np.asarray(values).dtype)
    col_of = np.repeat(np.arange(cols), np.diff(offsets))
    np.add.at(w, (np.asarray(index), slice(None), col_of), np.asarray(values).reshape(-1, bk, bn))
    return w.reshape(k, cols * bn)


def pattern_mask(index, offsets, k: int, block, layout: str = "blocks", n: int = 0) -> np.ndarray:
    """bool [K, N]: the elements the stored blocks cover (the compiled sparsity pattern)."""
    ones = np.ones(len(index) * (1 if layout == "windows" else block[0] * block[1]), np.float32)
    return to_dense(ones, index, offsets, k, block, layout, n) != 0


def from_dense(w: np.ndarray, block) -> tuple:
    """(values, index, offsets) storing every block of w that holds a nonzero (column by column)."""
    k, n = w.shape
    bk, bn = block
    blocks = w.reshape(k // bk, bk, n // bn, bn).transpose(2, 0, 1, 3)  # [col, row, bk, bn]
    keep = np.any(blocks != 0, axis=(2, 3))
    cols, rows = np.nonzero(keep)                                       # column-major order
    offsets = np.concatenate([[0], np.cumsum(keep.sum(axis=1))]).astype(np.int32)
    return (np.ascontiguousarray(blocks[cols, rows]).reshape(-1).astype(w.dtype), rows.astype(np.int32), offsets)


def windows_order(w: np.ndarray) -> tuple:
    """(input rows, output columns) of w by decreasing nonzero count: the windows layout's orders."""
    nz = w != 0
    return np.argsort(-nz.sum(axis=1), kind="stable"), np.argsort(-nz.sum(axis=0), kind="stable")


def windows_steps(w: np.ndarray, block) -> np.ndarray:
    """Steps of each (panel, window) group of w in the "windows" layout: its busiest lane's nonzeros."""
    rows, cols = windows_order(w)
    return _steps(w[rows][:, cols], block)


def _steps(w: np.ndarray, block) -> np.ndarray:
    """windows_steps of w in the order it has."""
    k, n = w.shape
    g, c, p = window_block(block)
    nwin, npan = -(-k // g), -(-n // c)
    nz = np.zeros((nwin * g, npan * c), bool)
    nz[:k, :n] = w != 0
    return -(-nz.reshape(nwin, g, npan, c).sum(axis=1).max(axis=2).T // p)


def from_dense_windows(w: np.ndarray, block) -> tuple:
    """(values, index, offsets) of w in the "windows" layout (module docstring), steps as few as the
    panel's busiest lane in each window needs."""
    order_in, order_out = windows_order(w)
    w = w[order_in][:, order_out]
    k, n = w.shape
    g, c, p = window_block(block)
    nwin, npan = -(-k // g), -(-n // c)
    wp = np.zeros((nwin * g, npan * c), w.dtype)
    wp[:k, :n] = w
    nz = (wp != 0).reshape(nwin, g, npan, c)
    rank = np.cumsum(nz, axis=1) - 1                                   # a nonzero's slot among its lane's
    starts = np.concatenate([[0], np.cumsum(_steps(w, block).reshape(-1))])   # per (panel, window) group
    win, local, pan, lane = np.nonzero(nz)
    r = rank[win, local, pan, lane]
    pos = ((starts[pan * nwin + win] + r // p) * c + lane) * p + r % p
    values = np.zeros(int(starts[-1]) * c * p, w.dtype)
    index = np.full(int(starts[-1]) * c * p, PAD, np.uint8)
    values[pos] = wp.reshape(nwin, g, npan, c)[win, local, pan, lane]
    index[pos] = local
    return values, index, np.concatenate([starts, order_in, order_out]).astype(np.int32)


def _reference(xs, attrs, batch):
    a, values, index, offsets = xs
    w = to_dense(values, index, offsets, a.shape[-1], attrs["block"], attrs["layout"], attrs["n"])
    return [np.matmul(a, w).astype(a.dtype)]


SPARSE_ATTRS = {"block": Attr("ints"), "weight": Attr("str", ""), "structure": Attr("str", ""),
                "density": Attr("float", -1.0), "speedup": Attr("floats", ()), "layout": Attr("str", "blocks"),
                "n": Attr("int", 0), "weight_shape": Attr("ints", ())}
defop("sparse_matmul", ("a", "values", "index", "offsets"), _infer, _reference, attrs=SPARSE_ATTRS,
      differentiable=False, traits=("anchor",),
      doc="a @ W with W stored as nonzero blocks, or as windows x panels (layout, n; see ir/ops/sparse.py); "
          "weight_shape: the dense parameter's shape when it is not [K, N] (a convolution kernel); "
          "weight/structure/density/speedup "
          "record what the sparsify pass measured (the dense parameter's name, the pattern, the fraction of "
          "nonzeros, the estimated speedup over dense code at batch 1 and 64)")


SPARSE_PARTS = ("values", "index", "offsets")
SPARSE_OPS = ("sparse_matmul", "sparse_qmatmul")   # ops whose inputs 1..3 store a kernel (sparse_int8.py)


def sparse_param_names(weight: str) -> tuple:
    """Names of the three parameters that store the dense parameter `weight` sparse (values, index, offsets)."""
    return tuple(f"{weight}.sparse_{part}" for part in SPARSE_PARTS)


def sparse_weights(graph) -> list:
    """One description per dense parameter that `graph` stores sparse: what an artifact's manifest
    records so that a loader can rebuild, check and replace the dense weight (runtime/native.py).
    Looks into the regions of `fused` nodes, where fusion puts an anchor and its epilogue."""
    out = {}
    for node, ins in _sparse_nodes(graph.nodes, {}):
        if all(v.is_param for v in ins[1:]):
            a, out_t = ins[0].type, node.outputs[0].type
            name = node.attrs["weight"] or ins[1].param_name
            out[name] = {"name": name, "shape": [a.shape[-1], out_t.shape[-1]], "dtype": ins[1].type.dtype.name,
                         "block": list(node.attrs["block"]),
                         **({"layout": "windows"} if node.attrs["layout"] == "windows" else {}),
                         **({"dense_shape": list(node.attrs["weight_shape"])} if node.attrs["weight_shape"] else {}),
                         **{part: v.param_name for part, v in zip(SPARSE_PARTS, ins[1:])}}
    return list(out.values())


def _sparse_nodes(nodes, outer: dict):
    """(sparse node, its a/values/index/offsets as the outermost graph's Values) for nodes and nested regions."""
    for node in nodes:
        if node.op in SPARSE_OPS:
            yield node, [outer.get(v, v) for v in node.inputs[:4]]
        elif node.op == "fused":
            body = node.attrs["body"]
            yield from _sparse_nodes(body.nodes, {b: outer.get(v, v) for b, v in zip(body.inputs, node.inputs)})
