"""ONNX form of scan: an ONNX Scan whose body is the region; constants are read from the outer scope."""
from __future__ import annotations

from . import onnx_op


@onnx_op("scan")
def _scan(ctx, node, ins, outs):
    from ..onnx_export import subgraph  # (the exporter imports this table)
    body, nc, nx, axis = node.attrs["body"], node.attrs["num_carries"], node.attrs["num_xs"], node.attrs["axis"]
    ny = len(outs) - nc
    direction = int(node.attrs["reverse"])  # reversed input order; ys prepended, so y_t lands at t
    captured = dict(zip(body.inputs[nc + nx:], ins[nc + nx:]))
    per_y = {"scan_output_axes": [axis] * ny, "scan_output_directions": [direction] * ny} if ny else {}
    ctx.emit("Scan", ins[:nc + nx], outs=outs, body=subgraph(ctx, body, captured), num_scan_inputs=nx,
             scan_input_axes=[axis] * nx, scan_input_directions=[direction] * nx, **per_y)
