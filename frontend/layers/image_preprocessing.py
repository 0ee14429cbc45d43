"""Keras 3's deterministic image layers, Resizing and CenterCrop, and what the augmentation layers share:
the image checks (channels_last, rank 3 or 4) and smart_resize (largest centred crop of the target's
aspect ratio, then a resize), which CenterCrop and RandomCrop fall back on."""
from __future__ import annotations

from .. import ops, ops_image
from . import arguments
from .base import Layer
from .serial import check_channels_last

class ImageLayer(Layer):
    """A layer on NHWC image batches (or one HWC image); subclasses implement call_batch."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        check_channels_last(data_format, self.name)
        self.data_format = "channels_last"

    def call(self, inputs, training=False):
        if inputs.ndim not in (3, 4):
            raise ValueError(f"layer '{self.name}' ({type(self).__name__}) expects images of rank 3 (one image) "
                             f"or 4 (a batch), channels last; got shape {inputs.shape}")
        if not inputs.ir_type.dtype.is_float:
            inputs = ops.cast(inputs, "float32")
        if inputs.ndim == 3:
            return ops.squeeze(self.call_batch(ops.expand_dims(inputs, 0), training), 0)
        return self.call_batch(inputs, training)

    def call_batch(self, images, training):
        raise NotImplementedError

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


def check_size(layer, height, width):
    arguments.integer(layer, "height", height)
    arguments.integer(layer, "width", width)


def check_choice(layer, name: str, value, choices, error=ValueError):
    if value not in choices:
        raise error(f"layer '{layer.name}' ({type(layer).__name__}): unknown {name} {value!r}; expected one of "
                    f"{list(choices)}")


def smart_resize(images, height: int, width: int, interpolation="bilinear"):
    return ops_image.resize(images, (height, width), interpolation=interpolation, crop_to_aspect_ratio=True)


class Resizing(ImageLayer):
    def __init__(self, height, width, interpolation="bilinear", crop_to_aspect_ratio=False,
                 pad_to_aspect_ratio=False, fill_mode="constant", fill_value=0.0, antialias=False,
                 data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        check_size(self, height, width)
        check_choice(self, "interpolation", interpolation, ops_image.RESIZE_INTERPOLATIONS)
        check_choice(self, "fill_mode", fill_mode, ("constant",))
        if crop_to_aspect_ratio and pad_to_aspect_ratio:
            raise ValueError(f"layer '{self.name}' (Resizing): only one of pad_to_aspect_ratio and "
                             "crop_to_aspect_ratio can be True")
        if antialias:
            raise NotImplementedError(f"layer '{self.name}' (Resizing): antialias=True is not supported")
        self.height, self.width, self.interpolation = height, width, interpolation
        self.crop_to_aspect_ratio, self.pad_to_aspect_ratio = bool(crop_to_aspect_ratio), bool(pad_to_aspect_ratio)
        self.fill_mode, self.fill_value, self.antialias = fill_mode, fill_value, False

    def call_batch(self, images, training):
        return ops_image.resize(images, (self.height, self.width), self.interpolation,
                                crop_to_aspect_ratio=self.crop_to_aspect_ratio,
                                pad_to_aspect_ratio=self.pad_to_aspect_ratio, fill_value=self.fill_value)

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width,
                "interpolation": self.interpolation, "crop_to_aspect_ratio": self.crop_to_aspect_ratio,
                "pad_to_aspect_ratio": self.pad_to_aspect_ratio, "fill_mode": self.fill_mode,
                "fill_value": self.fill_value, "antialias": self.antialias}


class CenterCrop(ImageLayer):
    """The central height x width window; an image smaller than that is smart-resized instead."""

    def __init__(self, height, width, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        check_size(self, height, width)
        self.height, self.width = height, width

    def call_batch(self, images, training):
        h, w = images.ir_shape[1:3]
        if h >= self.height and w >= self.width:
            return ops_image.crop(images, (h - self.height) // 2, (w - self.width) // 2, self.height, self.width)
        return smart_resize(images, self.height, self.width)

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width}
