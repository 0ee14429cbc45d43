"""Keras 3 losses: per-sample formulas written once over an emitter, as functions and Loss classes.

Every formula takes (E, y_true, y_pred) and returns the per-sample loss (the last axis reduced);
`Loss.emit` applies sample weights and the reduction ("sum_over_batch_size": the mean over all
per-sample values, as Keras). The public functions and `Loss.__call__` run eagerly on KTensors
(so a GradientTape records them); the train-step builder calls `Loss.emit` with a GraphEmitter.
"""
from __future__ import annotations

import numpy as np

from kcompile.frontend import config
from kcompile.frontend.training.emitter import cast, clip, mean, total

REDUCTIONS = ("sum_over_batch_size", "sum", "none", "mean", "mean_with_sample_weight", None)


# -- formulas ---------------------------------------------------------------------------------
def squeeze_or_expand_to_same_rank(E, x1, x2, expand_rank_1=True):
    """Keras's rank matching: squeeze (or expand) a trailing 1 when the ranks differ by one."""
    s1, s2 = E.shape(x1), E.shape(x2)
    if len(s1) == len(s2) + 1 and s1[-1] == 1:
        if len(s2) == 1 and expand_rank_1:
            return x1, E.op("expand_dims", x2, axes=(-1,))
        return E.op("squeeze", x1, axes=(-1,)), x2
    if len(s2) == len(s1) + 1 and s2[-1] == 1:
        if len(s1) == 1 and expand_rank_1:
            return E.op("expand_dims", x1, axes=(-1,)), x2
        return x1, E.op("squeeze", x2, axes=(-1,))
    return x1, x2


def _mse(E, y_true, y_pred):
    return mean(E, E.op("square", E.op("sub", y_true, y_pred)), axis=-1)


def _mae(E, y_true, y_pred):
    return mean(E, E.op("abs", E.op("sub", y_true, y_pred)), axis=-1)


def _labels_as_pred(fn):
    """Keras casts y_true to y_pred's dtype before these formulas (integer hinge labels, for one)."""
    def formula(E, y_true, y_pred, **kwargs):
        return fn(E, cast(E, y_true, E.dtype(y_pred)), y_pred, **kwargs)
    formula.__name__ = fn.__name__
    return formula


@_labels_as_pred
def _huber(E, y_true, y_pred, delta=1.0):
    error = E.op("sub", y_pred, y_true)
    abs_error = E.op("abs", error)
    quadratic = E.op("mul", E.op("square", error), 0.5)
    linear = E.op("sub", E.op("mul", abs_error, float(delta)), 0.5 * float(delta) ** 2)
    return mean(E, E.op("where", E.op("less_equal", abs_error, float(delta)), quadratic, linear), axis=-1)


@_labels_as_pred
def _log_cosh(E, y_true, y_pred):  # log(cosh(x)) = x + softplus(-2x) - log(2), stable for large |x|
    x = E.op("sub", y_pred, y_true)
    return mean(E, E.op("sub", E.op("add", x, E.op("softplus", E.op("mul", x, -2.0))), float(np.log(2.0))), axis=-1)


@_labels_as_pred
def _kl_divergence(E, y_true, y_pred):
    eps = config.epsilon()
    t, p = clip(E, y_true, eps, 1.0), clip(E, y_pred, eps, 1.0)
    return total(E, E.op("mul", t, E.op("log", E.op("div", t, p))), axis=-1)


@_labels_as_pred
def _poisson(E, y_true, y_pred):
    return mean(E, E.op("sub", y_pred, E.op("mul", y_true, E.op("log", E.op("add", y_pred, config.epsilon())))),
                axis=-1)


def _hinge_labels(E, y_true):
    """Keras's convert_binary_labels_to_hinge: labels all in {0, 1} become {-1, 1}; others stay."""
    binary = E.op("logical_or", E.op("equal", y_true, 0.0), E.op("equal", y_true, 1.0))
    all_binary = E.op("equal", E.op("reduce_min", cast(E, binary, "f32"), axes=(), keepdims=False), 1.0)
    return E.op("where", all_binary, E.op("sub", E.op("mul", y_true, 2.0), 1.0), y_true)


def _hinge_margin(E, y_true, y_pred):
    return E.op("maximum", E.op("sub", 1.0, E.op("mul", _hinge_labels(E, y_true), y_pred)), 0.0)


@_labels_as_pred
def _hinge(E, y_true, y_pred):
    return mean(E, _hinge_margin(E, y_true, y_pred), axis=-1)


@_labels_as_pred
def _squared_hinge(E, y_true, y_pred):
    return mean(E, E.op("square", _hinge_margin(E, y_true, y_pred)), axis=-1)


@_labels_as_pred
def _categorical_hinge(E, y_true, y_pred):
    pos = total(E, E.op("mul", y_true, y_pred), axis=-1)
    neg = E.op("reduce_max", E.op("mul", E.op("sub", 1.0, y_true), y_pred), axes=(-1,), keepdims=False)
    return E.op("maximum", E.op("add", E.op("sub", neg, pos), 1.0), 0.0)


def _l2_normalize(E, x, axis):
    """Keras's ops.normalize for order 2: x * min(rsqrt(sum(x^2)), 1 / epsilon)."""
    inv_norm = E.op("div", 1.0, E.op("sqrt", total(E, E.op("square", x), axis=axis, keepdims=True)))
    return E.op("mul", x, E.op("minimum", inv_norm, 1.0 / config.epsilon()))


@_labels_as_pred
def _cosine_similarity(E, y_true, y_pred, axis=-1):
    return E.op("neg", total(E, E.op("mul", _l2_normalize(E, y_true, axis), _l2_normalize(E, y_pred, axis)),
                             axis=axis))


def _check_same_shape(E, y_true, y_pred, what):
    if E.shape(y_true)[1:] != E.shape(y_pred)[1:] or len(E.shape(y_true)) != len(E.shape(y_pred)):
        raise ValueError(f"{what}: `y_true` and `y_pred` must have the same shape, got y_true "
                         f"{_fmt(E.shape(y_true))} and y_pred {_fmt(E.shape(y_pred))}")


def _binary_crossentropy(E, y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    y_true = cast(E, y_true, E.dtype(y_pred))
    if label_smoothing:
        y_true = E.op("add", E.op("mul", y_true, 1.0 - label_smoothing), 0.5 * label_smoothing)
    _check_same_shape(E, y_true, y_pred, "binary_crossentropy")
    one_minus_t = E.op("sub", 1.0, y_true)
    if from_logits:  # -t*log_sigmoid(x) - (1-t)*log_sigmoid(-x), log_sigmoid(x) = -softplus(-x)
        bce = E.op("add", E.op("mul", y_true, E.op("softplus", E.op("neg", y_pred))),
                   E.op("mul", one_minus_t, E.op("softplus", y_pred)))
    else:
        eps = config.epsilon()
        p = clip(E, y_pred, eps, 1.0 - eps)
        bce = E.op("neg", E.op("add", E.op("mul", y_true, E.op("log", p)),
                               E.op("mul", one_minus_t, E.op("log", E.op("sub", 1.0, p)))))
    return mean(E, bce, axis=axis)


def _log_probs(E, y_pred, from_logits, axis):
    if from_logits:
        return E.op("log_softmax", y_pred, axis=axis)
    eps = config.epsilon()
    p = E.op("div", y_pred, total(E, y_pred, axis=axis, keepdims=True))
    return E.op("log", clip(E, p, eps, 1.0 - eps))


def _categorical_crossentropy(E, y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    y_true = cast(E, y_true, E.dtype(y_pred))
    if label_smoothing:
        n = E.shape(y_true)[-1]
        y_true = E.op("add", E.op("mul", y_true, 1.0 - label_smoothing), label_smoothing / n)
    _check_same_shape(E, y_true, y_pred, "categorical_crossentropy")
    return E.op("neg", total(E, E.op("mul", y_true, _log_probs(E, y_pred, from_logits, axis)), axis=axis))


def _sparse_categorical_crossentropy(E, y_true, y_pred, from_logits=False, ignore_class=None, axis=-1):
    if ignore_class is not None:
        raise ValueError("sparse_categorical_crossentropy: ignore_class is not supported by kcompile")
    st, sp = E.shape(y_true), E.shape(y_pred)
    if len(st) == len(sp) and st[-1] == 1:
        y_true = E.op("squeeze", y_true, axes=(-1,))
        st = st[:-1]
    if len(st) != len(sp) - 1 or st[1:] != sp[1:-1]:
        raise ValueError("sparse_categorical_crossentropy: `y_true` (integer class ids) and `y_pred` must have "
                         f"the same shape up to the last dimension, got y_true {_fmt(E.shape(y_true))} and "
                         f"y_pred {_fmt(sp)}")
    labels = cast(E, y_true, "i64")
    one_hot = E.op("one_hot", labels, depth=sp[axis], dtype=E.dtype(y_pred))
    return E.op("neg", total(E, E.op("mul", one_hot, _log_probs(E, y_pred, from_logits, axis)), axis=axis))


def _fmt(shape) -> str:
    return "(" + ", ".join("None" if isinstance(d, str) else str(d) for d in shape) + ")"


def reduce_weighted_values(E, values, sample_weight=None, reduction="sum_over_batch_size"):
    """Weight per-sample values and reduce them, exactly as keras.losses.loss.reduce_weighted_values."""
    if sample_weight is not None:
        sample_weight = cast(E, sample_weight, E.dtype(values))
        values, sample_weight = squeeze_or_expand_to_same_rank(E, values, sample_weight)
        values = E.op("mul", values, sample_weight)
    if reduction in (None, "none") or len(E.shape(values)) == 0:
        return values
    if reduction == "sum":
        return total(E, values)
    if reduction == "mean_with_sample_weight" and sample_weight is not None:
        denom = total(E, sample_weight)
        safe = E.op("where", E.op("equal", denom, 0.0), 1.0, denom)
        return E.op("where", E.op("equal", denom, 0.0), 0.0, E.op("div", total(E, values), safe))
    return mean(E, values)  # sum / number of elements


# -- Loss classes ----------------------------------------------------------------------------
class Loss:
    """Base class: subclasses override `call(y_true, y_pred)` with kc.ops (per-sample values)."""

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        if reduction not in REDUCTIONS:
            raise ValueError(f"Invalid value for argument `reduction`: {reduction!r}; expected one of "
                             f"{[r for r in REDUCTIONS if r]}")
        self.name = name or _snake(type(self).__name__)
        self.reduction = reduction
        if dtype not in (None, "float32"):   # the loss graph computes in float32 only
            raise NotImplementedError(f"loss '{self.name}': dtype={dtype!r} is not supported (float32 only)")
        self.dtype = "float32"

    def call(self, y_true, y_pred):
        raise NotImplementedError(f"{type(self).__name__} must implement call(y_true, y_pred)")

    def values(self, E, y_true, y_pred):
        """Per-sample losses; a user subclass's `call` runs on the emitter's tensors."""
        return E.call_user(self.call, y_true, y_pred)

    def emit(self, E, y_true, y_pred, sample_weight=None):
        return reduce_weighted_values(E, self.values(E, y_true, y_pred), sample_weight, self.reduction)

    def __call__(self, y_true, y_pred, sample_weight=None):
        from kcompile.frontend.training.emitter import eager_emitter
        E = eager_emitter()
        return self.emit(E, E.lift(y_true), E.lift(y_pred),
                         None if sample_weight is None else E.lift(sample_weight))

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class LossFunctionWrapper(Loss):
    """A Loss from a per-sample formula `fn(E, y_true, y_pred, **kwargs)`."""

    def __init__(self, fn, name=None, reduction="sum_over_batch_size", dtype=None, **kwargs):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.fn = fn
        self._fn_kwargs = kwargs

    def values(self, E, y_true, y_pred):
        y_true, y_pred = squeeze_or_expand_to_same_rank(E, y_true, y_pred)
        return self.fn(E, y_true, y_pred, **self._fn_kwargs)

    def get_config(self):
        return {**super().get_config(), **self._fn_kwargs}


class MeanSquaredError(LossFunctionWrapper):
    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error", dtype=None):
        super().__init__(_mse, name=name, reduction=reduction, dtype=dtype)


class MeanAbsoluteError(LossFunctionWrapper):
    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_error", dtype=None):
        super().__init__(_mae, name=name, reduction=reduction, dtype=dtype)


class BinaryCrossentropy(LossFunctionWrapper):
    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="binary_crossentropy", dtype=None):
        super().__init__(_binary_crossentropy, name=name, reduction=reduction, dtype=dtype,
                         from_logits=from_logits, label_smoothing=label_smoothing, axis=axis)
        self.from_logits, self.label_smoothing, self.axis = from_logits, label_smoothing, axis


class CategoricalCrossentropy(LossFunctionWrapper):
    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="categorical_crossentropy", dtype=None):
        super().__init__(_categorical_crossentropy, name=name, reduction=reduction, dtype=dtype,
                         from_logits=from_logits, label_smoothing=label_smoothing, axis=axis)
        self.from_logits, self.label_smoothing, self.axis = from_logits, label_smoothing, axis


class SparseCategoricalCrossentropy(LossFunctionWrapper):
    def __init__(self, from_logits=False, ignore_class=None, reduction="sum_over_batch_size",
                 name="sparse_categorical_crossentropy", dtype=None):
        super().__init__(_sparse_categorical_crossentropy, name=name, reduction=reduction, dtype=dtype,
                         from_logits=from_logits, ignore_class=ignore_class)
        self.from_logits, self.ignore_class = from_logits, ignore_class


def _simple_loss(fn, default_name, **defaults):
    """A Keras loss class over one formula: keyword arguments with Keras's defaults, then reduction/name."""
    def __init__(self, *args, reduction="sum_over_batch_size", name=default_name, dtype=None, **kwargs):
        params = {**defaults, **dict(zip(defaults, args)), **kwargs}
        LossFunctionWrapper.__init__(self, fn, name=name, reduction=reduction, dtype=dtype, **params)
        self.__dict__.update(params)
    return __init__


class Huber(LossFunctionWrapper):
    __init__ = _simple_loss(_huber, "huber_loss", delta=1.0)


class LogCosh(LossFunctionWrapper):
    __init__ = _simple_loss(_log_cosh, "log_cosh")


class KLDivergence(LossFunctionWrapper):
    __init__ = _simple_loss(_kl_divergence, "kl_divergence")


class Poisson(LossFunctionWrapper):
    __init__ = _simple_loss(_poisson, "poisson")


class Hinge(LossFunctionWrapper):
    __init__ = _simple_loss(_hinge, "hinge")


class SquaredHinge(LossFunctionWrapper):
    __init__ = _simple_loss(_squared_hinge, "squared_hinge")


class CategoricalHinge(LossFunctionWrapper):
    __init__ = _simple_loss(_categorical_hinge, "categorical_hinge")


class CosineSimilarity(LossFunctionWrapper):
    __init__ = _simple_loss(_cosine_similarity, "cosine_similarity", axis=-1)


# -- functions (per-sample values, eager or symbolic KTensors) ----------------------------------
def _eager(fn, y_true, y_pred, **kwargs):
    from kcompile.frontend.training.emitter import eager_emitter
    E = eager_emitter()
    y_true, y_pred = E.lift(y_true), E.lift(y_pred)
    if fn in (_mse, _mae, _huber, _log_cosh, _cosine_similarity):
        y_true, y_pred = squeeze_or_expand_to_same_rank(E, cast(E, y_true, E.dtype(y_pred)), y_pred)
    return fn(E, y_true, y_pred, **kwargs)


def mean_squared_error(y_true, y_pred):
    return _eager(_mse, y_true, y_pred)


def mean_absolute_error(y_true, y_pred):
    return _eager(_mae, y_true, y_pred)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    return _eager(_binary_crossentropy, y_true, y_pred, from_logits=from_logits,
                  label_smoothing=label_smoothing, axis=axis)


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    return _eager(_categorical_crossentropy, y_true, y_pred, from_logits=from_logits,
                  label_smoothing=label_smoothing, axis=axis)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None, axis=-1):
    return _eager(_sparse_categorical_crossentropy, y_true, y_pred, from_logits=from_logits,
                  ignore_class=ignore_class, axis=axis)


def huber(y_true, y_pred, delta=1.0):
    return _eager(_huber, y_true, y_pred, delta=delta)


def log_cosh(y_true, y_pred):
    return _eager(_log_cosh, y_true, y_pred)


def kl_divergence(y_true, y_pred):
    return _eager(_kl_divergence, y_true, y_pred)


def poisson(y_true, y_pred):
    return _eager(_poisson, y_true, y_pred)


def hinge(y_true, y_pred):
    return _eager(_hinge, y_true, y_pred)


def squared_hinge(y_true, y_pred):
    return _eager(_squared_hinge, y_true, y_pred)


def categorical_hinge(y_true, y_pred):
    return _eager(_categorical_hinge, y_true, y_pred)


def cosine_similarity(y_true, y_pred, axis=-1):
    return _eager(_cosine_similarity, y_true, y_pred, axis=axis)


logcosh = log_cosh
kld = KLD = kullback_leibler_divergence = kl_divergence


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error

_CLASSES = {
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError, "meansquarederror": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError, "meanabsoluteerror": MeanAbsoluteError,
    "binary_crossentropy": BinaryCrossentropy, "binarycrossentropy": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy, "categoricalcrossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "sparsecategoricalcrossentropy": SparseCategoricalCrossentropy,
    "huber": Huber, "huber_loss": Huber, "log_cosh": LogCosh, "logcosh": LogCosh, "kl_divergence": KLDivergence,
    "kld": KLDivergence, "kldivergence": KLDivergence, "poisson": Poisson, "hinge": Hinge,
    "squared_hinge": SquaredHinge, "squaredhinge": SquaredHinge, "categorical_hinge": CategoricalHinge,
    "categoricalhinge": CategoricalHinge, "cosine_similarity": CosineSimilarity,
    "cosinesimilarity": CosineSimilarity,
}
_FUNCTIONS = {
    mean_squared_error: MeanSquaredError, mean_absolute_error: MeanAbsoluteError,
    binary_crossentropy: BinaryCrossentropy, categorical_crossentropy: CategoricalCrossentropy,
    sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
    huber: Huber, log_cosh: LogCosh, kl_divergence: KLDivergence, poisson: Poisson, hinge: Hinge,
    squared_hinge: SquaredHinge, categorical_hinge: CategoricalHinge, cosine_similarity: CosineSimilarity,
}


def get(identifier):
    """A Loss from a name ("mse", "sparse_categorical_crossentropy"), a Loss, or a function."""
    if identifier is None or isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        cls = _CLASSES.get(identifier.lower())
        if cls is None:
            raise ValueError(f"Could not interpret loss identifier: {identifier!r}; known: "
                             f"{sorted(k for k in _CLASSES if '_' in k or len(k) == 3)}")
        return cls()
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if identifier in _FUNCTIONS:
        return _FUNCTIONS[identifier]()
    if callable(identifier):
        return UserFunctionLoss(identifier)
    raise ValueError(f"Could not interpret loss identifier: {identifier!r}")


class UserFunctionLoss(Loss):
    """A user's `fn(y_true, y_pred)` written with kc.ops, reduced like any Keras loss."""

    def __init__(self, fn, name=None, reduction="sum_over_batch_size"):
        super().__init__(name=name or getattr(fn, "__name__", "loss"), reduction=reduction)
        self.fn = fn

    def values(self, E, y_true, y_pred):
        y_true, y_pred = squeeze_or_expand_to_same_rank(E, y_true, y_pred)
        return E.call_user(self.fn, y_true, y_pred)


def _snake(name: str) -> str:
    out = "".join("_" + c.lower() if c.isupper() else c for c in name)
    return out.lstrip("_")
