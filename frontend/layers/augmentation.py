"""Keras 3's random image augmentation layers: RandomFlip, RandomContrast, RandomBrightness, RandomCrop,
RandomRotation, RandomZoom, RandomTranslation. Identity at inference (RandomCrop: a centred crop and
resize); in training each image draws its parameters from the counter-based generator
(random_uniform_like), so native code, the reference and ONNX draw the same numbers. Argument names,
defaults and validation follow Keras 3.15 (including its factor conventions, quoted where odd)."""
from __future__ import annotations

import math
import numbers

import numpy as np

from .. import ops, ops_image
from ..tensor import apply, convert_to_tensor
from .core import layer_seed, random_uniform
from .image_preprocessing import ImageLayer, check_choice, check_size, smart_resize

FILL_MODES = ("reflect", "wrap", "constant", "nearest")
INTERPOLATIONS = ("nearest", "bilinear")
FLIP_MODES = ("horizontal", "vertical", "horizontal_and_vertical")


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def factor_range(layer, factor, bounds=(-1.0, 1.0), name="factor", lower_open=False):
    """Keras's (lower, upper) from a number f (-> (max(-|f|, low), |f|)) or a pair; out of bounds -> error."""
    low, high = bounds
    bad = ValueError(f"layer '{layer.name}' ({type(layer).__name__}): `{name}` must be a number or a pair of "
                     f"numbers in the range [{low}, {high}], got {name}={factor!r}")

    def out_of_range(v):
        return not _is_number(v) or v > high or v < low or (lower_open and v == low)
    if isinstance(factor, (tuple, list)):
        if len(factor) != 2 or any(out_of_range(v) for v in factor):
            raise bad
        return tuple(float(v) for v in sorted(factor))
    if out_of_range(factor):
        raise bad
    f = abs(float(factor))
    return max(-f, low), f


def per_image_uniform(layer, images, lo: float, hi: float):
    """(N, 1) values drawn uniformly from [lo, hi), one per image (a fresh draw per call in a layer)."""
    template = apply("slice", images, axes=(1, 2, 3), starts=(0, 0, 0), ends=(1, 1, 1))
    u = ops.reshape(random_uniform(layer, template, layer_seed(layer, layer.seed)), (-1, 1))
    return ops.add(ops.multiply(u, hi - lo), lo)


def _as_image_shape(v):
    return ops.reshape(v, (-1, 1, 1, 1))


class _RandomImageLayer(ImageLayer):
    def __init__(self, seed=None, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.seed = seed

    def call_batch(self, images, training):
        return self.augment(images) if training else images

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


class RandomFlip(_RandomImageLayer):
    """Flips each image with probability 1/2 (both axes together in horizontal_and_vertical, as Keras)."""

    def __init__(self, mode="horizontal_and_vertical", seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        check_choice(self, "mode", mode, FLIP_MODES)
        self.mode = mode

    def augment(self, images):
        flip = ops.less_equal(_as_image_shape(per_image_uniform(self, images, 0.0, 1.0)), 0.5)
        flipped = images
        for axis, name in ((2, "horizontal"), (1, "vertical")):
            if name in self.mode:
                size = images.ir_shape[axis]
                flipped = apply("gather", flipped, np.arange(size - 1, -1, -1, dtype=np.int32), axis=axis)
        return ops.where(flip, flipped, images)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


class RandomContrast(_RandomImageLayer):
    """(x - mean) * c + mean per image and channel, clipped to value_range. Keras 3 draws c from
    [1 - lower, 1 + upper] with (lower, upper) = factor_range(factor, (0, 1)): factor=0.2 gives [1, 1.2]."""

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.factor = factor_range(self, factor, (0.0, 1.0))
        self.value_range = _value_range(self, value_range, sort=False)

    def augment(self, images):
        c = _as_image_shape(per_image_uniform(self, images, 1.0 - self.factor[0], 1.0 + self.factor[1]))
        mean = ops.mean(images, axis=(1, 2), keepdims=True)
        out = ops.add(ops.multiply(ops.subtract(images, mean), c), mean)
        return ops.clip(out, float(self.value_range[0]), float(self.value_range[1]))

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range}


class RandomBrightness(_RandomImageLayer):
    """Adds delta * (value_range width) per image, delta ~ U[factor range), clipped to value_range."""

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.factor = factor_range(self, factor)
        self.value_range = _value_range(self, value_range, sort=True)

    def augment(self, images):
        lo, hi = (float(v) for v in self.value_range)
        delta = per_image_uniform(self, images, self.factor[0], self.factor[1])
        return ops.clip(ops.add(images, _as_image_shape(ops.multiply(delta, hi - lo))), lo, hi)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range}


def _value_range(layer, value_range, sort: bool):
    if not isinstance(value_range, (tuple, list)) or len(value_range) != 2 or not all(map(_is_number, value_range)):
        raise ValueError(f"layer '{layer.name}' ({type(layer).__name__}): value_range must be a pair of numbers "
                         f"(min, max), got value_range={value_range!r}")
    return list(sorted(value_range)) if sort else tuple(value_range)


class RandomCrop(_RandomImageLayer):
    """A random height x width window (one offset per batch, as Keras) in training; at inference, and
    in training when the image is not larger on both axes, the centred crop of the target's aspect
    ratio resized to height x width (Keras 3's documented behaviour and its output shape)."""

    def __init__(self, height, width, seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        check_size(self, height, width)
        self.height, self.width = height, width

    def call_batch(self, images, training):
        h, w = images.ir_shape[1:3]
        if training and h > self.height and w > self.width:
            return self.augment(images)
        return smart_resize(images, self.height, self.width)

    def augment(self, images):
        out, one = images, convert_to_tensor(np.zeros((1,), np.float32))   # one draw per axis per batch
        for axis, size, target in ((1, images.ir_shape[1], self.height), (2, images.ir_shape[2], self.width)):
            u = random_uniform(self, one, layer_seed(self, self.seed))
            start = ops.cast(ops.floor(ops.multiply(u, float(size - target + 1))), "int32")
            start = ops.minimum(start, size - target)            # u < 1, but keep the window inside
            idx = ops.add(start, np.arange(target, dtype=np.int32))
            out = apply("gather", out, idx, axis=axis)
        return out

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width}


class _AffineLayer(_RandomImageLayer):
    """A random per-image transform applied by affine_transform (Keras's fill and interpolation modes)."""

    def __init__(self, fill_mode="reflect", interpolation="bilinear", seed=None, fill_value=0.0, data_format=None,
                 **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        check_choice(self, "fill_mode", fill_mode, FILL_MODES, NotImplementedError)
        check_choice(self, "interpolation", interpolation, INTERPOLATIONS, NotImplementedError)
        self.fill_mode, self.interpolation, self.fill_value = fill_mode, interpolation, fill_value

    def augment(self, images):
        return ops_image.affine_transform(images, self.transforms(images), self.interpolation, self.fill_mode,
                                          self.fill_value)

    def get_config(self):
        return {**super().get_config(), "fill_mode": self.fill_mode, "interpolation": self.interpolation,
                "fill_value": self.fill_value}


def _rows(*columns):
    """(N, 8) transforms from eight (N, 1) columns (plain numbers become columns shaped like the first)."""
    ref = next(c for c in columns if not _is_number(c))
    cols = [ops.add(ops.multiply(ref, 0.0), float(c)) if _is_number(c) else c for c in columns]
    return ops.concatenate(cols, axis=1)


class RandomRotation(_AffineLayer):
    """Rotates each image by factor * 360 degrees drawn in the factor range, about its centre."""

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None, fill_value=0.0,
                 data_format=None, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.factor = factor_range(self, factor)

    def transforms(self, images):
        h, w = images.ir_shape[1:3]
        angle = per_image_uniform(self, images, self.factor[0] * 360.0, self.factor[1] * 360.0)
        angle = ops.multiply(angle, math.pi / 180.0)
        cos, sin = ops.cos(angle), ops.sin(angle)
        cx, cy = 0.5 * (w - 1), 0.5 * (h - 1)
        a2 = ops.subtract(ops.subtract(cx, ops.multiply(cos, cx)), ops.multiply(ops.negative(sin), cy))
        b2 = ops.subtract(ops.subtract(cy, ops.multiply(sin, cx)), ops.multiply(cos, cy))
        return _rows(cos, ops.negative(sin), a2, sin, cos, b2, 0.0, 0.0)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


class RandomZoom(_AffineLayer):
    """Scales each image's sampling grid by 1 + U[height_factor range) (and width: its own draw, or the
    same zoom when width_factor is None) about the centre: a positive factor zooms out."""

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.height_factor, self.width_factor = height_factor, width_factor
        self._height = _signed_range(self, height_factor, "height_factor", lower_open=True)
        self._width = None if width_factor is None else _signed_range(self, width_factor, "width_factor",
                                                                      lower_open=True)

    def transforms(self, images):
        h, w = images.ir_shape[1:3]
        zy = per_image_uniform(self, images, 1.0 + self._height[0], 1.0 + self._height[1])
        zx = zy if self._width is None else per_image_uniform(self, images, 1.0 + self._width[0],
                                                              1.0 + self._width[1])
        x_offset = ops.multiply(ops.subtract(1.0, zx), (w - 1.0) / 2.0)
        y_offset = ops.multiply(ops.subtract(1.0, zy), (h - 1.0) / 2.0)
        return _rows(zx, 0.0, x_offset, 0.0, zy, y_offset, 0.0, 0.0)

    def get_config(self):
        return {**super().get_config(), "height_factor": self.height_factor, "width_factor": self.width_factor}


class RandomTranslation(_AffineLayer):
    """Shifts each image by U[factor range) * height rows and U[factor range) * width columns."""

    def __init__(self, height_factor, width_factor, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.height_factor, self.width_factor = height_factor, width_factor
        self._height = _signed_range(self, height_factor, "height_factor")
        self._width = _signed_range(self, width_factor, "width_factor")

    def transforms(self, images):
        h, w = images.ir_shape[1:3]
        dy = ops.multiply(per_image_uniform(self, images, *self._height), float(h))
        dx = ops.multiply(per_image_uniform(self, images, *self._width), float(w))
        return _rows(1.0, 0.0, ops.negative(dx), 0.0, 1.0, ops.negative(dy), 0.0, 0.0)

    def get_config(self):
        return {**super().get_config(), "height_factor": self.height_factor, "width_factor": self.width_factor}


def _signed_range(layer, factor, name, lower_open=False):
    """RandomZoom/RandomTranslation's factors: a number f -> (-|f|, |f|), or a sorted pair; each in [-1, 1]
    (RandomZoom excludes -1: a zoom of 0 has no inverse)."""
    return factor_range(layer, factor, (-1.0, 1.0), name, lower_open)
