"""Tracing arbitrary layer code into a scan body, whose region is closed (it reads nothing from outside).

RNN(cell) and TimeDistributed run user-provided layers once per step. Their step is traced into a
fresh GraphBuilder under a RegionTrace: every variable the layer reads becomes a body input (a scan
constant) instead of a parameter, and the caller passes the variables themselves, in the order
captured, as the scan's trailing constants.
"""
from __future__ import annotations

from kcompile.ir import GraphBuilder, TensorType

from ..tensor import KTensor, TraceContext


class RegionTrace(TraceContext):
    """A TraceContext whose variable reads become inputs of the body being built (captured constants)."""

    def __init__(self, builder: GraphBuilder, owner: str, training: bool = False):
        super().__init__(builder, training=training)
        self.owner = owner
        self.captured: list = []    # the Variables, in the order of the body's constant inputs

    def param_for(self, variable):
        path = variable.path
        if path in self.params:
            if self.variables[path] is not variable:
                raise ValueError(f"two different variables share the path '{path}'; give their layers unique names")
            return self.params[path]
        value = self.builder.input(f"w{len(self.captured)}", TensorType(variable.shape, variable.ir_type.dtype))
        self.params[path], self.variables[path] = value, variable
        self.captured.append(variable)
        return value

    def counter(self, who: str):
        raise ValueError(f"{who} draws random numbers inside the per-step loop of layer '{self.owner}', which "
                         "kcompile cannot do (the step is compiled once); use the recurrent layer's own "
                         "dropout/recurrent_dropout, or apply the random layer outside the loop")

    def check_closed(self):
        """A step may not update layer state (BatchNormalization's moving statistics) or add losses."""
        if self.state_updates or self.losses:
            what = "updates layer state" if self.state_updates else "adds losses"
            raise ValueError(f"layer '{self.owner}': the layer run at each step {what} "
                             f"({sorted(self.state_updates) or len(self.losses)}), which a scan step cannot do")


def body_input(ctx: RegionTrace, name: str, t: TensorType) -> KTensor:
    return KTensor(value=ctx.builder.input(name, t), trace=ctx)
