"""Bidirectional: a recurrent layer run forwards and a copy run backwards, outputs merged (Keras 3)."""
from __future__ import annotations

from .. import ops
from ..variables import name_scope
from . import rnn_state
from .base import Layer

MERGE_MODES = ("sum", "mul", "ave", "concat", None)


class Bidirectional(Layer):
    """Wraps a recurrent layer (LSTM, GRU, SimpleRNN, RNN): forward_<name> and backward_<name>, rebuilt
    from the layer's config as Keras does; weights are the forward layer's, then the backward one's."""

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None, **kwargs):
        super().__init__(**kwargs)
        _check_recurrent(self, layer, "layer")
        if backward_layer is not None:
            _check_recurrent(self, backward_layer, "backward_layer")
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"Bidirectional '{self.name}': merge_mode must be one of {MERGE_MODES}, "
                             f"got {merge_mode!r}")
        self.forward_layer = _clone(layer, go_backwards=layer.go_backwards, prefix="forward_")
        if backward_layer is None:
            backward_layer = _clone(layer, go_backwards=not layer.go_backwards, prefix="backward_")
        self.backward_layer = backward_layer
        for a in ("go_backwards",):
            if getattr(self.forward_layer, a) == getattr(self.backward_layer, a):
                raise ValueError(f"Bidirectional '{self.name}': the forward and backward layers must have "
                                 f"different go_backwards, both have {getattr(self.forward_layer, a)}")
        for a in ("return_sequences", "return_state"):
            f, b = getattr(self.forward_layer, a), getattr(self.backward_layer, a)
            if f != b:
                raise ValueError(f"Bidirectional '{self.name}': the forward and backward layers must agree on "
                                 f"{a}, got {f} (forward) and {b} (backward)")
        for sub in (self.forward_layer, self.backward_layer):   # Keras: masked steps output zeros
            sub.zero_output_for_mask = sub.return_sequences
        self.merge_mode = merge_mode
        self.return_sequences = self.forward_layer.return_sequences
        self.return_state = self.forward_layer.return_state
        self._initial_weights = weights
        self.supports_masking = True

    def __call__(self, *args, **kwargs):
        """Stateful halves make their states from the Inputs' static batch size before the call (see
        rnn_state.StatefulRNN.__call__: the halves are called on a scratch trace)."""
        for sub in (self.forward_layer, self.backward_layer):
            if getattr(sub, "stateful", False) and sub.states is None and args:
                sub._build_states(rnn_state.batch_of(args[0]), sub._state_sizes())
        return super().__call__(*args, **kwargs)

    def reset_state(self):
        for sub in (self.forward_layer, self.backward_layer):
            if getattr(sub, "stateful", False):
                sub.reset_state()

    reset_states = reset_state

    def build(self, input_shape):
        for sub in (self.forward_layer, self.backward_layer):
            if not sub.built:
                with name_scope(sub.name):
                    sub.build(tuple(input_shape))
                sub.built = True
        if self._initial_weights is not None:   # Bidirectional(weights=...): forward's, then backward's
            self.set_weights(self._initial_weights)
            self._initial_weights = None

    def call(self, sequences, initial_state=None, mask=None, training=False):
        fwd_state = bwd_state = None
        if initial_state is not None:
            states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
            half = len(states) // 2
            fwd_state, bwd_state = states[:half], states[half:]
        y = self.forward_layer(sequences, initial_state=fwd_state, mask=mask, training=training)
        # the backward scan's per-step outputs already line up with the inputs' timesteps: ask the
        # backward layer not to list them in processing order, rather than reversing them twice
        self.backward_layer._time_ordered = True
        try:
            y_rev = self.backward_layer(sequences, initial_state=bwd_state, mask=mask, training=training)
        finally:
            self.backward_layer._time_ordered = False
        states = []
        if self.return_state:
            states = list(y[1:]) + list(y_rev[1:])
            y, y_rev = y[0], y_rev[0]
        if self.merge_mode == "concat":
            out = ops.concatenate([y, y_rev], axis=-1)
        elif self.merge_mode == "sum":
            out = ops.add(y, y_rev)
        elif self.merge_mode == "ave":
            out = ops.divide(ops.add(y, y_rev), 2.0)
        elif self.merge_mode == "mul":
            out = ops.multiply(y, y_rev)
        else:
            out = [y, y_rev]
        if self.return_state:
            return (out if isinstance(out, list) else [out]) + states
        return out

    def compute_mask(self, inputs, mask=None):
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        out = mask if self.return_sequences else None
        outs = [out, out] if self.merge_mode is None else [out]
        if self.return_state:
            return outs + [None] * (2 * self.forward_layer.state_count)
        return outs if self.merge_mode is None else out

    def get_config(self):
        from ..config_tree import serialize_layer
        config = {**super().get_config(), "layer": serialize_layer(self.forward_layer),
                  "merge_mode": self.merge_mode}
        config["layer"]["config"]["name"] = self.forward_layer.name.removeprefix("forward_")
        config["backward_layer"] = serialize_layer(self.backward_layer)
        return config

    @classmethod
    def from_config(cls, config):
        from ..config_tree import deserialize_layer
        config = dict(config)
        config["layer"] = deserialize_layer(config["layer"], {})
        if config.get("backward_layer") is not None:
            config["backward_layer"] = deserialize_layer(config["backward_layer"], {})
        return super().from_config(config)


def _check_recurrent(owner, layer, what):
    if not getattr(layer, "is_recurrent", False):
        raise ValueError(f"Bidirectional '{owner.name}': {what} must be a recurrent layer (LSTM, GRU, SimpleRNN "
                         f"or RNN), got {type(layer).__name__} '{getattr(layer, 'name', layer)}'")


def _clone(layer, go_backwards: bool, prefix: str):
    config = layer.get_config()
    base = layer.name.removeprefix(prefix)
    config.update(name=prefix + base, go_backwards=go_backwards)
    return type(layer).from_config(config)
