"""The graph of a functional model: nodes in execution order and layers in Keras's depth order."""
from __future__ import annotations

from .layers.input_layer import InputLayer
from .layers.nodes import LayerNode


def producer(t):
    return t._keras_history[0]


def walk_nodes(inputs: list, outputs: list) -> list:
    """Nodes needed to compute `outputs` from `inputs`, in post-order (every node after its inputs)."""
    known = {id(t) for t in inputs}
    order, seen = [], set()

    def visit(node):
        if id(node) in seen:
            return
        seen.add(id(node))
        for t in node.symbolic_inputs():
            if id(t) not in known:
                visit(producer(t))
        if isinstance(node, LayerNode) and isinstance(node.layer, InputLayer):
            raise ValueError(f"the model's outputs depend on input '{node.layer.name}', which is not among "
                             f"the model's inputs {[_tensor_name(t) for t in inputs]}")
        order.append(node)

    for t in outputs:
        if id(t) not in known:
            visit(producer(t))
    return order


def _tensor_name(t):
    node = producer(t)
    return node.name


def layers_in_depth_order(inputs: list, nodes: list) -> list:
    """Keras's model.layers order: by decreasing depth from the outputs, ties by first visit."""
    all_nodes = [producer(t) for t in inputs if isinstance(producer(t), LayerNode)] + nodes
    node_depth, layer_depth = {}, {}
    first_seen = {}
    for node in all_nodes:
        if isinstance(node, LayerNode):
            first_seen.setdefault(id(node.layer), (len(first_seen), node.layer))
    for node in reversed(nodes):
        depth = node_depth.setdefault(id(node), 0)
        if isinstance(node, LayerNode):
            depth = max(depth, layer_depth.get(id(node.layer), 0))
            layer_depth[id(node.layer)] = depth
        node_depth[id(node)] = depth
        for t in node.symbolic_inputs():
            parent = producer(t)
            node_depth[id(parent)] = max(depth + 1, node_depth.get(id(parent), 0))
    for t in inputs:
        node = producer(t)
        if isinstance(node, LayerNode):
            layer_depth[id(node.layer)] = max(layer_depth.get(id(node.layer), 0), node_depth.get(id(node), 0))
    ranked = sorted(first_seen.values(), key=lambda item: (-layer_depth.get(id(item[1]), 0), item[0]))
    return [layer for _, layer in ranked]
