"""kc.ops.einsum as IR the compiler already knows: each pairwise contraction becomes transposes,
reshapes and one batched matmul (the GEMM kernels), labels summed alone become reduce_sum.

A pair is grouped as [batch | free | contracted]: batch labels (in both operands, kept) lead and
are matmul's broadcast axes, the free labels of each side and the contracted ones are flattened
to one axis each. The matmul transpose flags absorb a [contracted | free] layout, so the common
attention contractions need no copy beyond the head transposes. The symbolic batch dimension N
must stay the leading axis (a static IR rule): it is kept as its own leading axis, and an equation
that would move it or contract over it is refused with a clear error.
"""
from __future__ import annotations

import string

from . import ops


def einsum(equation: str, *operands):
    xs = [ops.convert_to_tensor(x) for x in operands]
    ins, out = parse(equation, [x.ndim for x in xs])
    dims = _label_dims(equation, ins, xs)
    terms = list(zip(xs, ins))
    while len(terms) > 1:
        later = set(out).union(*(labels for _, labels in terms[2:]))
        terms[:2] = [_contract(equation, terms[0], terms[1], later, out if len(terms) == 2 else None, dims)]
    x, labels = _sum_out(terms[0][0], terms[0][1], set(out))
    return _arrange(equation, x, labels, out)


def parse(equation: str, ranks) -> tuple[list, str]:
    """Operand label strings and the output labels, with '...' expanded to unused letters."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    ins = lhs.split(",")
    if len(ins) != len(ranks):
        raise ValueError(f"einsum '{equation}': the equation names {len(ins)} operand(s), got {len(ranks)}")
    spare = [c for c in string.ascii_letters[::-1] if c not in eq]
    n_ell = max([r - len(s.replace("...", "")) for s, r in zip(ins, ranks) if "..." in s] or [0])
    ell = "".join(spare[:n_ell][::-1])
    expanded = []
    for s, r in zip(ins, ranks):
        k = r - len(s.replace("...", ""))
        if "..." in s:
            s = s.replace("...", ell[len(ell) - k:] if k > 0 else "")
        if not s.isalpha() and s or len(s) != r:
            raise ValueError(f"einsum '{equation}': operand labels '{s}' do not match an operand of rank {r}")
        if len(set(s)) != len(s):
            raise ValueError(f"einsum '{equation}': a label repeated within one operand ('{s}', a diagonal) "
                             "is not supported")
        expanded.append(s)
    if arrow:
        out = rhs.replace("...", ell)
    else:
        counts = {c: sum(s.count(c) for s in expanded) for c in set("".join(expanded)) - set(ell)}
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1))
    unknown = set(out) - set("".join(expanded))
    if unknown or len(set(out)) != len(out):
        raise ValueError(f"einsum '{equation}': output labels '{out}' must be distinct and appear in an operand")
    return expanded, out


def _label_dims(equation, ins, xs) -> dict:
    dims: dict = {}
    for x, labels in zip(xs, ins):
        for c, d in zip(labels, x.ir_shape):
            if dims.get(c, 1) == 1 or d == 1:
                dims[c] = d if dims.get(c, 1) == 1 else dims[c]
            elif dims[c] != d:
                raise ValueError(f"einsum '{equation}': label '{c}' has size {dims[c]} in one operand and {d} "
                                 f"in another (operand shapes {', '.join(str(t.shape) for t in xs)})")
    return dims


def _sum_out(x, labels: str, keep: set):
    axes = [i for i, c in enumerate(labels) if c not in keep]
    if not axes:
        return x, labels
    return ops.sum(x, axis=axes), "".join(c for c in labels if c in keep)


def _is_batch_symbol(d) -> bool:
    return isinstance(d, str)


def _contract(equation, left, right, later: set, out, dims):
    (a, la), (b, lb) = left, right
    a, la = _sum_out(a, la, later | set(lb))
    b, lb = _sum_out(b, lb, later | set(la))
    free_a, free_b = [c for c in la if c not in lb], [c for c in lb if c not in la]
    if out is not None and free_a and free_b and out.index(free_b[0]) < out.index(free_a[0]):
        (a, la), (b, lb), free_a, free_b = (b, lb), (a, la), free_b, free_a   # emit rows in output order
    batch = [c for c in la if c in lb and c in later]
    summed = [c for c in la if c in lb and c not in later]
    if any(_is_batch_symbol(dims[c]) for c in summed):
        raise ValueError(f"einsum '{equation}': summing over the batch dimension is not supported")
    lead_a = [c for c in free_a[:1] if _is_batch_symbol(dims[c])]
    lead_b = [c for c in free_b[:1] if _is_batch_symbol(dims[c])]
    if lead_a and lead_b:
        raise ValueError(f"einsum '{equation}': both operands' batch dimensions would appear as separate axes")
    free_a, free_b = free_a[len(lead_a):], free_b[len(lead_b):]
    a2, ta = _operand(a, la, lead_a + batch, free_a, summed, dims, first=True)
    b2, tb = _operand(b, lb, lead_b + batch, free_b, summed, dims, first=False)
    y = ops.apply("matmul", a2, b2, transpose_a=ta, transpose_b=tb)
    labels = lead_a + lead_b + batch + free_a + free_b
    shape = [dims[c] for c in lead_a + lead_b] + list(y.ir_shape[len(lead_a + lead_b):len(y.ir_shape) - 2]) + \
        [dims[c] for c in free_a + free_b]
    return _reshape(y, shape), "".join(labels)


def _operand(x, labels, batch, free, summed, dims, first: bool):
    """x as [batch..., rows, cols] for matmul, and whether matmul should transpose it. The first
    operand is read as [free, summed], the second as [summed, free]; a transpose flag takes the
    other layout when x already has it, saving a copy."""
    plain = (free, summed) if first else (summed, free)
    flipped = plain[::-1]

    def cost(groups):  # no copy; else a copy that keeps the contiguous last axis last; else any copy
        target = batch + groups[0] + groups[1]
        return 0 if target == list(labels) else 1 if target[-1:] == list(labels[-1:]) else 2
    groups = min((plain, flipped), key=cost)   # plain on ties
    transposed = groups is flipped
    x = _permute(x, labels, batch + groups[0] + groups[1])
    shape = list(x.ir_shape[:len(batch)]) + [_prod(dims, groups[0]), _prod(dims, groups[1])]
    return _reshape(x, shape), transposed


def _prod(dims, labels) -> int:
    n = 1
    for c in labels:
        n *= dims[c]
    return n


def _permute(x, labels, order):
    perm = [labels.index(c) for c in order]
    return x if perm == sorted(perm) else ops.transpose(x, perm)


def _reshape(x, shape):
    return x if tuple(shape) == tuple(x.ir_shape) else ops.apply("reshape", x, shape=tuple(shape))


def _arrange(equation, x, labels, out):
    perm = [labels.index(c) for c in out]
    if perm and perm != sorted(perm) and _is_batch_symbol(x.ir_shape[0]) and perm[0] != 0:
        raise ValueError(f"einsum '{equation}': the output would move the batch dimension off the first axis")
    return _permute(x, labels, out)
