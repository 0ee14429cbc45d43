"""Reshaping layers: ZeroPadding1D/2D, UpSampling1D/2D (nearest), Permute, RepeatVector, Cropping1D/2D."""
from __future__ import annotations

from .. import ops
from ..tensor import apply
from . import arguments
from .base import Layer
from .conv import check_rank
from .serial import check_channels_last


def _pairs(layer, arg: str, padding, n: int) -> tuple:
    """Keras padding/cropping spec: int, (a, b) per axis, or ((before, after), ...); none negative."""
    flat_pair = isinstance(padding, (list, tuple)) and len(padding) == 2 and all(isinstance(p, int) for p in padding)
    if isinstance(padding, int) or (n == 1 and flat_pair):   # 1-D layers take (before, after)
        return (arguments.int_tuple(layer, arg, padding, 2, minimum=0),) * n
    if not isinstance(padding, (list, tuple)) or len(padding) != n:
        raise ValueError(f"layer '{layer.name}' ({type(layer).__name__}): argument `{arg}` must be an integer or "
                         f"{n} values (one per spatial axis), got {padding!r}")
    return tuple(arguments.int_tuple(layer, arg, p, 2, minimum=0) for p in padding)


class _ZeroPadding(Layer):
    rank = 2

    def __init__(self, padding=1, data_format=None, **kwargs):
        super().__init__(**kwargs)
        check_channels_last(data_format, self.name)
        self.padding = _pairs(self, "padding", padding, self.rank)

    def call(self, inputs):
        check_rank(self, inputs.shape, self.rank + 2)
        pads = (0, 0) + tuple(v for pair in self.padding for v in pair) + (0, 0)
        return apply("pad", inputs, pads=pads)

    def get_config(self):
        return {**super().get_config(), "padding": [list(p) for p in self.padding]}


class ZeroPadding1D(_ZeroPadding):
    rank = 1


class ZeroPadding2D(_ZeroPadding):
    rank = 2


class _Cropping(Layer):
    rank = 2

    def __init__(self, cropping=1, data_format=None, **kwargs):
        super().__init__(**kwargs)
        check_channels_last(data_format, self.name)
        self.cropping = _pairs(self, "cropping", cropping, self.rank)

    def call(self, inputs):
        check_rank(self, inputs.shape, self.rank + 2)
        axes = list(range(1, self.rank + 1))
        ends = [inputs.ir_shape[a] - after for a, (_, after) in zip(axes, self.cropping)]
        return apply("slice", inputs, axes=axes, starts=[b for b, _ in self.cropping], ends=ends)

    def get_config(self):
        return {**super().get_config(), "cropping": [list(c) for c in self.cropping]}


class Cropping1D(_Cropping):
    rank = 1


class Cropping2D(_Cropping):
    rank = 2

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):   # Keras 3 crops nothing by default
        super().__init__(cropping, data_format, **kwargs)


class _UpSampling(Layer):
    """Nearest-neighbour upsampling: each spatial axis repeated `size` times (reshape + broadcast)."""
    rank = 2

    def __init__(self, size=2, data_format=None, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        check_channels_last(data_format, self.name)
        if interpolation != "nearest":
            raise ValueError(f"layer '{self.name}': only interpolation='nearest' is supported")
        self.size = arguments.int_tuple(self, "size", size, self.rank)

    def call(self, inputs):
        check_rank(self, inputs.shape, self.rank + 2)
        shape = inputs.ir_shape
        spread, target, final = [shape[0]], [shape[0]], [shape[0]]
        for d, s in zip(shape[1:-1], self.size):
            spread += [d, 1]
            target += [d, s]
            final.append(d * s)
        spread.append(shape[-1])
        target.append(shape[-1])
        final.append(shape[-1])
        x = apply("reshape", inputs, shape=tuple(spread))
        x = apply("broadcast_to", x, shape=tuple(target))
        return apply("reshape", x, shape=tuple(final))

    def get_config(self):
        return {**super().get_config(), "size": list(self.size)}


class UpSampling1D(_UpSampling):
    rank = 1


class UpSampling2D(_UpSampling):
    rank = 2


class Permute(Layer):
    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        self.dims = arguments.int_tuple(self, "dims", dims, None)

    def call(self, inputs):
        return ops.transpose(inputs, (0,) + self.dims)

    def get_config(self):
        return {**super().get_config(), "dims": list(self.dims)}


class RepeatVector(Layer):
    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        self.n = arguments.integer(self, "n", n)

    def call(self, inputs):
        x = ops.expand_dims(inputs, 1)
        return apply("broadcast_to", x, shape=(inputs.ir_shape[0], self.n, inputs.ir_shape[1]))

    def get_config(self):
        return {**super().get_config(), "n": self.n}
