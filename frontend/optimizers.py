"""Keras 3 optimizers: update formulas written once over an emitter, used as IR and eagerly.

`emit_update` writes clipping, weight decay and the update step into the train-step graph;
`apply_gradients` runs the very same formulas on NumPy (NumpyEmitter) and assigns Variables.
The learning rate and the iteration count are graph inputs, so schedules and callbacks that
change the learning rate need no recompilation. Slots are NumPy arrays kept here, named
"optimizer/<slot>/<variable path>" in graphs.
"""
from __future__ import annotations

import numpy as np

from kcompile.frontend import schedules
from kcompile.ir import GraphBuilder
from kcompile.frontend.training.emitter import GraphEmitter, NumpyEmitter, clip, total
from kcompile.frontend.variables import Variable


class Optimizer:
    """Base class: subclasses set `slot_names` and implement `update_step(E, var, grad, slots, lr, step)`."""

    slot_names: tuple = ()

    def __init__(self, learning_rate=0.001, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None, **kwargs):
        if "lr" in kwargs:  # legacy Keras 2 spelling
            learning_rate = kwargs.pop("lr")
        # the EMA settings only matter with use_ema; a loss scale of 1 and no accumulation change nothing
        harmless = {"use_ema": (None, False), "loss_scale_factor": (None, 1.0),
                    "gradient_accumulation_steps": (None, 0)}
        for key, defaults in harmless.items():
            if kwargs.pop(key, None) not in defaults:
                _unsupported(type(self).__name__, key)
        kwargs.pop("ema_momentum", None), kwargs.pop("ema_overwrite_frequency", None)
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected keyword argument(s) {sorted(kwargs)}")
        if sum(x is not None for x in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError("Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set.")
        self.name = name or _snake(type(self).__name__)
        self.weight_decay = weight_decay
        self.clipnorm, self.clipvalue, self.global_clipnorm = clipnorm, clipvalue, global_clipnorm
        self._learning_rate = learning_rate
        self._iterations = Variable(np.int64(0), name="iteration", trainable=False, dtype="int64")
        self.slots: dict = {}  # variable path -> {slot name: np.ndarray}
        self._exclude_from_wd: set = set()

    @property
    def iterations(self):
        """The number of updates applied so far (an int64 Variable, as in Keras)."""
        return self._iterations

    @iterations.setter
    def iterations(self, value):
        self._iterations.assign(int(value))

    def finish_step(self):
        """Count one applied update (the graph step and apply_gradients both end with this)."""
        self._iterations.assign_add(1)

    # -- learning rate ---------------------------------------------------------------------
    @property
    def learning_rate(self):
        lr = self._learning_rate
        if isinstance(lr, schedules.LearningRateSchedule):
            return np.float32(lr(int(self.iterations)))
        return np.float32(lr() if callable(lr) else lr)

    @learning_rate.setter
    def learning_rate(self, value):
        self._learning_rate = value if callable(value) else float(value)

    lr = learning_rate

    # -- slots -----------------------------------------------------------------------------
    def slot_initial(self, slot: str, value: np.ndarray) -> np.ndarray:
        return np.zeros_like(value)

    def active_slots(self) -> tuple:
        return self.slot_names

    def build(self, variables):
        """Create slot arrays for variables not seen before (Keras builds on first apply)."""
        for v in variables:
            if v.path not in self.slots:
                value = np.asarray(v.numpy())
                self.slots[v.path] = {s: self.slot_initial(s, value) for s in self.active_slots()}

    def slot_param_name(self, slot: str, path: str) -> str:
        return f"optimizer/{slot}/{path}"

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        self._exclude_from_wd |= {v.path for v in var_list or ()} | {f"name:{n}" for n in var_names or ()}

    def _use_weight_decay(self, path: str) -> bool:
        if path in self._exclude_from_wd:
            return False
        return not any(key.startswith("name:") and key[5:] in path for key in self._exclude_from_wd)

    # -- the formulas ----------------------------------------------------------------------
    def emit_update(self, b, params, grads, slots, lr, iterations, paths=None, constraints=None):
        """Emit clipping, weight decay, the update and each variable's constraint. slots: {slot: [value per param]}.

        `lr` is the f32 learning rate, `iterations` the f32 step count before this update; `constraints`
        (one per param, None for none) project the updated values, as Keras applies them after the update.
        Returns (new_params, new_slots) with new_slots shaped like slots.
        """
        E = GraphEmitter(b) if isinstance(b, GraphBuilder) else b
        paths = paths or [None] * len(params)
        grads = self._clip(E, list(grads))
        new_params, new_slots = [], {s: [] for s in slots}
        for i, (var, grad, path) in enumerate(zip(params, grads, paths)):
            if self.weight_decay is not None and self._use_weight_decay(path or ""):
                var = E.op("sub", var, E.op("mul", E.op("mul", var, float(self.weight_decay)), lr))
            mine = {s: slots[s][i] for s in slots}
            var, mine = self.update_step(E, var, grad, mine, lr, iterations)
            if constraints and constraints[i] is not None:
                var = E.call_user(constraints[i], var)
            new_params.append(var)
            for s in slots:
                new_slots[s].append(mine[s])
        return new_params, new_slots

    def update_step(self, E, var, grad, slots, lr, iterations):
        raise NotImplementedError(f"{type(self).__name__} must implement update_step")

    def _clip(self, E, grads):
        if self.clipnorm and self.clipnorm > 0:
            return [_clip_by_norm(E, g, self.clipnorm) for g in grads]
        if self.global_clipnorm and self.global_clipnorm > 0:
            return _clip_by_global_norm(E, grads, self.global_clipnorm)
        if self.clipvalue and self.clipvalue > 0:
            return [clip(E, g, -float(self.clipvalue), float(self.clipvalue)) for g in grads]
        return grads

    # -- eager use (custom training loops) -------------------------------------------------
    def apply_gradients(self, grads_and_vars):
        """Update Variables in place with the same formulas as the train-step graph; returns iterations."""
        pairs = [(g, v) for g, v in grads_and_vars if g is not None]
        if not pairs:
            raise ValueError("No gradients provided for any variable.")
        variables = [v for _, v in pairs]
        self._check_known(variables)
        from kcompile.frontend.state_trace import trace_of
        ctx = trace_of([g for g, _ in pairs])
        if ctx is not None:   # inside kc.function: the update is emitted into the traced graph
            from kcompile.frontend.traced_training import traced_apply_gradients
            traced_apply_gradients(self, ctx, [g for g, _ in pairs], variables)
            return self.iterations
        grads = [np.asarray(_numpy(g), dtype=v.value_array.dtype) for g, v in pairs]   # (numpy() copies)
        self.apply(grads, variables)
        return self.iterations

    def _check_known(self, variables):
        """As Keras 3: after the first apply_gradients, only the variables it was built with may be updated."""
        if not all(isinstance(v, Variable) for v in variables):
            bad = next(v for v in variables if not isinstance(v, Variable))
            raise ValueError(f"{type(self).__name__}.apply_gradients: expected (gradient, Variable) pairs, got a "
                             f"{type(bad).__name__} in place of a Variable")
        known = self.__dict__.setdefault("_applied_to", {})
        if not known:
            known.update((id(v), v) for v in variables)
        unknown = [v for v in variables if id(v) not in known]
        if unknown:
            raise ValueError(f"{type(self).__name__}.apply_gradients: unknown variable '{unknown[0].path}': this "
                             "optimizer can only be called for the variables it was originally built with; "
                             "create a new optimizer for another set of variables (another model)")

    def apply(self, grads, trainable_variables):
        from kcompile.frontend.eager_native import compiled_apply
        if compiled_apply(self, grads, trainable_variables):   # a repeated update runs compiled (fast eager)
            return
        self.build(trainable_variables)
        E = NumpyEmitter()
        slot_names = self.active_slots()
        slots = {s: [self.slots[v.path][s] for v in trainable_variables] for s in slot_names}
        new_vars, new_slots = self.emit_update(
            E, [np.asarray(v.numpy()) for v in trainable_variables], grads, slots,
            np.float32(self.learning_rate), np.float32(int(self.iterations)), [v.path for v in trainable_variables],
            constraints_of(trainable_variables))
        for i, v in enumerate(trainable_variables):
            v.assign(new_vars[i])
            for s in slot_names:
                self.slots[v.path][s] = new_slots[s][i]
        self.finish_step()

    @property
    def variables(self):
        return [self.slots[p][s] for p in self.slots for s in self.slots[p]]

    def get_config(self):
        lr = self._learning_rate
        return {"name": self.name, "learning_rate": schedules.serialize(lr) if isinstance(
            lr, schedules.LearningRateSchedule) else float(lr), "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm, "clipvalue": self.clipvalue, "global_clipnorm": self.global_clipnorm}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"])
        return cls(**config)


def _clip_by_norm(E, g, clip_norm):
    """Keras's clip_by_norm: g * clip_norm / max(||g||, clip_norm), safe at ||g|| = 0."""
    l2sum = total(E, E.op("square", g))
    positive = E.op("greater", l2sum, 0.0)
    l2norm = E.op("where", positive, E.op("sqrt", E.op("where", positive, l2sum, 1.0)), l2sum)
    return E.op("div", E.op("mul", g, float(clip_norm)), E.op("maximum", l2norm, float(clip_norm)))


def _clip_by_global_norm(E, grads, clip_norm):
    sums = [total(E, E.op("square", g)) for g in grads]
    acc = sums[0]
    for s in sums[1:]:
        acc = E.op("add", acc, s)
    norm = E.op("sqrt", acc)
    scale = E.op("div", float(clip_norm), E.op("maximum", norm, float(clip_norm)))
    return [E.op("mul", g, scale) for g in grads]


class SGD(Optimizer):
    """Keras 3 SGD: m = momentum*m - lr*g; var += m (nesterov: var += momentum*m - lr*g)."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, name="SGD", **kwargs):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name, **kwargs)
        if not isinstance(momentum, (int, float)) or momentum < 0 or momentum > 1:
            raise ValueError("`momentum` must be a float between [0, 1].")
        self.momentum, self.nesterov = float(momentum), nesterov

    def active_slots(self):
        return ("momentum",) if self.momentum != 0 else ()

    def update_step(self, E, var, grad, slots, lr, iterations):
        step = E.op("mul", grad, lr)
        if self.momentum == 0:
            return E.op("sub", var, step), slots
        m = E.op("sub", E.op("mul", slots["momentum"], self.momentum), step)
        if self.nesterov:
            var = E.op("add", var, E.op("sub", E.op("mul", m, self.momentum), step))
        else:
            var = E.op("add", var, m)
        return var, {"momentum": m}

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class RMSprop(Optimizer):
    """Keras 3 RMSprop (rho 0.9, momentum 0, epsilon 1e-7, optional centered)."""

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None, name="rmsprop", **kwargs):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name, **kwargs)
        self.rho, self.momentum, self.epsilon, self.centered = rho, momentum, epsilon, centered

    def active_slots(self):
        return ("velocity",) + (("momentum",) if self.momentum > 0 else ()) + \
            (("average_gradient",) if self.centered else ())

    def update_step(self, E, var, grad, slots, lr, iterations):
        rho = self.rho
        out = dict(slots)
        out["velocity"] = E.op("add", E.op("mul", rho, slots["velocity"]),
                               E.op("mul", 1 - rho, E.op("square", grad)))
        if self.centered:
            out["average_gradient"] = E.op("add", E.op("mul", rho, slots["average_gradient"]),
                                           E.op("mul", 1 - rho, grad))
            denom = E.op("add", E.op("sub", out["velocity"], E.op("square", out["average_gradient"])), self.epsilon)
        else:
            denom = E.op("add", out["velocity"], self.epsilon)
        increment = E.op("div", E.op("mul", lr, grad), E.op("sqrt", denom))
        if self.momentum > 0:
            out["momentum"] = E.op("add", E.op("mul", self.momentum, slots["momentum"]), increment)
            return E.op("sub", var, out["momentum"]), out
        return E.op("sub", var, increment), out

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}


class Adam(Optimizer):
    """Keras 3 Adam: bias correction folded into alpha = lr*sqrt(1-b2^t)/(1-b1^t)."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None, name="adam", **kwargs):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name, **kwargs)
        self.beta_1, self.beta_2, self.epsilon, self.amsgrad = beta_1, beta_2, epsilon, amsgrad

    def active_slots(self):
        return ("momentum", "velocity") + (("velocity_hat",) if self.amsgrad else ())

    def update_step(self, E, var, grad, slots, lr, iterations):
        local_step = E.op("add", iterations, 1.0)
        b1_power = E.op("pow", E.lift(self.beta_1, (lr,)), local_step)
        b2_power = E.op("pow", E.lift(self.beta_2, (lr,)), local_step)
        alpha = E.op("div", E.op("mul", lr, E.op("sqrt", E.op("sub", 1.0, b2_power))), E.op("sub", 1.0, b1_power))
        m, v = slots["momentum"], slots["velocity"]
        m = E.op("add", m, E.op("mul", E.op("sub", grad, m), 1 - self.beta_1))
        v = E.op("add", v, E.op("mul", E.op("sub", E.op("square", grad), v), 1 - self.beta_2))
        out = {"momentum": m, "velocity": v}
        if self.amsgrad:
            v = out["velocity_hat"] = E.op("maximum", slots["velocity_hat"], v)
        var = E.op("sub", var, E.op("div", E.op("mul", m, alpha), E.op("add", E.op("sqrt", v), self.epsilon)))
        return var, out

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay var -= var*wd*lr before the Adam step (Keras 3, wd 0.004)."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, clipnorm=None, clipvalue=None, global_clipnorm=None, name="adamw", **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay, clipnorm, clipvalue,
                         global_clipnorm, name, **kwargs)
        if self.weight_decay is None:
            raise ValueError("Argument `weight_decay` must be a float. Received: weight_decay=None")


class Adagrad(Optimizer):
    """Keras 3 Adagrad: acc += g^2; var -= lr*g/sqrt(acc + epsilon); acc starts at 0.1."""

    slot_names = ("accumulator",)

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name="adagrad", **kwargs):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name, **kwargs)
        self.initial_accumulator_value, self.epsilon = initial_accumulator_value, epsilon

    def slot_initial(self, slot, value):
        return np.full_like(value, self.initial_accumulator_value)

    def update_step(self, E, var, grad, slots, lr, iterations):
        acc = E.op("add", slots["accumulator"], E.op("square", grad))
        step = E.op("div", E.op("mul", lr, grad), E.op("sqrt", E.op("add", acc, self.epsilon)))
        return E.op("sub", var, step), {"accumulator": acc}

    def get_config(self):
        return {**super().get_config(), "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


from kcompile.frontend.optimizers_more import Adadelta, Adamax, Ftrl, Lion, Nadam  # noqa: E402 (they subclass Optimizer)

_BY_NAME = {"sgd": SGD, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW, "adagrad": Adagrad, "nadam": Nadam,
            "adamax": Adamax, "adadelta": Adadelta, "ftrl": Ftrl, "lion": Lion}


def get(identifier) -> Optimizer:
    """An Optimizer from a name ("rmsprop"), a class, or an instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return identifier()
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(f"Could not interpret optimizer identifier: {identifier!r}; known: {sorted(_BY_NAME)}")


def constraints_of(variables) -> list:
    """Each variable's weight constraint (None where it has none), for emit_update."""
    return [getattr(v, "constraint", None) for v in variables]


def _numpy(x):
    return x.numpy() if hasattr(x, "numpy") else x


def _unsupported(optimizer: str, what: str):
    raise ValueError(f"{optimizer}: optimizer option `{what}` is not supported by kcompile")


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
