"""trace_model: record a model's forward pass into a GraphBuilder; forward_graph: the inference Graph."""
from __future__ import annotations

from dataclasses import dataclass, field

from kcompile.ir import Graph, GraphBuilder, TensorType, Value, i64

from .layers.nodes import flatten
from .tensor import KTensor, TraceContext, traced_value, tracing


@dataclass
class TraceResult:
    outputs: list                                       # Values, in the model's output order
    params: dict = field(default_factory=dict)          # path -> Value of every variable read
    state_updates: dict = field(default_factory=dict)   # path -> new Value (BN moving stats in training)
    losses: list = field(default_factory=list)          # scalar Values: regularization, activity, add_loss
    variables: dict = field(default_factory=dict)       # path -> Variable


def trace_model(model, b: GraphBuilder, inputs: list, training: bool, rng_counter: Value | None = None) -> TraceResult:
    """Emit `model`'s forward pass on input Values into `b`; weights become params named by path."""
    ctx = TraceContext(b, training=training, rng_counter=rng_counter)
    with tracing(ctx):
        tensors = [KTensor(value=v, trace=ctx) for v in inputs]
        outs = model(model.pack_inputs(tensors), training=training)
        for variable, reg in model.regularization_items():
            with b.location(f"{variable.path}/regularizer"):
                ctx.losses.append(traced_value(ctx, _as_tensor(reg(variable))))
        out_values = [traced_value(ctx, _as_tensor(o)) for o in flatten(outs)]
    return TraceResult(out_values, dict(ctx.params), dict(ctx.state_updates), list(ctx.losses),
                       dict(ctx.variables))


def _as_tensor(x):
    from .tensor import convert_to_tensor
    return x if isinstance(x, KTensor) else convert_to_tensor(x)


def forward_graph(model, training: bool = False, state_outputs: bool = False) -> Graph:
    """The model's forward Graph: inputs named as the model's, params = variable paths with current values.

    With training=True the graph has an extra i64 scalar input "__rng_counter" (dropout masks) and
    does not return the state updates (use trace_model for a training step). state_outputs: the
    state updates of an inference call (stateful RNNs) follow the outputs, named "state:<path>".
    """
    b = GraphBuilder(_graph_name(model.name))
    inputs = [b.input(name, spec) for name, spec in model.input_specs()]
    counter = b.input("__rng_counter", TensorType((), i64)) if training else None
    result = trace_model(model, b, inputs, training=training, rng_counter=counter)
    b.meta["model"] = model.name
    extra = sorted(result.state_updates.items()) if state_outputs else []
    graph = b.build(result.outputs + [v for _, v in extra],
                    output_names=list(model.output_names) + [f"state:{path}" for path, _ in extra])
    quantization = getattr(model, "_quantization", None)
    if quantization and not training:
        from .quantization import apply_quantization  # the int8 passes over the traced graph
        graph = apply_quantization(graph, quantization)
    return graph


def _graph_name(name: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name) or "model"
