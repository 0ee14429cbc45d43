"""kc.constraints: Keras 3's weight constraints (MaxNorm, NonNeg, UnitNorm, MinMaxNorm), written with kc.ops.

A constraint is a projection `w -> w'` applied to a weight after each optimizer update. Written with
kc.ops, the same formula runs eagerly on arrays and traced inside the compiled train step.
"""
from __future__ import annotations

from . import config, ops
from .catalog import Catalog


class Constraint:
    """Base class: `constraint(w)` returns the projected weight (the identity by default)."""

    def __call__(self, w):
        return w

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _norms(w, axis):
    return ops.sqrt(ops.sum(ops.square(w), axis=axis, keepdims=True))


class MaxNorm(Constraint):
    def __init__(self, max_value=2, axis=0):
        self.max_value, self.axis = max_value, axis

    def __call__(self, w):
        norms = _norms(w, self.axis)
        desired = ops.clip(norms, 0, self.max_value)
        return ops.multiply(w, ops.divide(desired, ops.add(norms, config.epsilon())))

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    def __call__(self, w):
        return ops.maximum(w, 0.0)


class UnitNorm(Constraint):
    def __init__(self, axis=0):
        self.axis = axis

    def __call__(self, w):
        return ops.divide(w, ops.add(_norms(w, self.axis), config.epsilon()))

    def get_config(self):
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value, self.max_value, self.rate, self.axis = min_value, max_value, rate, axis

    def __call__(self, w):
        norms = _norms(w, self.axis)
        desired = ops.add(ops.multiply(ops.clip(norms, self.min_value, self.max_value), self.rate),
                          ops.multiply(norms, 1.0 - self.rate))
        return ops.multiply(w, ops.divide(desired, ops.add(norms, config.epsilon())))

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate, "axis": self.axis}


max_norm, non_neg, unit_norm, min_max_norm = MaxNorm, NonNeg, UnitNorm, MinMaxNorm

ALL = {"Constraint": Constraint, "MaxNorm": MaxNorm, "NonNeg": NonNeg, "UnitNorm": UnitNorm,
       "MinMaxNorm": MinMaxNorm}
_BY_NAME = {"max_norm": MaxNorm, "non_neg": NonNeg, "unit_norm": UnitNorm, "min_max_norm": MinMaxNorm}

_CATALOG = Catalog("constraint", Constraint, ALL, _BY_NAME, accept_classes=True)
get, serialize, deserialize = _CATALOG.get, _CATALOG.serialize, _CATALOG.deserialize
