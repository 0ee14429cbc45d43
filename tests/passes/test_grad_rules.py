"""Every gradient rule against central finite differences (float64, odd sizes, broadcasting, batch N)."""
import pytest

from kcompile.ir import OPS, GraphBuilder, TensorType
from kcompile.passes import GRADIENT_RULES
from kc_gradcheck import check_op, check_op_second_order

N = "N"
POSITIVE = {"log", "sqrt", "rsqrt", "reciprocal", "log1p"}
UNARY = ["neg", "abs", "sign", "exp", "log", "sqrt", "rsqrt", "square", "reciprocal", "tanh", "sigmoid", "relu",
         "erf", "softplus", "floor", "ceil", "round", "sin", "cos", "log1p", "expm1"]
BROADCASTS = [[((3, 1, 5), "f"), ((4, 5), "f")], [((N, 5), "f"), ((5,), "f")], [((), "f"), ((2, 3), "f")]]


def _binary_cases():
    for op in ["add", "sub", "mul", "div", "maximum", "minimum", "pow"]:
        for shapes in BROADCASTS:
            kinds = {"div": ("f", "pos"), "pow": ("pos", "f")}.get(op, ("f", "f"))
            yield op, [(s, k) for (s, _), k in zip(shapes, kinds)], {}


def _conv_cases():
    x, w = ((N, 5, 6, 2), "f"), ((3, 2, 2, 3), "f")
    yield "conv2d", [x, w], {}
    yield "conv2d", [x, w], {"strides": (2, 2), "padding": "same"}
    yield "conv2d", [x, w], {"dilations": (2, 1), "padding": "same"}
    yield "conv2d", [((N, 4, 5, 4), "f"), ((2, 2, 2, 4), "f")], {"groups": 2, "strides": (1, 2)}
    yield "conv2d_input_grad", [((N, 3, 5, 3), "f"), w], {"input_shape": (N, 5, 6, 2)}
    yield "conv2d_input_grad", [((N, 3, 3, 3), "f"), w], {"input_shape": (N, 5, 6, 2), "strides": (2, 2),
                                                          "padding": "same"}
    grouped = {"groups": 2, "strides": (1, 2)}
    yield "conv2d_input_grad", [((N, 3, 2, 4), "f"), ((2, 2, 2, 4), "f")], {"input_shape": (N, 4, 5, 4), **grouped}
    yield "conv2d_filter_grad", [((N, 4, 5, 4), "f"), ((N, 3, 2, 4), "f")], {"filter_shape": (2, 2, 2, 4), **grouped}
    yield "conv2d_filter_grad", [x, ((N, 3, 5, 3), "f")], {"filter_shape": (3, 2, 2, 3)}
    yield "conv2d_filter_grad", [x, ((N, 5, 3, 3), "f")], {"filter_shape": (3, 2, 2, 3), "strides": (1, 2),
                                                           "padding": "same"}
    yield "conv1d", [((N, 7, 2), "f"), ((3, 2, 3), "f")], {}
    yield "conv1d", [((N, 7, 2), "f"), ((3, 2, 3), "f")], {"strides": 2, "padding": "same"}
    yield "conv1d", [((N, 7, 2), "f"), ((3, 2, 3), "f")], {"dilations": 2, "padding": "causal"}
    yield "conv1d", [((N, 6, 4), "f"), ((2, 2, 4), "f")], {"groups": 2, "padding": "causal"}


def _pool_cases():
    for op in ["max_pool2d", "avg_pool2d"]:
        yield op, [((N, 5, 5, 2), "f")], {"pool_size": (2, 2), "strides": (2, 2)}
        yield op, [((N, 5, 4, 2), "f")], {"pool_size": (3, 2), "strides": (2, 1), "padding": "same"}
    for op in ["max_pool1d", "avg_pool1d"]:
        yield op, [((N, 7, 2), "f")], {"pool_size": (2,), "strides": (2,)}
        yield op, [((N, 7, 2), "f")], {"pool_size": (3,), "strides": (2,), "padding": "same"}
    yield "max_pool2d_grad", [((N, 5, 5, 2), "f"), ((N, 2, 2, 2), "f")], {"pool_size": (2, 2), "strides": (2, 2)}
    yield "max_pool2d_grad", [((N, 5, 4, 2), "f"), ((N, 3, 4, 2), "f")], {"pool_size": (3, 2), "strides": (2, 1),
                                                                         "padding": "same"}
    yield "avg_pool2d_grad", [((N, 3, 4, 2), "f")], {"pool_size": (3, 2), "strides": (2, 1), "padding": "same",
                                                     "input_shape": (N, 5, 4, 2)}


def _layout_cases():
    yield "transpose", [((2, 3, 4), "f")], {"perm": (2, 0, 1)}
    yield "transpose", [((N, 3, 4), "f")], {"perm": (0, 2, 1)}
    yield "reshape", [((N, 6), "f")], {"shape": (N, 2, 3)}
    yield "reshape", [((2, 3, 4), "f")], {"shape": (4, -1)}
    yield "broadcast_to", [((3, 1), "f")], {"shape": (2, 3, 4)}
    yield "broadcast_to", [((4,), "f")], {"shape": (N, 4)}
    yield "expand_dims", [((N, 3), "f")], {"axes": (1, -1)}
    yield "squeeze", [((3, 1, 4, 1), "f")], {"axes": (1, 3)}
    yield "concat", [((2, 3), "f"), ((2, 1), "f"), ((2, 4), "f")], {"axis": 1}
    yield "concat", [((N, 2), "f"), ((N, 3), "f")], {"axis": -1}
    yield "split", [((5, 4), "f")], {"axis": 0, "sections": (2, 0, 3)}
    yield "split", [((N, 3), "f")], {"axis": 1, "sections": (3,)}
    yield "slice", [((7, 6), "f")], {"axes": (0, 1), "starts": (1, -5), "ends": (6, 100), "steps": (2, 1)}
    yield "slice", [((10,), "f")], {"axes": (0,), "starts": (1,), "ends": (9,), "steps": (3,)}
    yield "slice", [((N, 7), "f")], {"axes": (1,), "starts": (2,), "ends": (5,)}
    yield "pad", [((N, 3, 2), "f")], {"pads": (0, 0, 1, 2, 0, 1), "value": 1.5}
    yield "gather", [((5, 3), "f"), ((2, 4), "int5")], {"axis": 0}
    yield "gather", [((N, 5), "f"), ((4,), "int5")], {"axis": 1}
    yield "gather", [((6, 2), "f"), ((N, 4), "int6")], {"axis": 0}  # an embedding lookup
    yield "gather", [((4, 6, 2), "f"), ((3,), "int6")], {"axis": 1}
    yield "scatter_add", [((4,), "int5"), ((4, 3), "f")], {"shape": (5, 3), "axis": 0}
    yield "scatter_add", [((3,), "int5"), ((N, 3), "f")], {"shape": (N, 5), "axis": 1}


def _other_cases():
    for op in UNARY:
        yield op, [((N, 5), "pos" if op in POSITIVE else "f")], {}
    yield from _binary_cases()
    yield "where", [((3, 1), "bool"), ((3, 4), "f"), ((4,), "f")], {}
    yield "cast", [((N, 3), "f")], {"dtype": "f64"}
    yield "cross_process_sum", [((N, 3), "f")], {}   # one process: the identity
    for op in ["reduce_sum", "reduce_mean", "reduce_max", "reduce_min"]:
        for axes, keep in [((), False), ((1,), True), ((0, 2), False), ((-1,), False), ((0,), True)]:
            yield op, [((N, 4, 3), "f")], {"axes": axes, "keepdims": keep}
    for ta in (False, True):
        for tb in (False, True):
            a, c = ((4, 3) if ta else (3, 4)), ((5, 4) if tb else (4, 5))
            yield "matmul", [(a, "f"), (c, "f")], {"transpose_a": ta, "transpose_b": tb}
    yield "matmul", [((2, 3, 4), "f"), ((4, 5), "f")], {}
    yield "matmul", [((1, 3, 4), "f"), ((2, 5, 4), "f")], {"transpose_b": True}
    yield "matmul", [((N, 3), "f"), ((3, 2), "f")], {}
    yield "matmul", [((N, 2, 3), "f"), ((N, 3, 2), "f")], {}
    yield "matmul", [((N, 4), "f"), ((4, 3), "f")], {"transpose_a": False}
    yield "softmax", [((3, 5), "f")], {}
    yield "softmax", [((N, 4, 3), "f")], {"axis": 1}
    yield "log_softmax", [((3, 5), "f")], {}
    yield "log_softmax", [((N, 4, 3), "f")], {"axis": 1}


def _rnn_cell():
    b = GraphBuilder("cell")
    h, x = b.input("h", TensorType([N, 3], "f64")), b.input("x", TensorType([N, 2], "f64"))
    w, u = b.input("w", TensorType([2, 3], "f64")), b.input("u", TensorType([3, 3], "f64"))
    h_new = b.tanh(b.add(b.matmul(x, w), b.matmul(h, u)))
    return b.build([h_new, b.mul(h_new, h_new)], ["h", "y"])


def _two_carries():
    b = GraphBuilder("pair")
    a, c, x = (b.input(n, TensorType([3], "f64")) for n in "acx")
    a_new, c_new = b.add(b.mul(a, x), c), b.add(b.sin(c), x)
    return b.build([a_new, c_new, b.mul(a_new, c_new), a_new], ["a", "c", "y0", "y1"])


def _scan_cases():
    rnn = [((N, 3), "f"), ((N, 4, 2), "f"), ((2, 3), "f"), ((3, 3), "f")]
    yield "scan", rnn, {"body": _rnn_cell(), "num_carries": 1, "axis": 1}
    yield "scan", rnn, {"body": _rnn_cell(), "num_carries": 1, "axis": 1, "reverse": True}
    yield "scan", [((3,), "f"), ((3,), "f"), ((5, 3), "f")], {"body": _two_carries(), "num_carries": 2}
    yield "scan", [((3,), "f"), ((3,), "f"), ((5, 3), "f")], {"body": _two_carries(), "num_carries": 2, "reverse": True}


def _along_axis_cases():
    yield "cumsum", [((N, 5), "f")], {"axis": 1}
    yield "cumsum", [((3, 4, 2), "f")], {"axis": 0, "reverse": True}
    yield "top_k", [((N, 7), "f")], {"k": 3}
    yield "top_k", [((2, 3, 5), "f")], {"k": 5}


CASES = list(_along_axis_cases()) + list(_other_cases()) + list(_layout_cases()) + list(_conv_cases()) + list(_pool_cases()) + list(_scan_cases())


def _image_cases():   # resize is linear in x: its VJP is the transposed resampling
    yield "resize", [((N, 4, 5, 2), "f")], {"size": (7, 3)}
    yield "resize", [((2, 5, 3, 1), "f")], {"size": (2, 6), "interpolation": "nearest"}


CASES += list(_image_cases())


def _case_id(case):
    op, specs, attrs = case
    return f"{op}-{'x'.join(str(list(s)) for s, _ in specs)}-{attrs}".replace(" ", "")


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_vjp_matches_finite_differences(case):
    op, specs, attrs = case
    check_op(op, specs, attrs)


# Straight-through estimators are a definition, not a derivative (the op is a step function): their
# rules are checked against that definition, and by finite differences where defined, in the named tests.
STRAIGHT_THROUGH = {"fake_quantize": "tests/quantization/test_fake_quantize.py"}
# Zero by definition (finite differences would see the identity): checked in the named test.
DEFINED_ZERO = {"stop_gradient": "tests/passes/test_stop_gradient.py"}


def test_every_differentiable_op_has_a_rule_and_a_case():
    differentiable = {name for name, op in OPS.items() if op.differentiable}
    assert differentiable - set(GRADIENT_RULES) == set(), "differentiable ops without a gradient rule"
    assert set(GRADIENT_RULES) - differentiable == set(), "gradient rules for non-differentiable ops"
    missing = differentiable - {c[0] for c in CASES} - set(STRAIGHT_THROUGH) - set(DEFINED_ZERO)
    assert missing == set(), "gradient rules without a finite-difference case"


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_vjp_of_vjp_matches_finite_differences(case):
    """Every backward graph is differentiable again (and right): a Hessian-vector product per case."""
    op, specs, attrs = case
    check_op_second_order(op, specs, attrs)
