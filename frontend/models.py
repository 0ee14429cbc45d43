"""Models: Model (functional or subclassed), Sequential; they inherit the trainer (compile/fit/...)."""
from __future__ import annotations

from kcompile.ir import BATCH, TensorType

from . import state_version
from .functional import layers_in_depth_order, producer, walk_nodes
from .layers.base import Layer
from .layers.input_layer import InputLayer
from .layers.nodes import LayerNode, flatten, map_structure
from .tensor import KTensor, convert_to_tensor
from .training.trainer import TrainerMixin


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Load a model saved with `model.save(filepath)` (see frontend/saving.py for the format)."""
    from .saving import load_model as _load
    return _load(filepath, custom_objects=custom_objects, compile=compile, safe_mode=safe_mode)


def clone_model(model, input_tensors=None):
    """A new model with the same architecture (and new, freshly initialized weights), as Keras."""
    from .config_tree import deserialize_layer, serialize_layer
    if input_tensors is not None:
        raise NotImplementedError("clone_model(input_tensors=...) is not supported")
    return deserialize_layer(serialize_layer(model), {})


def model_from_json(json_string, custom_objects=None):
    import json
    from .config_tree import deserialize_layer
    return deserialize_layer(json.loads(json_string), custom_objects or {})


class Model(TrainerMixin, Layer):
    """`Model(inputs, outputs)` builds a functional model; subclass it and define `call` otherwise."""

    def __new__(cls, *args, **kwargs):
        functional_args = len(args) >= 2 or "inputs" in kwargs or "outputs" in kwargs
        if cls is Model and functional_args:
            return object.__new__(Functional)
        if functional_args and not issubclass(cls, Functional):
            return object.__new__(_functional_subclass(cls))  # class CustomModel(Model); CustomModel(inputs, outputs)
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        if args:
            raise TypeError(f"{type(self).__name__}: a subclassed Model takes keyword arguments only; "
                            "pass inputs and outputs to build a functional model")
        Layer.__init__(self, name=kwargs.pop("name", None), trainable=kwargs.pop("trainable", True),
                       dtype=kwargs.pop("dtype", None))
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected keyword argument(s) {sorted(kwargs)}")
        self._input_specs = None
        _init_trainer(self)

    # -- building (subclassed models build their sublayers on the first call) ------------------
    def _maybe_build(self, inputs):
        if self._input_specs is None:
            # a dict of inputs (the book's subclassed multi-input models) keeps its keys as input names
            self._input_keys = list(inputs) if isinstance(inputs, dict) else None
            names = self._input_keys or [f"input_{i}" for i in range(len(flatten(inputs)))]
            self._input_specs = [(n, TensorType((BATCH,) + tuple(t.ir_shape[1:]), t.ir_type.dtype))
                                 for n, t in zip(names, flatten(inputs))]
            self._build_shapes = map_structure(lambda t: t.shape, inputs)
        self.built = True

    def pack_inputs(self, tensors: list):
        """The structure `call` takes, from tensors in input_specs() order: one, a list, or a dict."""
        keys = getattr(self, "_input_keys", None)
        if keys:
            return dict(zip(keys, tensors))
        return tensors[0] if len(tensors) == 1 else list(tensors)

    def build(self, input_shape):
        """Build by calling the model on a symbolic input of this shape (batch dimension first)."""
        from .layers.input_layer import Input
        if isinstance(input_shape, list) and input_shape and isinstance(input_shape[0], (list, tuple)):
            self([Input(shape=tuple(s)[1:]) for s in input_shape])
        else:
            self(Input(shape=tuple(input_shape)[1:]))

    def input_specs(self) -> list:
        """[(input name, TensorType with batch symbol N)] of the model's inputs."""
        if self._input_specs is None:
            raise ValueError(f"model '{self.name}' has not been built: call it on data, call "
                             "model.build(input_shape), or give the first layer an input_shape")
        return list(self._input_specs)

    @property
    def input_names(self) -> list:
        return [n for n, _ in self.input_specs()]

    @property
    def output_names(self) -> list:
        n = getattr(self, "_output_count", 1)
        return [f"output_{i}" for i in range(n)]

    @property
    def inputs(self):
        return None

    @property
    def outputs(self):
        return None

    # -- conveniences --------------------------------------------------------------------------
    def get_layer(self, name=None, index=None):
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"model '{self.name}' has no layer named {name!r}; layers: "
                         f"{[layer.name for layer in self.layers]}")

    def forward_graph(self, training: bool = False):
        from .trace import forward_graph
        return forward_graph(self, training=training)

    def quantize(self, mode=None, config=None, filters=None, **kwargs):
        """Keras 3's in-place quantization: mode "int8" (see frontend/quantization.py)."""
        from .quantization import quantize_in_place
        quantize_in_place(self, mode, config=config, filters=filters, **kwargs)

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False,
                show_trainable=False, layer_range=None):
        from .summary import print_summary
        print_summary(self, line_length=line_length, positions=positions, print_fn=print_fn)

    def save(self, filepath, overwrite=True, format="kcompile", **kwargs):
        """format="kcompile" (any model) or "keras" (Keras 3's .keras layout, for the layers both support)."""
        from .saving import save_model
        save_model(self, filepath, overwrite=overwrite, format=format)

    def save_weights(self, filepath, overwrite=True, format="kcompile"):
        from .saving import save_weights
        save_weights(self, filepath, overwrite=overwrite, format=format)

    def load_weights(self, filepath, skip_mismatch=False):
        from .saving import load_weights
        load_weights(self, filepath)

    def export(self, filepath, format="onnx", verbose=True, input_signature=None, **kwargs):
        """Export the inference graph: format="onnx" writes an ONNX model (batch dimension left free)."""
        if format != "onnx":
            raise ValueError(f"model.export: format {format!r} is not supported; kcompile exports 'onnx' "
                             "(and compiles native artifacts with the kcompile CLI)")
        if input_signature is not None:
            raise ValueError("model.export: input_signature is not supported; the model's inputs are used")
        from kcompile.compiler.onnx_export import export_onnx
        export_onnx(self.forward_graph(), filepath)
        if verbose:
            print(f"Saved artifact at '{filepath}'.")

    def to_json(self, **kwargs) -> str:
        import json
        from .saving import model_config
        return json.dumps(model_config(self), **kwargs)

    def _uses_scope(self) -> bool:
        return True

    @classmethod
    def from_config(cls, config, custom_objects=None):
        if cls is Model and "nodes" in config:   # a functional model's config
            return Functional.from_config(config, custom_objects)
        return super().from_config(config)


_FUNCTIONAL_SUBCLASSES: dict = {}


def _functional_subclass(cls):
    """A Model subclass built with (inputs, outputs) is functional, keeping its overrides (Keras does the same)."""
    if cls not in _FUNCTIONAL_SUBCLASSES:
        _FUNCTIONAL_SUBCLASSES[cls] = type(cls.__name__, (cls, Functional), {"__module__": cls.__module__})
    return _FUNCTIONAL_SUBCLASSES[cls]


def _init_trainer(model):
    init = TrainerMixin.__dict__.get("__init__")
    if init is not None:
        init(model)


class Functional(Model):
    """A model defined by the graph of layer calls between symbolic inputs and outputs."""

    def __init__(self, inputs, outputs, name=None, trainable=True, **kwargs):
        Layer.__init__(self, name=name or _functional_name(), trainable=trainable)
        if kwargs:
            raise TypeError(f"Model: unexpected keyword argument(s) {sorted(kwargs)}")
        self._inputs_struct = inputs
        self._outputs_struct = outputs
        self._input_tensors = _symbolic_list(inputs, "inputs")
        self._output_tensors = _symbolic_list(outputs, "outputs")
        self._nodes = walk_nodes(self._input_tensors, self._output_tensors)
        object.__setattr__(self, "_sublayers", layers_in_depth_order(self._input_tensors, self._nodes))
        self._input_specs = [(name, t.spec) for name, t in zip(self._input_names(), self._input_tensors)]
        self._output_spec = map_structure(lambda t: t.shape, outputs)
        self._build_shapes = map_structure(lambda t: t.shape, inputs)
        self.built = True
        _init_trainer(self)

    def _input_names(self) -> list:
        names = []
        for i, t in enumerate(self._input_tensors):
            node = producer(t)
            is_input = isinstance(node, LayerNode) and isinstance(node.layer, InputLayer)
            names.append(node.layer.name if is_input else f"input_{i}")
        return names

    @property
    def inputs(self) -> list:
        return list(self._input_tensors)

    @property
    def outputs(self) -> list:
        return list(self._output_tensors)

    @property
    def input(self):
        return self._inputs_struct

    @property
    def output(self):
        return self._outputs_struct

    @property
    def input_shape(self):
        shapes = [t.shape for t in self._input_tensors]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def output_shape(self):
        shapes = [t.shape for t in self._output_tensors]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def output_names(self) -> list:
        names = []
        for t in self._output_tensors:
            base = producer(t).name
            name, k = base, 1
            while name in names:
                name, k = f"{base}_{k}", k + 1
            names.append(name)
        return names

    def _maybe_build(self, inputs):
        return None

    def _uses_scope(self) -> bool:
        return False

    def call(self, inputs, training=None):
        env = {id(sym): t for sym, t in zip(self._input_tensors, self._match_inputs(inputs))}
        lookup = env.__getitem__
        for node in self._nodes:
            outs = node.replay(lambda t: lookup(id(t)), training)
            for sym, out in zip(node.outputs, outs):
                env[id(sym)] = out
        return map_structure(lambda t: env[id(t)], self._outputs_struct)

    def _match_inputs(self, inputs) -> list:
        if isinstance(inputs, dict):
            names = self._input_names()
            missing = [n for n in names if n not in inputs]
            if missing:
                raise ValueError(f"model '{self.name}': missing inputs {missing} (got {sorted(inputs)})")
            flat = [inputs[n] for n in names]
        else:
            flat = flatten(inputs)
        if len(flat) != len(self._input_tensors):
            raise ValueError(f"model '{self.name}' expects {len(self._input_tensors)} input(s) "
                             f"{[t.shape for t in self._input_tensors]}, got {len(flat)}")
        out = []
        for sym, t in zip(self._input_tensors, flat):
            t = t if isinstance(t, KTensor) else convert_to_tensor(t)
            if t.ndim != sym.ndim or any(w is not None and g != w for g, w in zip(t.shape[1:], sym.shape[1:])):
                raise ValueError(f"model '{self.name}': input '{producer(sym).name}' expects shape {sym.shape}, "
                                 f"got {t.shape}")
            if t.is_eager and t.ir_type.dtype != sym.spec.dtype:
                t = convert_to_tensor(t, sym.spec.dtype)   # as Keras: data takes the Input's dtype
            out.append(t)
        return out

    def get_config(self) -> dict:
        from .config_tree import functional_config
        return functional_config(self)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from .config_tree import functional_from_config
        return functional_from_config(config, custom_objects or {})


def _functional_name() -> str:
    from .layers.base import unique_name
    return unique_name("functional")


def _symbolic_list(struct, what) -> list:
    flat = flatten(struct)
    for t in flat:
        if not (isinstance(t, KTensor) and t.is_symbolic):
            raise TypeError(f"Model {what} must be symbolic tensors (from kc.Input and layer calls), "
                            f"got {type(t).__name__}")
    return flat


class Sequential(Model):
    """A linear stack of layers; built at once when the input shape is known, else on first call."""

    def __init__(self, layers=None, trainable=True, name=None):
        Model.__init__(self, name=name, trainable=trainable)
        self._input_layer = None
        self._functional = None
        for layer in layers or []:
            self.add(layer)

    def add(self, layer, rebuild=True):
        if isinstance(layer, KTensor) and layer.is_symbolic and isinstance(producer(layer), LayerNode):
            layer = producer(layer).layer
        if isinstance(layer, InputLayer):
            if self._sublayers or self._input_layer is not None:
                raise ValueError(f"Sequential '{self.name}': an Input can only be the first layer")
            self._input_layer = layer
            self._start(layer)
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential '{self.name}' can only add layers, got {type(layer).__name__}")
        self._sublayers.append(layer)
        state_version.bump()
        if self._functional is not None:
            self._extend(layer)
        elif len(self._sublayers) == 1 and layer._batch_input_shape is not None:
            shape = layer._batch_input_shape
            self._input_layer = InputLayer(shape=shape[1:], batch_size=shape[0])
            self._start(self._input_layer)

    def pop(self):
        if not self._sublayers:
            raise TypeError(f"Sequential '{self.name}' has no layers to pop")
        layer = self._sublayers.pop()
        state_version.bump()
        if self._input_layer is not None:
            self._start(self._input_layer)
        return layer

    def _start(self, input_layer):
        x = input_layer.output
        self._functional = Functional(x, x, name=self.name)
        for layer in self._sublayers:
            self._extend(layer)

    def _extend(self, layer):
        f = self._functional
        try:
            out = layer(f.output)
        except ValueError as e:
            self._sublayers.remove(layer)
            raise ValueError(f"Sequential '{self.name}': cannot add layer '{layer.name}': {e}") from None
        if isinstance(out, (list, tuple)):
            raise ValueError(f"Sequential '{self.name}': layer '{layer.name}' returns several outputs; "
                             "use the functional API")
        self._functional = Functional(f.input, out, name=self.name)
        self._input_specs = self._functional._input_specs
        self._output_spec = self._functional._output_spec
        self.built = True

    def _maybe_build(self, inputs):
        if self._functional is None:
            t = flatten(inputs)[0]
            self._input_layer = InputLayer(shape=tuple(t.ir_shape[1:]), dtype=t.ir_type.dtype)
            self._start(self._input_layer)
        self._build_shapes = map_structure(lambda t: t.shape, inputs)

    def build(self, input_shape=None):
        if self._functional is None:
            if input_shape is None:
                raise ValueError(f"Sequential '{self.name}'.build needs an input_shape")
            self._input_layer = InputLayer(shape=tuple(input_shape)[1:])
            self._start(self._input_layer)

    def call(self, inputs, training=None):
        return self._functional.call(inputs, training=training)

    def _uses_scope(self) -> bool:
        return False

    def _require_built(self):
        if self._functional is None:
            raise ValueError(f"Sequential model '{self.name}' has not been built yet: give the first layer an "
                             "input_shape, add a kc.Input, or call the model on data")
        return self._functional

    @property
    def inputs(self):
        return self._require_built().inputs

    @property
    def outputs(self):
        return self._require_built().outputs

    @property
    def input(self):
        return self._require_built().input

    @property
    def output(self):
        return self._require_built().output

    @property
    def input_shape(self):
        return self._require_built().input_shape

    @property
    def output_shape(self):
        return self._require_built().output_shape

    @property
    def output_names(self) -> list:
        return self._require_built().output_names

    def input_specs(self) -> list:
        return self._require_built().input_specs()

    def get_config(self) -> dict:
        from .config_tree import sequential_config
        return sequential_config(self)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from .config_tree import sequential_from_config
        return sequential_from_config(config, custom_objects or {})
