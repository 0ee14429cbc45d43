"""Keras 3's Nadam, Adamax, Adadelta, Ftrl and Lion: the update formulas of keras/src/optimizers, over an emitter.

Each `update_step` is Keras's, term for term (same defaults, same order of operations), so the compiled
train step and eager `apply_gradients` follow Keras to float rounding.
"""
from __future__ import annotations

import numpy as np

from kcompile.frontend.optimizers import Optimizer
from kcompile.frontend.training.emitter import clip


class Nadam(Optimizer):
    """Nesterov Adam. Keras keeps one running product u_product = prod(beta_1*(1 - 0.5*0.96^t)); here it
    is a slot beside each variable (every element holds the same value), so it travels with the step."""

    slot_names = ("momentum", "velocity", "u_product")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name="nadam", **kwargs):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    def slot_initial(self, slot, value):
        return np.ones_like(value) if slot == "u_product" else np.zeros_like(value)

    def update_step(self, E, var, grad, slots, lr, iterations):
        local_step, next_step = E.op("add", iterations, 1.0), E.op("add", iterations, 2.0)
        decay = E.lift(0.96, (lr,))
        u_t = E.op("mul", self.beta_1, E.op("sub", 1.0, E.op("mul", 0.5, E.op("pow", decay, local_step))))
        u_t_1 = E.op("mul", self.beta_1, E.op("sub", 1.0, E.op("mul", 0.5, E.op("pow", decay, next_step))))
        u_product_t = E.op("mul", slots["u_product"], u_t)   # Keras updates the product before the step
        u_product_t_1 = E.op("mul", u_product_t, u_t_1)
        beta_2_power = E.op("pow", E.lift(self.beta_2, (lr,)), local_step)
        m = E.op("add", slots["momentum"], E.op("mul", E.op("sub", grad, slots["momentum"]), 1 - self.beta_1))
        v = E.op("add", slots["velocity"],
                 E.op("mul", E.op("sub", E.op("square", grad), slots["velocity"]), 1 - self.beta_2))
        m_hat = E.op("add", E.op("div", E.op("mul", u_t_1, m), E.op("sub", 1.0, u_product_t_1)),
                     E.op("div", E.op("mul", E.op("sub", 1.0, u_t), grad), E.op("sub", 1.0, u_product_t)))
        v_hat = E.op("div", v, E.op("sub", 1.0, beta_2_power))
        var = E.op("sub", var, E.op("div", E.op("mul", m_hat, lr), E.op("add", E.op("sqrt", v_hat), self.epsilon)))
        return var, {"momentum": m, "velocity": v, "u_product": u_product_t}

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


class Adamax(Optimizer):
    """Adam with the infinity norm: u = max(beta_2*u, |g|)."""

    slot_names = ("momentum", "norm")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name="adamax", **kwargs):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    def update_step(self, E, var, grad, slots, lr, iterations):
        beta_1_power = E.op("pow", E.lift(self.beta_1, (lr,)), E.op("add", iterations, 1.0))
        m = E.op("add", slots["momentum"], E.op("mul", E.op("sub", grad, slots["momentum"]), 1 - self.beta_1))
        u = E.op("maximum", E.op("mul", self.beta_2, slots["norm"]), E.op("abs", grad))
        step = E.op("div", E.op("mul", lr, m),
                    E.op("mul", E.op("sub", 1.0, beta_1_power), E.op("add", u, self.epsilon)))
        return E.op("sub", var, step), {"momentum": m, "norm": u}

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


class Adadelta(Optimizer):
    """Adadelta: step = -rms(acc_delta)/rms(acc_grad)*g, scaled by the learning rate."""

    slot_names = ("accumulated_grad", "accumulated_delta_var")

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, name="adadelta", **kwargs):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name, **kwargs)
        self.rho, self.epsilon = rho, epsilon

    def update_step(self, E, var, grad, slots, lr, iterations):
        rho = self.rho

        def rms(x):
            return E.op("sqrt", E.op("add", x, self.epsilon))

        acc_grad = E.op("add", E.op("mul", slots["accumulated_grad"], rho), E.op("mul", 1 - rho, E.op("square", grad)))
        delta_var = E.op("neg", E.op("div", E.op("mul", rms(slots["accumulated_delta_var"]), grad), rms(acc_grad)))
        acc_delta = E.op("add", E.op("mul", rho, slots["accumulated_delta_var"]),
                         E.op("mul", 1 - rho, E.op("square", delta_var)))
        var = E.op("add", var, E.op("mul", lr, delta_var))
        return var, {"accumulated_grad": acc_grad, "accumulated_delta_var": acc_delta}

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


class Ftrl(Optimizer):
    """Follow The Regularized Leader (McMahan et al. 2013), as Keras 3 writes it."""

    slot_names = ("accumulator", "linear")

    def __init__(self, learning_rate=0.001, learning_rate_power=-0.5, initial_accumulator_value=0.1,
                 l1_regularization_strength=0.0, l2_regularization_strength=0.0,
                 l2_shrinkage_regularization_strength=0.0, beta=0.0, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, name="ftrl", **kwargs):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name, **kwargs)
        for arg, value, sign in [("initial_accumulator_value", initial_accumulator_value, 1),
                                 ("learning_rate_power", learning_rate_power, -1),
                                 ("l1_regularization_strength", l1_regularization_strength, 1),
                                 ("l2_regularization_strength", l2_regularization_strength, 1),
                                 ("l2_shrinkage_regularization_strength", l2_shrinkage_regularization_strength, 1)]:
            if value * sign < 0.0:
                raise ValueError(f"`{arg}` needs to be {'positive' if sign > 0 else 'negative'} or zero. "
                                 f"Received: {arg}={value}.")
        self.learning_rate_power = learning_rate_power
        self.initial_accumulator_value = initial_accumulator_value
        self.l1_regularization_strength = l1_regularization_strength
        self.l2_regularization_strength = l2_regularization_strength
        self.l2_shrinkage_regularization_strength = l2_shrinkage_regularization_strength
        self.beta = beta

    def slot_initial(self, slot, value):
        return np.full_like(value, self.initial_accumulator_value) if slot == "accumulator" else np.zeros_like(value)

    def update_step(self, E, var, grad, slots, lr, iterations):
        accum, linear = slots["accumulator"], slots["linear"]
        power = -float(self.learning_rate_power)
        l2_reg = E.op("add", E.op("div", self.beta, E.op("mul", 2.0, lr)), float(self.l2_regularization_strength))
        grad_to_use = E.op("add", grad, E.op("mul", 2 * self.l2_shrinkage_regularization_strength, var))
        new_accum = E.op("add", accum, E.op("square", grad))
        new_pow = E.op("pow", new_accum, power)
        linear = E.op("add", linear, E.op("sub", grad_to_use, E.op(
            "mul", E.op("div", E.op("sub", new_pow, E.op("pow", accum, power)), lr), var)))
        quadratic = E.op("add", E.op("div", new_pow, lr), E.op("mul", 2.0, l2_reg))
        l1 = float(self.l1_regularization_strength)
        var = E.op("div", E.op("sub", clip(E, linear, -l1, l1), linear), quadratic)
        return var, {"accumulator": new_accum, "linear": linear}

    def get_config(self):
        return {**super().get_config(), "learning_rate_power": self.learning_rate_power,
                "initial_accumulator_value": self.initial_accumulator_value,
                "l1_regularization_strength": self.l1_regularization_strength,
                "l2_regularization_strength": self.l2_regularization_strength,
                "l2_shrinkage_regularization_strength": self.l2_shrinkage_regularization_strength,
                "beta": self.beta}


class Lion(Optimizer):
    """Lion (Chen et al. 2023): var -= lr*sign(beta_1*m + (1-beta_1)*g); m = beta_2*m + (1-beta_2)*g."""

    slot_names = ("momentum",)

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.99, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, name="lion", **kwargs):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name, **kwargs)
        if beta_1 <= 0 or beta_1 > 1:
            raise ValueError("Argument `beta_1` must be in the [0, 1] range. Otherwise, the optimizer degenerates "
                             f"to SignSGD. Received: beta_1={beta_1}.")
        self.beta_1, self.beta_2 = beta_1, beta_2

    def update_step(self, E, var, grad, slots, lr, iterations):
        m = slots["momentum"]
        direction = E.op("sign", E.op("add", E.op("mul", m, self.beta_1), E.op("mul", grad, 1.0 - self.beta_1)))
        var = E.op("sub", var, E.op("mul", lr, direction))
        return var, {"momentum": E.op("add", E.op("mul", m, self.beta_2), E.op("mul", grad, 1.0 - self.beta_2))}

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2}
