"""BatchNormalization, LayerNormalization, UnitNormalization and GroupNormalization, decomposed into
elementwise and reduction ops."""
from __future__ import annotations

from .. import constraints, initializers, ops, regularizers
from ..tensor import current_trace, traced_value
from . import arguments
from .base import Layer
from .serial import ser_con, ser_init, ser_reg


def _broadcast_shape(rank: int, axes, sizes) -> tuple:
    shape = [1] * rank
    for a, s in zip(axes, sizes):
        shape[a] = s
    return tuple(shape)


def normalize(x, mean, variance, gamma, beta, epsilon):
    """Keras 3's batch_normalization formula: x * inv + (beta - mean * inv), inv = gamma / sqrt(var + eps)."""
    inv = ops.rsqrt(ops.add(variance, epsilon))
    if gamma is not None:
        inv = ops.multiply(inv, gamma)
    res = ops.multiply(ops.negative(mean), inv)
    if beta is not None:
        res = ops.add(res, beta)
    return ops.add(ops.multiply(x, inv), res)


def assign_state(variable, new_value):
    """In a trace, record the variable's new value as a state update; eagerly, assign it."""
    ctx = current_trace()
    if getattr(ctx, "records_state", False):   # kc.function: moving statistics are the graph's state
        variable.assign(new_value)
    elif ctx is not None:
        ctx.state_updates[variable.path] = traced_value(ctx, new_value)
        ctx.variables.setdefault(variable.path, variable)
    else:
        variable.assign(new_value.numpy())


def _processes() -> int:
    """Processes training together under the active kc.distribution (1 without one)."""
    from .. import distribution
    active = distribution.distribution()
    return 1 if active is None else active.world.size


class BatchNormalization(Layer):
    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", moving_mean_initializer="zeros",
                 moving_variance_initializer="ones", beta_regularizer=None, gamma_regularizer=None,
                 beta_constraint=None, gamma_constraint=None, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        self.axis = arguments.axis(self, "axis", axis)
        self.momentum = arguments.number(self, "momentum", momentum, 0, 1)
        self.epsilon = arguments.number(self, "epsilon", epsilon, 0)
        self.center, self.scale = center, scale
        self.synchronized = bool(synchronized)   # statistics over all processes' shards (data-parallel fit)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)

    def build(self, input_shape):
        rank = len(input_shape)
        self._axis = self.axis % rank
        n = input_shape[self._axis]
        self.gamma = self.add_weight(shape=(n,), name="gamma", initializer=self.gamma_initializer,
                                     regularizer=self.gamma_regularizer,
                                     constraint=self.gamma_constraint) if self.scale else None
        self.beta = self.add_weight(shape=(n,), name="beta", initializer=self.beta_initializer,
                                    regularizer=self.beta_regularizer,
                                    constraint=self.beta_constraint) if self.center else None
        self.moving_mean = self.add_weight(shape=(n,), name="moving_mean", trainable=False,
                                           initializer=self.moving_mean_initializer)
        self.moving_variance = self.add_weight(shape=(n,), name="moving_variance", trainable=False,
                                               initializer=self.moving_variance_initializer)

    def call(self, inputs, training=False):
        rank = inputs.ndim
        n = self.moving_mean.shape[0]
        if inputs.ir_shape[self._axis] != n:
            raise ValueError(f"layer '{self.name}' (BatchNormalization) was built for {n} features on axis "
                             f"{self.axis}, got input shape {inputs.shape}")
        shape = _broadcast_shape(rank, [self._axis], [n])
        gamma, beta = (None if w is None else ops.reshape(w, shape) for w in (self.gamma, self.beta))
        # Keras 3: a frozen BatchNormalization runs in inference mode even when training
        if training and self.trainable:
            axes = tuple(i for i in range(rank) if i != self._axis)
            if self.synchronized and _processes() > 1:
                mean, variance = self._global_moments(inputs, axes)
            else:
                mean, variance = ops.moments(inputs, axes, keepdims=True)
            self._update_moving(ops.reshape(mean, (n,)), ops.reshape(variance, (n,)))
        else:
            mean, variance = ops.reshape(self.moving_mean, shape), ops.reshape(self.moving_variance, shape)
        return normalize(inputs, mean, variance, gamma, beta, self.epsilon)

    def _global_moments(self, inputs, axes):
        """Mean and variance over every process's shard (synchronized=True under data-parallel fit): the
        per-channel sums of x and x*x and the row count, summed across processes in one message."""
        from ..tensor import apply
        parts = [ops.sum(inputs, axis=axes, keepdims=True), ops.sum(ops.square(inputs), axis=axes, keepdims=True),
                 ops.sum(ops.ones_like(inputs), axis=axes, keepdims=True)]
        total, total_sq, count = ops.split(apply("cross_process_sum", ops.concatenate(parts, axis=self._axis)), 3,
                                           axis=self._axis)
        mean = ops.divide(total, count)
        return mean, ops.maximum(ops.subtract(ops.divide(total_sq, count), ops.square(mean)), 0.0)

    def _update_moving(self, mean, variance):
        m = self.momentum
        assign_state(self.moving_mean, ops.add(ops.multiply(self.moving_mean, m), ops.multiply(mean, 1.0 - m)))
        assign_state(self.moving_variance,
                     ops.add(ops.multiply(self.moving_variance, m), ops.multiply(variance, 1.0 - m)))

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale, "synchronized": self.synchronized,
                "beta_initializer": ser_init(self.beta_initializer),
                "gamma_initializer": ser_init(self.gamma_initializer),
                "moving_mean_initializer": ser_init(self.moving_mean_initializer),
                "moving_variance_initializer": ser_init(self.moving_variance_initializer),
                "beta_regularizer": ser_reg(self.beta_regularizer),
                "gamma_regularizer": ser_reg(self.gamma_regularizer),
                "beta_constraint": ser_con(self.beta_constraint), "gamma_constraint": ser_con(self.gamma_constraint)}


class LayerNormalization(Layer):
    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, rms_scaling=False,
                 beta_initializer="zeros", gamma_initializer="ones", beta_regularizer=None,
                 gamma_regularizer=None, beta_constraint=None, gamma_constraint=None, **kwargs):
        super().__init__(**kwargs)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        if rms_scaling:
            raise NotImplementedError(f"LayerNormalization '{self.name}': rms_scaling is not supported")
        self.axis = axis
        self.epsilon, self.center, self.scale = arguments.number(self, "epsilon", epsilon, 0), center, scale
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)

    def build(self, input_shape):
        rank = len(input_shape)
        axes = [self.axis] if isinstance(self.axis, int) else list(self.axis)
        self._axes = tuple(sorted(a % rank for a in axes))
        shape = tuple(input_shape[a] for a in self._axes)
        self.gamma = self.add_weight(shape=shape, name="gamma", initializer=self.gamma_initializer,
                                     regularizer=self.gamma_regularizer,
                                     constraint=self.gamma_constraint) if self.scale else None
        self.beta = self.add_weight(shape=shape, name="beta", initializer=self.beta_initializer,
                                    regularizer=self.beta_regularizer,
                                    constraint=self.beta_constraint) if self.center else None

    def call(self, inputs):
        rank = inputs.ndim
        sizes = [inputs.ir_shape[a] for a in self._axes]
        bshape = _broadcast_shape(rank, self._axes, sizes)
        gamma, beta = (None if w is None else ops.reshape(w, bshape) for w in (self.gamma, self.beta))
        mean, variance = ops.moments(inputs, self._axes, keepdims=True)
        return normalize(inputs, mean, variance, gamma, beta, self.epsilon)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon, "center": self.center,
                "scale": self.scale, "beta_initializer": ser_init(self.beta_initializer),
                "gamma_initializer": ser_init(self.gamma_initializer),
                "beta_regularizer": ser_reg(self.beta_regularizer),
                "gamma_regularizer": ser_reg(self.gamma_regularizer),
                "beta_constraint": ser_con(self.beta_constraint), "gamma_constraint": ser_con(self.gamma_constraint)}


class UnitNormalization(Layer):
    """x / ||x||_2 over `axis`, as Keras: x * min(rsqrt(sum(x**2)), 1 / 1e-12)."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)):
            self.axis = list(axis)
        elif isinstance(axis, int):
            self.axis = axis
        else:
            raise TypeError(f"layer '{self.name}' (UnitNormalization): axis must be an int or a list/tuple of "
                            f"ints, got axis={axis!r}")

    def call(self, inputs):
        axes = [self.axis] if isinstance(self.axis, int) else self.axis
        for a in axes:
            if not -inputs.ndim <= a < inputs.ndim:
                raise ValueError(f"layer '{self.name}' (UnitNormalization): axis {self.axis} is out of bounds "
                                 f"for input shape {inputs.shape}")
        x = ops.cast(inputs, "float32") if not inputs.ir_type.dtype.is_float else inputs
        square_sum = ops.sum(ops.square(x), axis=tuple(axes), keepdims=True)
        return ops.multiply(x, ops.minimum(ops.rsqrt(square_sum), 1e12))

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class GroupNormalization(Layer):
    """Normalizes channel groups over the non-batch axes (groups=-1: instance normalization)."""

    def __init__(self, groups=32, axis=-1, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, **kwargs):
        if isinstance(groups, bool) or not isinstance(groups, int) or (groups <= 0 and groups != -1):
            raise ValueError("GroupNormalization: groups must be a positive integer (or -1 for instance "
                             f"normalization), got groups={groups!r}")
        super().__init__(**kwargs)
        self.groups, self.axis, self.epsilon = groups, int(axis), float(epsilon)
        self.center, self.scale = center, scale
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)

    def build(self, input_shape):
        self._rank, self._axis = len(input_shape), self.axis % len(input_shape)
        dim = self._dim = input_shape[self._axis]
        if self.groups == -1:
            self.groups = dim
        if dim < self.groups or dim % self.groups:
            raise ValueError(f"layer '{self.name}' (GroupNormalization): {dim} channels on axis {self.axis} "
                             f"cannot be split into {self.groups} equal groups")
        self.gamma = self.add_weight(shape=(dim,), name="gamma", initializer=self.gamma_initializer,
                                     regularizer=self.gamma_regularizer,
                                     constraint=self.gamma_constraint) if self.scale else None
        self.beta = self.add_weight(shape=(dim,), name="beta", initializer=self.beta_initializer,
                                    regularizer=self.beta_regularizer,
                                    constraint=self.beta_constraint) if self.center else None

    def call(self, inputs):
        shape, ax, dim = list(inputs.ir_shape), self._axis, self._dim
        if inputs.ndim != self._rank or shape[ax] != dim:
            raise ValueError(f"layer '{self.name}' (GroupNormalization) was built for {dim} channels on axis "
                             f"{self.axis}, got input shape {inputs.shape}")
        grouped = shape[:ax] + [self.groups, dim // self.groups] + shape[ax + 1:]
        x = ops.reshape(inputs, [-1] + grouped[1:])
        axes = tuple(i for i in range(1, len(grouped)) if i != ax)
        mean, variance = ops.moments(x, axes, keepdims=True)
        bshape = _broadcast_shape(len(grouped), [ax, ax + 1], [self.groups, dim // self.groups])
        gamma, beta = (None if w is None else ops.reshape(w, bshape) for w in (self.gamma, self.beta))
        return ops.reshape(normalize(x, mean, variance, gamma, beta, self.epsilon), [-1] + shape[1:])

    def get_config(self):
        return {**super().get_config(), "groups": self.groups, "axis": self.axis, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale,
                "beta_initializer": ser_init(self.beta_initializer),
                "gamma_initializer": ser_init(self.gamma_initializer),
                "beta_regularizer": ser_reg(self.beta_regularizer),
                "gamma_regularizer": ser_reg(self.gamma_regularizer),
                "beta_constraint": ser_con(self.beta_constraint), "gamma_constraint": ser_con(self.gamma_constraint)}
