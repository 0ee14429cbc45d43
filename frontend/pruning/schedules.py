"""Pruning schedules with TF-MOT's formulas: `schedule(step) -> (should_prune, sparsity)`.

Evaluated in Python by the UpdatePruningStep callback before each training step (the step is the
wrapper's `pruning_step`, 1 for the first batch, as TF-MOT's in-graph increment makes it).
"""
from __future__ import annotations

import abc

import numpy as np


class PruningSchedule(abc.ABC):
    """Base class (as TF-MOT's): implement `__call__(step) -> (should_prune, sparsity)` and `get_config()`."""

    def _should_prune_in_step(self, step, begin_step, end_step, frequency) -> bool:
        """Prune in [begin_step, end_step] (end_step < 0: forever) every `frequency` steps from begin_step."""
        in_range = step >= begin_step and (step <= end_step or end_step < 0)
        return bool(in_range and (step - begin_step) % frequency == 0)   # % is floormod, as tf.math.floormod

    def _validate_step(self, begin_step, end_step, frequency, allow_negative_1):
        who = type(self).__name__
        if begin_step < 0:
            raise ValueError(f"{who}: begin_step should be >= 0, got {begin_step}")
        if not allow_negative_1 and end_step == -1:
            raise ValueError(f"{who}: end_step cannot be -1")
        if end_step != -1:
            if end_step < 0:
                raise ValueError(f"{who}: end_step can be -1 or >= 0, got {end_step}")
            if end_step < begin_step:
                raise ValueError(f"{who}: begin_step ({begin_step}) should be <= end_step ({end_step}) "
                                 "if end_step != -1")
        if frequency <= 0:
            raise ValueError(f"{who}: frequency should be > 0, got {frequency}")

    def _validate_sparsity(self, sparsity, variable_name):
        if not 0.0 <= sparsity < 1.0:
            raise ValueError(f"{type(self).__name__}: {variable_name} must be in range [0,1), got {sparsity}")

    @abc.abstractmethod
    def __call__(self, step):
        """(should_prune, sparsity) at `step`."""

    @abc.abstractmethod
    def get_config(self):
        """{'class_name': ..., 'config': {constructor arguments}}."""

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class ConstantSparsity(PruningSchedule):
    """`target_sparsity` at every pruning step in [begin_step, end_step]."""

    def __init__(self, target_sparsity, begin_step, end_step=-1, frequency=100):
        self.target_sparsity = target_sparsity
        self.begin_step = begin_step
        self.end_step = end_step
        self.frequency = frequency
        self._validate_step(begin_step, end_step, frequency, True)
        self._validate_sparsity(target_sparsity, "target_sparsity")

    def __call__(self, step):
        return (self._should_prune_in_step(step, self.begin_step, self.end_step, self.frequency),
                np.float32(self.target_sparsity))

    def get_config(self):
        return {"class_name": type(self).__name__,
                "config": {"target_sparsity": self.target_sparsity, "begin_step": self.begin_step,
                           "end_step": self.end_step, "frequency": self.frequency}}


class PolynomialDecay(PruningSchedule):
    """final + (initial - final) * (1 - p) ** power, p = clip((step - begin) / (end - begin), 0, 1)."""

    def __init__(self, initial_sparsity, final_sparsity, begin_step, end_step, power=3, frequency=100):
        self.initial_sparsity = initial_sparsity
        self.final_sparsity = final_sparsity
        self.power = power
        self.begin_step = begin_step
        self.end_step = end_step
        self.frequency = frequency
        self._validate_step(begin_step, end_step, frequency, False)
        self._validate_sparsity(initial_sparsity, "initial_sparsity")
        self._validate_sparsity(final_sparsity, "final_sparsity")

    def __call__(self, step):
        # float32 arithmetic as TF-MOT's graph; end_step == begin_step would divide by zero there
        # (NaN), here the schedule is already at its end (p = 1)
        span = self.end_step - self.begin_step
        ratio = np.float32(step - self.begin_step) / np.float32(span) if span else np.float32(1.0)
        p = np.minimum(np.float32(1.0), np.maximum(np.float32(0.0), ratio))
        sparsity = (np.float32(self.initial_sparsity - self.final_sparsity) * np.power(np.float32(1.0) - p,
                    np.float32(self.power)) + np.float32(self.final_sparsity))
        return (self._should_prune_in_step(step, self.begin_step, self.end_step, self.frequency),
                np.float32(sparsity))

    def get_config(self):
        return {"class_name": type(self).__name__,
                "config": {"initial_sparsity": self.initial_sparsity, "final_sparsity": self.final_sparsity,
                           "power": self.power, "begin_step": self.begin_step, "end_step": self.end_step,
                           "frequency": self.frequency}}


SCHEDULES = {"ConstantSparsity": ConstantSparsity, "PolynomialDecay": PolynomialDecay}


def deserialize(config) -> PruningSchedule:
    """A schedule from its get_config() ({'class_name', 'config'}) or a schedule object."""
    if isinstance(config, PruningSchedule):
        return config
    if not isinstance(config, dict) or config.get("class_name") not in SCHEDULES:
        raise ValueError(f"unknown pruning schedule {config!r}: expected one of {sorted(SCHEDULES)}")
    return SCHEDULES[config["class_name"]].from_config(config["config"])
