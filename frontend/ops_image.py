"""kc.ops.image: Keras 3's `keras.ops.image.resize` and `affine_transform` on NHWC images (or one HWC
image), recorded as the IR's resize and affine_transform ops."""
from __future__ import annotations

from .tensor import KTensor, apply, convert_to_tensor

RESIZE_INTERPOLATIONS = ("bilinear", "nearest")


def _images(images, who: str):
    x = images if isinstance(images, KTensor) else convert_to_tensor(images)
    if x.ndim not in (3, 4):
        raise ValueError(f"{who}: expected images of rank 3 (one image) or 4 (a batch), channels last; "
                         f"got shape {x.shape}")
    if not x.ir_type.dtype.is_float:
        x = apply("cast", x, dtype="float32")
    return x


def _channels_last(data_format, who: str):
    if data_format not in (None, "channels_last"):
        raise ValueError(f"{who}: data_format={data_format!r} is not supported (kcompile computes channels_last)")


def _batched(fn, x):
    """fn on a batch; one image goes through as a batch of one."""
    if x.ndim == 4:
        return fn(x)
    return apply("squeeze", fn(apply("expand_dims", x, axes=(0,))), axes=(0,))


def centered_aspect_box(h: int, w: int, target_h: int, target_w: int):
    """(top, left, height, width) of the largest centred box with the target's aspect ratio (Keras's
    crop_to_aspect_ratio and smart_resize, in their integer arithmetic)."""
    crop_h = max(min(h, int(float(w * target_h) / target_w)), 1)
    crop_w = max(min(w, int(float(h * target_w) / target_h)), 1)
    return int(float(h - crop_h) / 2), int(float(w - crop_w) / 2), crop_h, crop_w


def crop(images, top: int, left: int, height: int, width: int):
    return apply("slice", images, axes=(1, 2), starts=(top, left), ends=(top + height, left + width))


def pad_to_aspect(images, target_h: int, target_w: int, fill_value: float):
    """Pad the short side evenly (fill_value) to the target's aspect ratio, as Keras's resize does."""
    h, w = images.ir_shape[1:3]
    top = int(float(max(h, int(float(w * target_h) / target_w)) - h) / 2)
    left = int(float(max(w, int(float(h * target_w) / target_h)) - w) / 2)
    if top <= 0 and left <= 0:
        return images
    pads = (0, 0, top, top, 0, 0, 0, 0) if top > 0 else (0, 0, 0, 0, left, left, 0, 0)
    return apply("pad", images, pads=pads, value=float(fill_value))


def resize(images, size, interpolation="bilinear", antialias=False, crop_to_aspect_ratio=False,
           pad_to_aspect_ratio=False, fill_mode="constant", fill_value=0.0, data_format=None):
    who = "kc.ops.image.resize"
    _channels_last(data_format, who)
    if interpolation not in RESIZE_INTERPOLATIONS:
        raise ValueError(f"{who}: interpolation must be one of {list(RESIZE_INTERPOLATIONS)}, got {interpolation!r}")
    if fill_mode != "constant":
        raise ValueError(f"{who}: only fill_mode='constant' is supported, got {fill_mode!r}")
    if crop_to_aspect_ratio and pad_to_aspect_ratio:
        raise ValueError(f"{who}: only one of pad_to_aspect_ratio and crop_to_aspect_ratio can be True")
    if antialias:
        raise NotImplementedError(f"{who}: antialias=True is not supported")
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise ValueError(f"{who}: size must be two positive ints (height, width), got {size!r}")
    height, width = size

    def run(x):
        if crop_to_aspect_ratio:
            x = crop(x, *centered_aspect_box(*x.ir_shape[1:3], height, width))
        elif pad_to_aspect_ratio:
            x = pad_to_aspect(x, height, width, fill_value)
        if tuple(x.ir_shape[1:3]) == (height, width):
            return x
        return apply("resize", x, size=(height, width), interpolation=interpolation)
    return _batched(run, _images(images, who))


def affine_transform(images, transform, interpolation="bilinear", fill_mode="constant", fill_value=0,
                     data_format=None):
    """Projective warp by [a0, a1, a2, b0, b1, b2, c0, c1] per image (see ir/ops/image.py)."""
    who = "kc.ops.image.affine_transform"
    _channels_last(data_format, who)
    t = transform if isinstance(transform, KTensor) else convert_to_tensor(transform, "float32")
    return _batched(lambda x: apply("affine_transform", x, t, interpolation=interpolation, fill_mode=fill_mode,
                                    fill_value=float(fill_value)), _images(images, who))
