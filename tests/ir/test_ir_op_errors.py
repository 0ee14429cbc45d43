"""Bad attributes, arity, dtypes and shapes: a clear error naming the node, the op and the types."""
import pytest

from kcompile.ir import GraphBuilder, IRError, ShapeError

from ir_util import ty

ATTRIBUTE_ERRORS = [  # (op, operand types, attributes, message fragments)
    ("relu", ["f32[3]"], {"alpha": 0.1}, ["has no attribute(s) ['alpha']"]),
    ("conv2d", ["f32[1,5,5,1]", "f32[3,3,1,1]"], {"pad": "same"}, ["no attribute(s) ['pad']", "padding"]),
    ("softmax", ["f32[3]"], {"axis": 1.5}, ["attribute 'axis' expects int", "1.5"]),
    ("argmax", ["f32[3]"], {"axis": True}, ["attribute 'axis' expects int"]),
    ("matmul", ["f32[2,2]", "f32[2,2]"], {"transpose_a": 1}, ["attribute 'transpose_a' expects bool"]),
    ("pad", ["f32[2]"], {"pads": [1, 1], "value": "zero"}, ["attribute 'value' expects float"]),
    ("reduce_sum", ["f32[2]"], {"axes": [0.5]}, ["attribute 'axes' expects ints"]),
    ("reshape", ["f32[4]"], {"shape": [2, "2x"]}, ["attribute 'shape' expects shape"]),
    ("cast", ["f32[2]"], {"dtype": "f16"}, ["attribute 'dtype' expects dtype", "f16"]),
    ("constant", [], {"value": [1 + 2j]}, ["attribute 'value' expects array"]),
    ("conv2d", ["f32[1,5,5,1]", "f32[3,3,1,1]"], {"padding": "full"}, ["'padding' must be one of", "'full'"]),
    ("conv1d", ["f32[1,5,1]", "f32[3,1,1]"], {"padding": "reflect"}, ["must be one of ['valid', 'same', 'causal']"]),
    ("reshape", ["f32[4]"], {}, ["requires attribute 'shape'"]),
    ("cast", ["f32[4]"], {}, ["requires attribute 'dtype'"]),
    ("split", ["f32[4]"], {"axis": 0}, ["requires attribute 'sections'"]),
]

ARITY_ERRORS = [
    ("add", ["f32[3]"], {}, ["takes 2 input(s) (a, b), got 1"]),
    ("relu", ["f32[3]", "f32[3]"], {}, ["takes 1 input(s)", "got 2"]),
    ("where", ["bool[3]", "f32[3]"], {}, ["takes 3 input(s)"]),
    ("concat", [], {}, ["takes at least 1 input(s)", "got 0"]),
    ("constant", ["f32[3]"], {"value": [1.0]}, ["takes 0 input(s)"]),
]

DTYPE_ERRORS = [
    ("exp", ["i32[3]"], {}, ["floating-point", "i32[3]"]),
    ("add", ["f32[3]", "f64[3]"], {}, ["share one dtype", "f32[3]", "f64[3]"]),
    ("logical_and", ["f32[3]", "f32[3]"], {}, ["bool", "f32[3]"]),
    ("logical_not", ["i8[3]"], {}, ["bool", "i8[3]"]),
    ("less", ["bool[3]", "bool[3]"], {}, ["numeric", "bool[3]"]),
    ("where", ["f32[3]", "f32[3]", "f32[3]"], {}, ["condition must be bool", "f32[3]"]),
    ("where", ["bool[3]", "f32[3]", "i32[3]"], {}, ["share one dtype", "i32[3]"]),
    ("gather", ["f32[5,2]", "f32[3]"], {}, ["indices must be an integer tensor", "f32[3]"]),
    ("one_hot", ["f32[3]"], {"depth": 2}, ["integer tensor", "f32[3]"]),
    ("random_uniform_like", ["f32[3]", "i32[]"], {}, ["counter must be an i64 scalar", "i32[]"]),
    ("random_uniform_like", ["f32[3]", "i64[1]"], {}, ["i64 scalar", "i64[1]"]),
    ("conv2d", ["i32[1,5,5,1]", "i32[3,3,1,1]"], {}, ["floating-point", "i32[1,5,5,1]"]),
    ("max_pool2d", ["i32[1,4,4,1]"], {"pool_size": [2, 2], "strides": [2, 2]}, ["float", "i32[1,4,4,1]"]),
    ("matmul", ["bool[2,2]", "bool[2,2]"], {}, ["numeric", "bool[2,2]"]),
    ("reduce_sum", ["bool[3]"], {}, ["numeric", "bool[3]"]),
    ("softmax", ["i64[3]"], {}, ["floating-point", "i64[3]"]),
    ("quantize", ["f64[3]", "f32[]", "i8[]"], {}, ["x must be f32, got f64"]),
    ("quantize", ["f32[3]", "f32[]", "i32[]"], {}, ["zero_point must be i8 or u8, got i32"]),
    ("quantize", ["f32[3]", "f64[]", "u8[]"], {}, ["scale must be f32, got f64"]),
    ("dequantize", ["f32[3]", "f32[]", "f32[]"], {}, ["q must be i8 or u8 or i32, got f32"]),
    ("dequantize", ["u8[3]", "f32[]", "i8[]"], {}, ["zero_point must have q's dtype u8, got i8"]),
    ("matmul_integer", ["i8[2,3]", "u8[3,4]", "i8[]", "u8[]"], {}, ["b must be i8, got u8"]),
    ("matmul_integer", ["i32[2,3]", "i8[3,4]", "i32[]", "i8[]"], {}, ["a must be i8 or u8, got i32"]),
    ("matmul_integer", ["u8[2,3]", "i8[3,4]", "i8[]", "i8[]"], {}, ["a_zero_point must be a 0-d u8, got i8[]"]),
    ("conv2d_integer", ["f32[1,5,5,1]", "i8[3,3,1,1]", "f32[]", "i8[]"], {}, ["x must be i8 or u8, got f32"]),
    ("requantize", ["f32[3]", "f32[]", "i8[]"], {}, ["acc must be i32, got f32"]),
    ("requantize", ["i32[3]", "f32[]", "i32[]"], {}, ["zero_point must be i8 or u8, got i32"]),
]

SHAPE_ERRORS = [
    ("add", ["f32[3,4]", "f32[5]"], {}, ["dimensions 4 and 5 do not broadcast", "[3,4]", "[5]"]),
    ("add", ["f32[N,4]", "f32[3,4]"], {}, ["dimensions N and 3 do not broadcast"]),
    ("add", ["f32[N]", "f32[3,1]"], {}, ["move the batch dimension", "[N]", "[3,1]"]),
    ("matmul", ["f32[N,3]", "f32[4,5]"], {}, ["contraction mismatch", "f32[N,3]", "f32[4,5]"]),
    ("matmul", ["f32[3]", "f32[3,5]"], {}, ["rank >= 2", "f32[3]"]),
    ("reshape", ["f32[N,3,4]"], {"shape": ["N", 5]}, ["cannot reshape f32[N,3,4] to [N,5]"]),
    ("reshape", ["f32[N,3,4]"], {"shape": [12, -1]}, ["batch dimension must be kept"]),
    ("reshape", ["f32[6]"], {"shape": [-1, -1]}, ["at most one -1"]),
    ("transpose", ["f32[N,3]"], {"perm": [1, 0]}, ["move the batch dimension", "f32[N,3]"]),
    ("transpose", ["f32[2,3]"], {"perm": [0, 0]}, ["not a permutation of rank 2"]),
    ("squeeze", ["f32[N,2,3]"], {"axes": [1]}, ["squeeze axis 1 of f32[N,2,3] has size 2"]),
    ("expand_dims", ["f32[N,3]"], {"axes": [0]}, ["move the batch dimension"]),
    ("concat", ["f32[N,2]", "f32[N,3,1]"], {}, ["differ in rank", "f32[N,2]", "f32[N,3,1]"]),
    ("concat", ["f32[2,3]", "f32[4,3]"], {"axis": 1}, ["differ off axis 1"]),
    ("concat", ["f32[N,3]", "f32[N,3]"], {"axis": 0}, ["batch axis"]),
    ("split", ["f32[N,6]"], {"sections": [2, 3]}, ["sum to 6", "f32[N,6]"]),
    ("split", ["f32[N,6]"], {"axis": 0, "sections": [2]}, ["batch axis of f32[N,6]"]),
    ("slice", ["f32[N,6]"], {"axes": [1], "starts": [0], "ends": [2], "steps": [0]}, ["step must be positive"]),
    ("slice", ["f32[N,6]"], {"axes": [1, -1], "starts": [0, 0], "ends": [2, 2]}, ["repeat"]),
    ("pad", ["f32[N,3]"], {"pads": [1, 1]}, ["2*rank = 4", "got 2"]),
    ("pad", ["f32[N,3]"], {"pads": [1, 0, 0, 0]}, ["batch axis of f32[N,3]"]),
    ("softmax", ["f32[N,3]"], {"axis": 2}, ["axis 2 is out of range for rank 2"]),
    ("reduce_mean", ["f32[N,3]"], {"axes": [1, -1]}, ["repeat"]),
    ("broadcast_to", ["f32[3,2]"], {"shape": [3, 4]}, ["cannot broadcast f32[3,2] to [3,4]"]),
    ("gather", ["f32[N,5]", "i32[N]"], {}, ["batch axis"]),
    ("one_hot", ["i32[3]"], {"depth": 0}, ["depth must be positive"]),
    ("scatter_add", ["i32[4]", "f32[5,2]"], {"shape": [7, 2]}, ["must have shape [4,2]", "f32[5,2]"]),
    ("conv2d", ["f32[N,5,5,3]", "f32[3,3,2,4]"], {}, ["channels", "f32[N,5,5,3]", "f32[3,3,2,4]"]),
    ("quantize", ["f32[N,4]", "f32[5]", "i8[5]"], {}, ["per-axis scale f32[5] must have 4 entries"]),
    ("quantize", ["f32[N,4]", "f32[4]", "i8[]"], {}, ["zero_point i8[] must have the shape of scale f32[4]"]),
    ("quantize", ["f32[N,4]", "f32[2,2]", "i8[2,2]"], {}, ["0-d (per tensor) or 1-d (per axis)"]),
    ("dequantize", ["i8[N,4]", "f32[4]", "i8[4]"], {"axis": 2}, ["axis 2 is out of range for rank 2"]),
    ("matmul_integer", ["u8[N,3]", "i8[4,5]", "u8[]", "i8[]"], {}, ["contraction mismatch", "u8[N,3]"]),
    ("matmul_integer", ["u8[N,4]", "i8[4,5]", "u8[]", "i8[4]"], {}, ["b_zero_point must be 0-d or [5]"]),
    ("conv2d_integer", ["u8[N,5,5,3]", "i8[3,3,2,4]", "u8[]", "i8[]"], {}, ["channels", "u8[N,5,5,3]"]),
    ("requantize", ["i32[N,4]", "f32[4]", "u8[4]"], {}, ["zero_point must be 0-d, got u8[4]"]),
    ("requantize", ["i32[N,4]", "f32[3]", "u8[]"], {}, ["multiplier f32[3] must have 4 entries"]),
    ("conv2d", ["f32[N,2,5,3]", "f32[3,3,3,4]"], {}, ["spatial size 2 is too small for kernel 3"]),
    ("conv2d", ["f32[N,5,5,3]", "f32[3,3,3,4]"], {"strides": [1]}, ["need 2 values"]),
    ("conv2d", ["f32[N,5,5]", "f32[3,3,3,4]"], {}, ["NHWC (rank 4)", "f32[N,5,5]"]),
    ("conv2d", ["f32[N,6,6,4]", "f32[3,3,2,3]"], {"groups": 2}, ["divisible by groups"]),
    ("conv1d", ["f32[N,5,5,3]", "f32[3,3,4]"], {}, ["NWC (rank 3)"]),
    ("conv2d_transpose", ["f32[N,4,4,3]", "f32[3,3,2,3]"], {"strides": [2, 2], "output_padding": [2, 1]},
     ["output_padding [2, 1]", "less than strides [2, 2]"]),
    ("conv2d_transpose", ["f32[N,4,4,3]", "f32[3,3,2,4]"], {}, ["channels", "f32[N,4,4,3]", "expects 4"]),
    ("max_pool2d", ["f32[N,5,3]"], {"pool_size": [2, 2], "strides": [2, 2]}, ["rank 4", "f32[N,5,3]"]),
    ("avg_pool2d", ["f32[N,5,5,3]"], {"pool_size": [2], "strides": [2, 2]}, ["need 2 values"]),
    ("max_pool2d", ["f32[N,1,5,3]"], {"pool_size": [2, 2], "strides": [1, 1]}, ["too small"]),
    ("max_pool2d_grad", ["f32[N,4,4,1]", "f32[N,3,3,1]"], {"pool_size": [2, 2], "strides": [2, 2]},
     ["dy f32[N,3,3,1] does not match pooled output f32[N,2,2,1]"]),
    ("conv2d_input_grad", ["f32[N,3,3,4]", "f32[3,3,3,4]"], {"input_shape": ["N", 6, 6, 3]},
     ["dy f32[N,3,3,4] does not match forward output [N,4,4,4]"]),
    ("conv2d_filter_grad", ["f32[N,6,6,3]", "f32[N,4,4,5]"], {"filter_shape": [3, 3, 3, 4]},
     ["does not match forward output [N,4,4,4]"]),
]


def _emit(op, ins, attrs):
    b = GraphBuilder("bad")
    values = [b.input(f"x{i}", ty(t)) for i, t in enumerate(ins)]
    with b.location("layer_7"):
        b.op(op, *values, **attrs)


@pytest.mark.parametrize("op,ins,attrs,fragments", ATTRIBUTE_ERRORS + ARITY_ERRORS + DTYPE_ERRORS + SHAPE_ERRORS,
                         ids=lambda p: p if isinstance(p, str) else None)
def test_bad_node_raises_clear_error(op, ins, attrs, fragments):
    with pytest.raises(IRError) as info:
        _emit(op, ins, attrs)
    message = str(info.value)
    for fragment in ["node 'layer_7'", f"'{op}'"] + fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


@pytest.mark.parametrize("op,ins,attrs,fragments", DTYPE_ERRORS + SHAPE_ERRORS, ids=lambda p: p if isinstance(p, str) else None)
def test_type_errors_are_shape_errors(op, ins, attrs, fragments):
    with pytest.raises(ShapeError):
        _emit(op, ins, attrs)


def test_unknown_op_is_named():
    b = GraphBuilder("bad")
    with pytest.raises(IRError, match="unknown op 'frobnicate'"):
        b.frobnicate(b.input("x", ty("f32[3]")))
    with pytest.raises(IRError, match="unknown op 'frob'"):
        b.op("frob")


def test_non_value_operand_is_named():
    b = GraphBuilder("bad")
    with pytest.raises(IRError, match="input 1 of 'add' must be a Value, got float"):
        b.add(b.input("x", ty("f32[3]")), 1.0)
