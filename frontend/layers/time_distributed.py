"""TimeDistributed: a layer applied to every timestep, as one `scan` whose body is the layer (Keras 3
loops over the timesteps the same way, calling the layer on each (batch, ...) slice)."""
from __future__ import annotations

from kcompile.ir import GraphBuilder, TensorType

from .. import ops
from ..tensor import KTensor, apply, tracing
from .base import Layer, _accepts
from .masking import check_mask
from .nodes import flatten
from .region_trace import RegionTrace, body_input


class TimeDistributed(Layer):
    supports_masking = True   # Keras 3: the input's mask passes through

    def __init__(self, layer, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(layer, Layer):
            raise ValueError(f"TimeDistributed '{self.name}': expects a Layer, got {type(layer).__name__}")
        self.layer = layer

    def build(self, input_shape):
        if len(input_shape) < 3 or input_shape[1] == 0:
            raise ValueError(f"layer '{self.name}' (TimeDistributed) expects inputs of shape (batch, timesteps, "
                             f"...) with at least one timestep, got shape {tuple(input_shape)}")

    def call(self, inputs, training=False, mask=None):
        mask = check_mask(self, mask, inputs, 2) if mask is not None and mask.ndim == 2 else mask
        if mask is not None and mask.ndim != 2:
            raise ValueError(f"layer '{self.name}' (TimeDistributed) got a mask of shape {mask.shape}, expected "
                             f"shape {inputs.shape[:2]} for inputs of shape {inputs.shape}")
        take_mask = mask is not None and _accepts(self.layer.call, "mask")
        b = GraphBuilder(f"{self.name}_step")
        ctx = RegionTrace(b, self.name, training)
        x_t = body_input(ctx, "x_t", inputs.ir_type.with_shape(inputs.ir_shape[:1] + inputs.ir_shape[2:]))
        m_t = body_input(ctx, "mask_t", TensorType(inputs.ir_shape[:1], "f32")) if take_mask else None
        with tracing(ctx), b.location(self.name):
            kwargs = {"mask": ops.greater(m_t, 0.0)} if take_mask else {}
            ys = flatten(self.layer(x_t, training=training, **kwargs))
        if not all(isinstance(y, KTensor) for y in ys):
            raise ValueError(f"layer '{self.name}' (TimeDistributed): the wrapped layer '{self.layer.name}' must "
                             "return tensors")
        ctx.check_closed()
        body = b.build([y.value for y in ys], [f"y{i}" for i in range(len(ys))])
        xs = [inputs] + ([ops.cast(mask, "float32")] if take_mask else [])
        outs = apply("scan", *xs, *ctx.captured, body=body, num_carries=0, num_xs=len(xs), axis=1)
        return list(outs) if isinstance(outs, tuple) else outs

    def get_config(self):
        from ..config_tree import serialize_layer
        return {**super().get_config(), "layer": serialize_layer(self.layer)}

    @classmethod
    def from_config(cls, config):
        from ..config_tree import deserialize_layer
        return super().from_config({**config, "layer": deserialize_layer(config["layer"], {})})
