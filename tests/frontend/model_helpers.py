"""Shared helpers of the front-end tests: run a model's forward graph with the reference interpreter."""
import numpy as np

from kcompile.runtime.reference import run


def predict_ref(model, *xs):
    """The model's predictions from the reference interpreter on model.forward_graph()."""
    outs = run(model.forward_graph(), [np.asarray(x) for x in xs])
    return outs[0] if len(outs) == 1 else outs


def rand(*shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def conv2d_np(x, w, stride=(1, 1), padding="valid", dilation=(1, 1), groups=1):
    """Independent NHWC convolution: explicit Keras padding, loops over output positions."""
    n, h, wd, cin = x.shape
    kh, kw, cg, cout = w.shape
    pads, outs = [], []
    for size, k, s, d in zip((h, wd), (kh, kw), stride, dilation):
        eff = (k - 1) * d + 1
        if padding == "valid":
            outs.append((size - eff) // s + 1)
            pads.append((0, 0))
        else:
            out = -(-size // s)
            total = max((out - 1) * s + eff - size, 0)
            outs.append(out)
            pads.append((total // 2, total - total // 2))
    xp = np.pad(x, [(0, 0), pads[0], pads[1], (0, 0)])
    y = np.zeros((n, outs[0], outs[1], cout), np.float64)
    co = cout // groups
    for i in range(outs[0]):
        for j in range(outs[1]):
            for g in range(groups):
                patch = xp[:, i * stride[0]: i * stride[0] + (kh - 1) * dilation[0] + 1: dilation[0],
                           j * stride[1]: j * stride[1] + (kw - 1) * dilation[1] + 1: dilation[1],
                           g * cg:(g + 1) * cg]
                y[:, i, j, g * co:(g + 1) * co] = np.tensordot(patch, w[..., g * co:(g + 1) * co], axes=3)
    return y
