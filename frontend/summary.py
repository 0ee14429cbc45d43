"""model.summary(): Keras 3's table (same layout, column widths and parameter counts), as plain text."""
from __future__ import annotations

import shutil

from .layers.nodes import LayerNode


def count_params(weights) -> int:
    total = 0
    for v in weights:
        n = 1
        for d in v.shape:
            n *= d
        total += n
    return total


def readable_memory_size(size: float) -> str:
    for unit in ["B", "KB", "MB", "GB", "TB", "PB"]:
        if size / 1024 < 1:
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} PB"


def _memory(weights) -> int:
    return sum(v.numpy().nbytes for v in weights)


# -- the table: rich's layout (fixed-width columns shrunk evenly to fit), drawn in box characters ---
def ratio_reduce(total: int, values: list) -> list:
    """rich's ratio_reduce with equal ratios: take `total` off the columns as evenly as rounding allows."""
    remaining, count, out = total, len(values), []
    for v in values:
        cut = min(v, round(remaining / count))
        out.append(v - cut)
        remaining -= cut
        count -= 1
    return out


def column_widths(line_length: int, positions: list) -> list:
    requested, current = [], 0
    for pos in positions:
        width = int(pos * line_length) - current
        if width < 4:
            raise ValueError("Insufficient console width to print summary.")
        requested.append(width)
        current += width
    cells = [w + 2 for w in requested]             # one space of padding each side
    inner = line_length - (len(cells) + 1)         # minus the vertical borders
    return ratio_reduce(sum(cells) - inner, cells) if sum(cells) > inner else cells


def wrap(text: str, width: int) -> list:
    """Greedy word wrap; words longer than the width are folded."""
    lines, line = [], ""
    for word in text.split(" "):
        while len(word) > width:
            if line:
                lines.append(line)
                line = ""
            lines.append(word[:width])
            word = word[width:]
        candidate = f"{line} {word}" if line else word
        if len(candidate) <= width:
            line = candidate
        else:
            lines.append(line)
            line = word
    lines.append(line)
    return lines


def _render_row(cells: list, widths: list, aligns: list, bar: str) -> list:
    wrapped = [wrap(str(c), w - 2) for c, w in zip(cells, widths)]
    height = max(len(w) for w in wrapped)
    out = []
    for i in range(height):
        parts = []
        for lines, w, align in zip(wrapped, widths, aligns):
            text = lines[i] if i < len(lines) else ""
            text = text.rjust(w - 2) if align == "right" else text.ljust(w - 2)
            parts.append(f" {text} ")
        out.append(bar + bar.join(parts) + bar)
    return out


def _rule(widths, left, mid, right, fill) -> str:
    return left + mid.join(fill * w for w in widths) + right


def render_table(header: list, rows: list, widths: list, aligns: list) -> list:
    lines = [_rule(widths, "┏", "┳", "┓", "━")]
    lines += _render_row(header, widths, aligns, "┃")
    lines.append(_rule(widths, "┡", "╇", "┩", "━"))
    for i, row in enumerate(rows):
        if i:
            lines.append(_rule(widths, "├", "┼", "┤", "─"))
        lines += _render_row(row, widths, aligns, "│")
    lines.append(_rule(widths, "└", "┴", "┘", "─"))
    return lines


# -- model inspection -------------------------------------------------------------------------
def _summary_layers(model):
    from .models import Functional, Sequential
    if isinstance(model, Sequential) or not isinstance(model, Functional):
        return model.layers, True
    return model.layers, _sequential_like(model)


def _sequential_like(model) -> bool:
    consumers: dict = {}
    for node in model._nodes:
        ins = node.symbolic_inputs()
        if len(ins) > 1:
            return False
        for t in ins:
            consumers[id(t)] = consumers.get(id(t), 0) + 1
    if any(c > 1 for c in consumers.values()) or len(model.inputs) > 1 or len(model.outputs) > 1:
        return False
    seen = set()
    for node in model._nodes:
        if isinstance(node, LayerNode):
            if id(node.layer) in seen:
                return False
            seen.add(id(node.layer))
    return True


def format_shape(layer) -> str:
    """Keras's format: "(None, 10)" (a 1-D shape prints "(None)"), several outputs "[(...), (...)]"."""
    spec = getattr(layer, "_output_spec", None)
    if spec is None:
        return "?"
    shapes = [spec] if _is_shape(spec) else [s for s in _shapes_in(spec)]
    text = ["(" + ", ".join(str(d) for d in shape) + ")" for shape in shapes]
    return text[0] if len(text) == 1 else "[" + ", ".join(text) + "]"


def _is_shape(x) -> bool:
    return isinstance(x, tuple) and all(d is None or isinstance(d, int) for d in x)


def _shapes_in(struct) -> list:
    if _is_shape(struct):
        return [struct]
    items = struct.values() if isinstance(struct, dict) else struct
    return [shape for item in items for shape in _shapes_in(item)]


def _connections(layer, model) -> str:
    in_model = {id(n) for n in model._nodes}
    parts = []
    for node in layer._inbound_nodes:
        if id(node) not in in_model:
            continue
        for t in node.symbolic_inputs():
            parent, index = t._keras_history
            if isinstance(parent, LayerNode):
                node_index = next(i for i, n in enumerate(parent.layer._inbound_nodes) if n is parent)
                parts.append(f"{parent.layer.name}[{node_index}][{index}]")
            else:
                parts.append(f"{parent.name}[0][{index}]")
    return ", ".join(parts) or "-"


def _params(layer) -> str:
    if not layer.built:
        return "0 (unbuilt)"
    return f"{layer.count_params():,}"


def summary_lines(model, line_length=None, positions=None) -> list:
    layers, sequential_like = _summary_layers(model)
    if sequential_like:
        default, positions = 88, positions or [0.45, 0.80, 1.0]
        header, aligns = ["Layer (type)", "Output Shape", "Param #"], ["left", "left", "right"]
    else:
        default, positions = 108, positions or [0.3, 0.56, 0.74, 1.0]
        header = ["Layer (type)", "Output Shape", "Param #", "Connected to"]
        aligns = ["left", "left", "right", "left"]
    line_length = line_length or min(default, shutil.get_terminal_size().columns - 4)
    widths = column_widths(line_length, positions)
    rows = []
    for layer in layers:
        row = [f"{layer.name} ({type(layer).__name__})", format_shape(layer), _params(layer)]
        if not sequential_like:
            row.append(_connections(layer, model))
        rows.append(row)
    trainable, frozen = model.trainable_weights, model.non_trainable_weights
    t_count, n_count = count_params(trainable), count_params(frozen)
    t_mem, n_mem = _memory(trainable), _memory(frozen)
    o_count, o_mem = optimizer_params(model)
    lines = [f'Model: "{model.name}"'] + render_table(header, rows, widths, aligns) + [
        f" Total params: {t_count + n_count + o_count:,} ({readable_memory_size(t_mem + n_mem + o_mem)})",
        f" Trainable params: {t_count:,} ({readable_memory_size(t_mem)})",
        f" Non-trainable params: {n_count:,} ({readable_memory_size(n_mem)})",
    ]
    if o_count:
        lines.append(f" Optimizer params: {o_count:,} ({readable_memory_size(o_mem)})")
    return lines


def optimizer_params(model) -> tuple:
    """(count, bytes) of a built optimizer's state as Keras counts it: slots, the int32 iteration
    counter and, unless it is a schedule, the float32 learning rate; (0, 0) before training."""
    opt = getattr(model, "optimizer", None)
    slots = getattr(opt, "slots", None)
    if not slots:
        return 0, 0
    arrays = [a for per_var in slots.values() for a in per_var.values()]
    count = sum(int(a.size) for a in arrays) + 1
    nbytes = sum(int(a.nbytes) for a in arrays) + 4
    if not callable(getattr(opt, "_learning_rate", None)):
        count, nbytes = count + 1, nbytes + 4
    return count, nbytes


def print_summary(model, line_length=None, positions=None, print_fn=None):
    lines = summary_lines(model, line_length, positions)
    if print_fn is None:
        print("\n".join(lines))
    else:
        print_fn("\n".join(lines))
