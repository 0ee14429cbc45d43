"""Layer: the Keras 3 base class (build on first call, add_weight, tracking, symbolic calls)."""
from __future__ import annotations

import inspect
import itertools
import re

import numpy as np

from kcompile.ir import BATCH, GraphBuilder, IRError, TensorType, i64, load_budget
from kcompile.ir import dtype as to_dtype

from .. import constraints, initializers, ops, regularizers, state_version
from ..tensor import KTensor, TraceContext, convert_to_tensor, current_trace, tracing
from ..variables import Variable, name_scope
from . import masking
from .nodes import LayerNode, flatten, map_structure

_UIDS: dict = {}


def to_snake_case(name: str) -> str:
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(prefix: str) -> str:
    """Keras auto-naming: 'dense', 'dense_1', 'dense_2', ..."""
    n = _UIDS.get(prefix, 0)
    _UIDS[prefix] = n + 1
    return prefix if n == 0 else f"{prefix}_{n}"


class Layer:
    """Base class of all layers: override build(input_shape), call(inputs, training=None), get_config()."""

    def __init__(self, activity_regularizer=None, trainable=True, dtype=None, autocast=True, name=None,
                 **kwargs):
        input_shape = kwargs.pop("input_shape", None)
        input_dim = kwargs.pop("input_dim", None)
        batch_size = kwargs.pop("batch_size", None)
        kwargs.pop("input_length", None)
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected keyword argument(s) {sorted(kwargs)}")
        self.__dict__.setdefault("_sublayers", [])
        self.__dict__.setdefault("_own_variables", [])
        self.name = name or unique_name(to_snake_case(type(self).__name__))
        self._trainable = bool(trainable)
        self.built = False
        self._regularized: list = []       # (variable, regularizer)
        self._inbound_nodes: list = []
        self._eager_losses: list = []
        self._output_spec = None
        self._build_shapes = None
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self.dtype = float32_policy(dtype, f"layer '{self.name}'")
        self._batch_input_shape = None
        if input_dim is not None and input_shape is None:
            input_shape = (input_dim,)
        if input_shape is not None:
            self._batch_input_shape = (batch_size,) + tuple(input_shape)

    # -- tracking -------------------------------------------------------------------------------
    def __setattr__(self, name, value):
        if not name.startswith("_"):
            self._track(value)
        object.__setattr__(self, name, value)

    def _track(self, value):
        items = value if isinstance(value, (list, tuple)) else [value]
        sublayers = self.__dict__.setdefault("_sublayers", [])
        variables = self.__dict__.setdefault("_own_variables", [])
        for v in items:
            if isinstance(v, Layer) and v is not self and not any(v is s for s in sublayers):
                sublayers.append(v)
                state_version.bump()
            elif isinstance(v, Variable) and not any(v is w for w in variables):
                variables.append(v)
                state_version.bump()

    # -- weights --------------------------------------------------------------------------------
    def add_weight(self, shape=None, initializer=None, dtype=None, trainable=True, autocast=True,
                   regularizer=None, constraint=None, aggregation="none", name=None):
        shape = tuple(shape or ())
        if initializer is None:
            initializer = "glorot_uniform" if dtype in (None, "float32", "float64") else "zeros"
        init = initializers.get(initializer)
        # loading a model: a config's sizes count against the budget before the initializer allocates
        load_budget.charge(f"layer '{self.name}' weight '{name or 'variable'}'", shape, to_dtype(dtype or "float32").np)
        var = Variable(init(shape, dtype=dtype or "float32"), name=name or self._unused_weight_name(),
                       trainable=trainable,
                       dtype=dtype or "float32")
        var._created_trainable = bool(trainable)
        var.trainable = bool(trainable) and self._trainable
        self._own_variables.append(var)
        var.constraint = constraints.get(constraint)   # applied after each optimizer update, as Keras
        reg = regularizers.get(regularizer)
        if reg is not None:
            var.regularizer = reg
            self._regularized.append((var, reg))
        return var

    def _unused_weight_name(self) -> str:
        """Keras 3 auto-names unnamed weights variable, variable_1, ...; paths must stay unique."""
        taken = {v.name for v in self._own_variables}
        name, i = "variable", 0
        while name in taken:
            i += 1
            name = f"variable_{i}"
        return name

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        # Keras 3: the flag flips every variable created trainable, and every sublayer
        self._trainable = bool(value)
        for v in self._own_variables:
            if getattr(v, "_created_trainable", None) is None:
                v._created_trainable = v.trainable
            if v._created_trainable:
                v.trainable = self._trainable
        for layer in self._sublayers:
            layer.trainable = value

    @property
    def layers(self) -> list:
        return list(self._sublayers)

    @property
    def weights(self) -> list:
        """Own variables (trainable ones first, as Keras), then the sublayers' weights."""
        own = [v for v in self._own_variables if _created_trainable(v)]
        own += [v for v in self._own_variables if not _created_trainable(v)]
        return _dedup(own + [w for layer in self._sublayers for w in layer.weights])

    @property
    def variables(self) -> list:
        return self.weights

    @property
    def trainable_weights(self) -> list:
        return [v for v in self.weights if v.trainable] if self.trainable else []

    @property
    def non_trainable_weights(self) -> list:
        return [v for v in self.weights if not v.trainable] if self.trainable else self.weights

    trainable_variables = trainable_weights
    non_trainable_variables = non_trainable_weights

    def get_weights(self) -> list:
        return [v.numpy() for v in self.weights]  # copies

    def set_weights(self, weights):
        own = self.weights
        weights = list(weights)
        if len(weights) != len(own):
            raise ValueError(f"layer '{self.name}' expects {len(own)} weight arrays "
                             f"({[v.path for v in own]}), got {len(weights)}")
        for v, w in zip(own, weights):
            if tuple(w.shape) != tuple(v.shape):
                raise ValueError(f"layer '{self.name}': weight '{v.path}' has shape {v.shape}, "
                                 f"got an array of shape {tuple(w.shape)}")
        for v, w in zip(own, weights):
            v.assign(w)

    def count_params(self) -> int:
        total = 0
        for v in self.weights:
            n = 1
            for d in v.shape:
                n *= d
            total += n
        return total

    # -- losses ---------------------------------------------------------------------------------
    def add_loss(self, loss):
        ctx = current_trace()
        t = convert_to_tensor(loss)
        if ctx is not None:
            from ..tensor import traced_value
            ctx.losses.append(traced_value(ctx, t))
        else:
            self._eager_losses.append(t)

    @property
    def losses(self) -> list:
        """Eager regularization penalties of all weights plus losses added in the last eager call."""
        out = [reg(v) for v, reg in self._regularized]
        out += self._eager_losses
        for layer in self._sublayers:
            out += layer.losses
        return out

    def regularization_items(self) -> list:
        items = list(self._regularized)
        for layer in self._sublayers:
            items += layer.regularization_items()
        return _dedup_pairs(items)

    # -- building -------------------------------------------------------------------------------
    def build(self, input_shape):
        """Create weights from the input shape; the default makes none."""

    def _maybe_build(self, inputs):
        if self.built:
            return
        shapes = map_structure(lambda t: t.shape, inputs)
        self._build_shapes = shapes
        self.build(shapes)
        self.built = True

    def compute_output_shape(self, input_shape):
        """Output shape(s) for an input shape (batch first, may be None), found by a scratch trace."""
        b = GraphBuilder(f"{self.name}_shape")
        ctx = TraceContext(b, training=False)
        x = KTensor(value=b.input("x", TensorType((BATCH,) + tuple(input_shape)[1:])), trace=ctx)
        with tracing(ctx):
            out = self(x)
        return map_structure(lambda t: (input_shape[0],) + tuple(t.shape[1:]), out)

    # -- masking (Keras 3's protocol, frontend/layers/masking.py) --------------------------------
    @property
    def supports_masking(self) -> bool:
        """As Keras 3: set by the layer, else True when the layer overrides compute_mask."""
        flag = self.__dict__.get("_supports_masking")
        return flag if flag is not None else type(self).compute_mask is not Layer.compute_mask

    @supports_masking.setter
    def supports_masking(self, value):
        self.__dict__["_supports_masking"] = bool(value)

    def compute_mask(self, inputs, previous_mask):
        return previous_mask

    # -- calling --------------------------------------------------------------------------------
    def call(self, inputs, *args, **kwargs):
        raise NotImplementedError(f"layer '{self.name}' ({type(self).__name__}) must implement call()")

    def __call__(self, *args, **kwargs):
        if not args and "inputs" in kwargs:
            kwargs = dict(kwargs)
            args = (kwargs.pop("inputs"),)
        tensors = [t for t in flatten((args, kwargs)) if isinstance(t, KTensor)]
        if any(t.is_symbolic for t in tensors):
            return self._call_symbolic(args, kwargs)
        if not args:
            raise TypeError(f"layer '{self.name}' was called without inputs")
        args = (map_structure(_to_tensor, args[0]),) + tuple(args[1:])
        ctx = next((t.trace for t in flatten(args) if isinstance(t, KTensor) and t.is_traced), None)
        ctx = ctx or current_trace()
        kwargs = self._resolve_training(kwargs, ctx)
        if ctx is not None:
            with tracing(ctx), ctx.builder.location(self.name):
                hook = self.__dict__.get("_trace_hook")  # QAT's fake quantization (frontend/qat.py)
                if hook is not None:
                    return hook(self, args, kwargs, ctx)
                return self._call_checked(args, kwargs, ctx)
        self._eager_losses = []
        return self._call_checked(args, kwargs, None)

    def _uses_scope(self) -> bool:
        return True

    def _call_checked(self, args, kwargs, ctx):
        scope = name_scope(self.name) if self._uses_scope() else _NoScope()
        kwargs, previous_mask = masking.fill_mask_arguments(self, args, kwargs)
        try:
            with scope:
                self._maybe_build(args[0])
                outputs = self.call(*args, **kwargs)
                masking.attach_output_masks(self, args[0], outputs, previous_mask)
        except IRError as e:
            shapes = map_structure(lambda t: t.shape, args[0])
            raise ValueError(f"layer '{self.name}' ({type(self).__name__}) cannot take input shape(s) "
                             f"{shapes}: {e}") from None
        self._output_spec = map_structure(lambda t: t.shape if isinstance(t, KTensor) else None, outputs)
        self._output_count = sum(isinstance(t, KTensor) for t in flatten(outputs))
        if self.activity_regularizer is not None:
            for out in flatten(outputs):
                self.add_loss(_activity_penalty(self.activity_regularizer, out))
        return outputs

    def _resolve_training(self, kwargs, ctx) -> dict:
        kwargs = dict(kwargs)
        training = kwargs.pop("training", None)
        if training is None:
            training = ctx.training if ctx is not None else False
        if _accepts(self.call, "training"):
            kwargs["training"] = bool(training)
        return kwargs

    def _call_symbolic(self, args, kwargs):
        """Functional API: infer output types in a scratch trace, record a node, return symbolic outputs."""
        b = GraphBuilder(f"{self.name}_infer")
        ctx = TraceContext(b, training=False, rng_counter=b.input("__rng_counter", TensorType((), i64)))
        counter = itertools.count()

        def to_traced(t):
            if isinstance(t, KTensor) and t.is_symbolic:
                traced = KTensor(value=b.input(f"x{next(counter)}", t.spec), trace=ctx)
                mask = masking.get_mask(t)
                if isinstance(mask, KTensor) and mask.is_symbolic:   # so the scratch call sees the mask too
                    masking.set_mask(traced, KTensor(value=b.input(f"x{next(counter)}", mask.spec), trace=ctx))
                return traced
            return t
        with tracing(ctx):
            outs = self(*map_structure(to_traced, args), **map_structure(to_traced, kwargs))
        node = LayerNode(self, args, kwargs)
        idx = itertools.count()
        node.outputs_struct = map_structure(
            lambda o: KTensor(spec=o.ir_type, history=(node, next(idx))) if isinstance(o, KTensor) else o, outs)
        node.outputs = [o for o in flatten(node.outputs_struct) if isinstance(o, KTensor)]
        self._inbound_nodes.append(node)
        # symbolic masks (recorded as ops on the symbolic inputs) describe what the replay recomputes
        _, previous_mask = masking.fill_mask_arguments(self, args, kwargs)
        masking.attach_output_masks(self, args[0] if args else None, node.outputs_struct, previous_mask)
        return node.outputs_struct

    # -- node accessors (feature extraction) ----------------------------------------------------
    @property
    def input(self):
        return self._node_attr("input")

    @property
    def output(self):
        return self._node_attr("output")

    def _node_attr(self, what):
        if not self._inbound_nodes:
            raise AttributeError(f"layer '{self.name}' has never been called on a symbolic tensor, "
                                 f"so it has no {what}")
        # as Keras 3: the first call's tensors (a Sequential re-calls its layers as it grows)
        node = self._inbound_nodes[0]
        return node.input_struct() if what == "input" else node.outputs_struct

    @property
    def output_shape(self):
        if self._output_spec is None:
            raise AttributeError(f"layer '{self.name}' has not been called yet, so it has no output shape")
        return self._output_spec

    @property
    def input_shape(self):
        if self._build_shapes is None:
            raise AttributeError(f"layer '{self.name}' has not been built yet, so it has no input shape")
        return self._build_shapes

    # -- config ---------------------------------------------------------------------------------
    def get_config(self) -> dict:
        config = {"name": self.name, "trainable": self.trainable, "dtype": self.dtype}
        if self.activity_regularizer is not None:
            config["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        if self._batch_input_shape is not None:
            config["batch_input_shape"] = list(self._batch_input_shape)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        bis = config.pop("batch_input_shape", None)
        layer = cls(**config)
        if bis is not None:
            layer._batch_input_shape = tuple(bis)
        return layer

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


class _NoScope:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def float32_policy(dtype, who: str) -> str:
    """Layers compute in float32 only: refuse another dtype policy (float64, mixed_float16, ...)
    rather than silently compute in float32. Accepts a name, a Keras DTypePolicy config or object."""
    name = dtype
    if isinstance(dtype, dict):
        name = dtype.get("config", {}).get("name", dtype.get("name"))
    elif dtype is not None and not isinstance(dtype, str):
        name = getattr(dtype, "name", None) or np.dtype(dtype).name   # a DTypePolicy or a NumPy dtype
    if name not in (None, "float32"):
        raise NotImplementedError(f"{who}: dtype={name!r} is not supported (kcompile layers compute in float32)")
    return "float32"


def _to_tensor(x):
    if isinstance(x, KTensor) or x is None or isinstance(x, (str, bool)):
        return x
    return convert_to_tensor(x)


def _accepts(fn, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind == p.VAR_KEYWORD for p in params.values())


def _activity_penalty(reg, out):
    """Keras 3: the activity penalty is divided by the batch size."""
    loss = reg(out)
    if out.ndim > 0:
        return ops.divide(loss, batch_size_of(out))
    return loss


def batch_size_of(x) -> KTensor:
    """The run-time size of the leading axis as a float32 scalar (works for the symbolic batch)."""
    lead = x.ir_shape[0]
    if isinstance(lead, int):
        return convert_to_tensor(float(lead))
    flat = ops.reshape(x, (-1,) + (() if x.ndim == 1 else (_prod(x.ir_shape[1:]),)))
    col = flat if x.ndim == 1 else flat[:, 0]
    return ops.sum(ops.add(ops.multiply(ops.cast(col, "float32"), 0.0), 1.0))


def _prod(dims):
    n = 1
    for d in dims:
        n *= d
    return n


def _created_trainable(v) -> bool:
    c = getattr(v, "_created_trainable", None)
    return v.trainable if c is None else c


def _dedup(vs) -> list:
    seen, out = set(), []
    for v in vs:
        if id(v) not in seen:
            seen.add(id(v))
            out.append(v)
    return out


def _dedup_pairs(items) -> list:
    seen, out = set(), []
    for v, r in items:
        if id(v) not in seen:
            seen.add(id(v))
            out.append((v, r))
    return out
