"""Pruning masks from weight magnitudes, in NumPy, with TF-MOT's rules (pruning_impl.py, pruning_utils.py).

- unstructured: keep the k = max(round(size * (1 - sparsity)), 1) largest |w|; every weight equal to
  the k-th largest is kept too (TF-MOT's `abs >= threshold`), so ties can keep more than k.
- block: |w| pooled (AVG or MAX) over non-overlapping blocks of a 2-D view of the weight, the
  unstructured rule on the pooled matrix, each block's decision spread back over its weights.
  A block dimension of -1 spans the whole axis: (-1, 1) prunes whole neurons (Dense) or filters (Conv).
- m_by_n: m zeros in every n consecutive weights along the input axis; in each group the n - m
  largest |w| are kept (ties: the lower index first, as tf.math.top_k).
- shared (threshold_scope="global"): the unstructured or block rule on the scores of several weights
  concatenated, so one threshold decides for all of them.
"""
from __future__ import annotations

import numpy as np


def matrix_view(shape) -> tuple:
    """The 2-D view blocks are taken on: (inputs, outputs) = (prod of all but the last axis, last axis)."""
    rows = 1
    for d in shape[:-1]:
        rows *= d
    return (rows, shape[-1])


def resolve_block(block_size, shape, who: str) -> tuple:
    """block_size with -1 replaced by the axis length; refuses one that does not divide the 2-D view."""
    view = matrix_view(shape)
    block = tuple(view[i] if b == -1 else b for i, b in enumerate(block_size))
    for axis, (b, d) in enumerate(zip(block, view)):
        if d % b:
            raise ValueError(f"{who}: block_size {tuple(block_size)} does not divide the weight: axis {axis} of its "
                             f"(inputs, outputs) view {view} (weight shape {tuple(shape)}) has {d} entries, "
                             f"not a multiple of {b}")
    return block


def parse_m_by_n(m_by_n, who: str) -> tuple:
    """m_by_n as (m, n) ints with 0 < m < n."""
    try:
        m, n = (int(v) for v in m_by_n)
        valid = all(float(v) == int(v) for v in m_by_n) and 0 < m < n
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(f"{who}: sparsity_m_by_n must be two integers (m zeros, group of n) with 0 < m < n, "
                         f"got {m_by_n!r}")
    return (m, n)


def check_m_by_n(m_by_n, shape, who: str) -> tuple:
    """(m, n) whose n divides the weight's input axis (axis -2; axis 0 of a 2-D weight)."""
    m, n = parse_m_by_n(m_by_n, who)
    if len(shape) < 2 or shape[-2] % n:
        axis = shape[-2] if len(shape) >= 2 else None
        raise ValueError(f"{who}: sparsity_m_by_n {(m, n)} needs the input axis to be a multiple of {n}, "
                         f"but the weight of shape {tuple(shape)} has {axis} inputs")
    return (m, n)


def magnitude_mask(weights: np.ndarray, sparsity) -> tuple:
    """(threshold, mask): TF-MOT's Pruning._update_mask."""
    a = np.abs(weights).astype(np.float32)
    size = a.size
    k = int(max(np.round(np.float32(size) * (np.float32(1.0) - np.float32(sparsity))), 1))
    flat = a.reshape(-1)
    threshold = np.partition(flat, size - k)[size - k]          # the k-th largest |w|
    return np.float32(threshold), (a >= threshold).astype(np.float32)


def block_mask(weights: np.ndarray, sparsity, block: tuple, pooling: str) -> tuple:
    """(threshold, mask) with one decision per block of the 2-D view (block already resolved)."""
    threshold, small = magnitude_mask(block_scores(weights, block, pooling), sparsity)
    return threshold, expand_blocks(small, block, weights.shape)


def block_scores(weights: np.ndarray, block: tuple, pooling: str) -> np.ndarray:
    """|w| pooled (AVG or MAX) over each block of the 2-D view: one score per pruning decision."""
    rows, cols = matrix_view(weights.shape)
    bh, bw = block
    a = np.abs(weights).reshape(rows // bh, bh, cols // bw, bw)
    return a.mean(axis=(1, 3)) if pooling == "AVG" else a.max(axis=(1, 3))


def expand_blocks(decisions: np.ndarray, block: tuple, shape) -> np.ndarray:
    """One 0/1 decision per block spread back over the block's weights, in the weight's shape."""
    bh, bw = block
    return np.repeat(np.repeat(decisions, bh, axis=0), bw, axis=1).reshape(shape).astype(np.float32)


def shared_threshold(scores: list, sparsity) -> np.float32:
    """The one threshold that prunes `sparsity` of all the decisions in `scores` together (global
    magnitude pruning, as torch.nn.utils.prune.global_unstructured): TF-MOT's k-th-largest rule on
    the concatenated scores, so each array gets its own sparsity from how its magnitudes compare."""
    flat = np.concatenate([np.asarray(s, np.float32).reshape(-1) for s in scores])
    threshold, _ = magnitude_mask(flat, sparsity)
    return threshold


def m_by_n_mask(weights: np.ndarray, m_by_n: tuple) -> np.ndarray:
    """Keep the n - m largest |w| of every n consecutive inputs of each output (and kernel position)."""
    m, n = m_by_n
    w = np.moveaxis(np.abs(weights), -1, 0)                      # (outputs, ..., inputs), as TF-MOT's rearrange
    groups = w.reshape(-1, n)
    keep = np.argsort(-groups, axis=1, kind="stable")[:, :n - m]
    mask = np.zeros_like(groups, dtype=np.float32)
    np.put_along_axis(mask, keep, 1.0, axis=1)
    return np.moveaxis(mask.reshape(w.shape), 0, -1)


def sparsity_of(mask: np.ndarray) -> float:
    return float(1.0 - np.mean(mask))
