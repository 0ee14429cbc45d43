"""Independent oracle for fake_quantize: TF's nudged fake quantization, one scalar at a time in f64."""
import numpy as np


def _one(x, lo, hi, narrow):
    qmin, qmax = (1 if narrow else 0), 255
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = max((hi - lo) / (qmax - qmin), 1e-30)
    zp = min(max(round(qmin - lo / scale), qmin), qmax)       # Python round: half to even
    nmin, nmax = (qmin - zp) * scale, (qmax - zp) * scale
    return round((min(max(x, nmin), nmax) - nmin) / scale) * scale + nmin


def fake_quantize(xs, attrs):
    x, lo, hi = (np.asarray(a, np.float64) for a in xs)
    lo, hi = np.broadcast_to(lo, x.shape), np.broadcast_to(hi, x.shape)
    out = [_one(float(a), float(b), float(c), attrs.get("narrow", False)) for a, b, c in zip(x.flat, lo.flat, hi.flat)]
    return [np.asarray(out, np.float32).reshape(x.shape)]
