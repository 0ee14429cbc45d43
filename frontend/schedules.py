"""Keras 3 learning-rate schedules, evaluated in Python each step and fed to the graph as a scalar."""
from __future__ import annotations

import numpy as np


class LearningRateSchedule:
    """Base class: `schedule(step) -> learning rate` (step = optimizer iterations before the update)."""

    def __call__(self, step):
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(step)")

    def get_config(self):
        raise NotImplementedError(f"{type(self).__name__} must implement get_config()")

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class _StepDecay(LearningRateSchedule):
    """What ExponentialDecay and InverseTimeDecay share: their arguments and the decay progress."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name=None):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name

    def _progress(self, step):
        """step / decay_steps in float32, floored when staircase."""
        p = np.float32(int(step)) / np.float32(self.decay_steps)
        return np.floor(p) if self.staircase else p

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


class ExponentialDecay(_StepDecay):
    """initial_learning_rate * decay_rate ** (step / decay_steps), floored exponent when staircase."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="ExponentialDecay"):
        if decay_steps <= 0:
            raise ValueError(f"Argument `decay_steps` must be > 0. Received: decay_steps={decay_steps}")
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase, name)

    def __call__(self, step):
        p = self._progress(step)
        return np.float32(self.initial_learning_rate) * np.power(np.float32(self.decay_rate), np.float32(p))


class PiecewiseConstantDecay(LearningRateSchedule):
    """values[i] while boundaries[i-1] < step <= boundaries[i] (Keras's boundary convention)."""

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        if len(boundaries) != len(values) - 1:
            raise ValueError("The length of boundaries should be 1 less than the length of values. "
                             f"Received: boundaries={boundaries} of length {len(boundaries)}, and "
                             f"values={values} of length {len(values)}.")
        self.boundaries = list(boundaries)
        self.values = list(values)
        self.name = name

    def __call__(self, step):
        step = int(step)
        for boundary, value in zip(self.boundaries, self.values):
            if step <= boundary:
                return np.float32(value)
        return np.float32(self.values[-1])

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class InverseTimeDecay(_StepDecay):
    """initial_learning_rate / (1 + decay_rate * step / decay_steps)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="InverseTimeDecay"):
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase, name)

    def __call__(self, step):
        p = self._progress(step)
        return np.float32(self.initial_learning_rate) / (np.float32(1) + np.float32(self.decay_rate) * p)


class PolynomialDecay(LearningRateSchedule):
    """(initial - end) * (1 - step/decay_steps) ** power + end; with cycle, decay_steps grows by whole cycles."""

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001, power=1.0, cycle=False,
                 name="PolynomialDecay"):
        if decay_steps <= 0:
            raise ValueError(f"Argument `decay_steps` must be > 0. Received: decay_steps={decay_steps}")
        self.initial_learning_rate, self.decay_steps = initial_learning_rate, decay_steps
        self.end_learning_rate, self.power, self.cycle, self.name = end_learning_rate, power, cycle, name

    def __call__(self, step):
        f = np.float32
        step, decay_steps = f(int(step)), f(self.decay_steps)
        if self.cycle:
            decay_steps = decay_steps * (f(1.0) if step == 0 else np.ceil(step / decay_steps))
        else:
            step = min(step, decay_steps)
        p = step / decay_steps
        initial, end = f(self.initial_learning_rate), f(self.end_learning_rate)
        return f((initial - end) * np.power(f(1) - p, f(self.power)) + end)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "end_learning_rate": self.end_learning_rate, "power": self.power, "cycle": self.cycle,
                "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Cosine decay to alpha * the rate over decay_steps, after an optional linear warmup to warmup_target."""

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay", warmup_target=None,
                 warmup_steps=0):
        if decay_steps <= 0:
            raise ValueError(f"Argument `decay_steps` must be > 0. Received: decay_steps={decay_steps}")
        self.initial_learning_rate, self.decay_steps, self.alpha, self.name = initial_learning_rate, decay_steps, \
            alpha, name
        self.warmup_target, self.warmup_steps = warmup_target, warmup_steps

    def _decay(self, step, decay_steps, decay_from):
        f = np.float32
        cosine = f(0.5) * (f(1.0) + np.cos(f(np.pi) * (step / decay_steps)))
        return decay_from * ((f(1) - f(self.alpha)) * cosine + f(self.alpha))

    def __call__(self, step):
        f = np.float32
        initial, decay_steps, step = f(self.initial_learning_rate), f(self.decay_steps), f(int(step))
        if self.warmup_target is None:
            return f(self._decay(min(step, decay_steps), decay_steps, initial))
        target, warmup_steps = f(self.warmup_target), f(self.warmup_steps)
        step = min(step, decay_steps + warmup_steps)
        if step < warmup_steps:
            return f((target - initial) * (step / warmup_steps) + initial)
        return f(self._decay(step - warmup_steps, decay_steps, target))

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "name": self.name, "warmup_target": self.warmup_target,
                "warmup_steps": self.warmup_steps}


def serialize(schedule: LearningRateSchedule) -> dict:
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(config: dict) -> LearningRateSchedule:
    cls = {c.__name__: c for c in (ExponentialDecay, PiecewiseConstantDecay, InverseTimeDecay,
                                                PolynomialDecay, CosineDecay)}.get(
        config.get("class_name"))
    if cls is None:
        raise ValueError(f"unknown learning-rate schedule {config.get('class_name')!r}")
    return cls.from_config(config["config"])

