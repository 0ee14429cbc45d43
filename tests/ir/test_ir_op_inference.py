"""Shape and dtype inference on hand-worked examples, symbolic batch N included."""
import pytest

from kcompile.ir import get_op

from ir_util import ty

# (op, operand types, attributes, expected result types) -- results worked out by hand
INFERENCE = [
    ("add", ["f32[N,1,5]", "f32[4,1]"], {}, ["f32[N,4,5]"]),
    ("mul", ["f32[1,4]", "f32[N,4]"], {}, ["f32[N,4]"]),
    ("sub", ["i32[]", "i32[N,3]"], {}, ["i32[N,3]"]),
    ("less", ["i32[N,3]", "i32[3]"], {}, ["bool[N,3]"]),
    ("logical_or", ["bool[2,1]", "bool[3]"], {}, ["bool[2,3]"]),
    ("where", ["bool[N,1]", "f32[3]", "f32[N,3]"], {}, ["f32[N,3]"]),
    ("exp", ["f64[N,2,3]"], {}, ["f64[N,2,3]"]),
    ("cast", ["f32[N,3]"], {"dtype": "i8"}, ["i8[N,3]"]),
    ("matmul", ["f32[N,3,4]", "f32[4,5]"], {}, ["f32[N,3,5]"]),
    ("matmul", ["f32[N,4]", "f32[5,4]"], {"transpose_b": True}, ["f32[N,5]"]),
    ("matmul", ["f32[2,1,3,4]", "f32[5,4,6]"], {}, ["f32[2,5,3,6]"]),
    ("matmul", ["f32[N,4,3]", "f32[N,4,2]"], {"transpose_a": True}, ["f32[N,3,2]"]),
    ("reduce_sum", ["f32[N,3,4]"], {"axes": [1]}, ["f32[N,4]"]),
    ("reduce_mean", ["f32[N,3,4]"], {"axes": [-2], "keepdims": True}, ["f32[N,1,4]"]),
    ("reduce_max", ["f32[N,3,4]"], {}, ["f32[]"]),
    ("argmax", ["f32[N,7]"], {}, ["i64[N]"]),
    ("argmin", ["i32[N,7,2]"], {"axis": 1, "keepdims": True}, ["i64[N,1,2]"]),
    ("transpose", ["f32[N,3,4]"], {"perm": [0, 2, 1]}, ["f32[N,4,3]"]),
    ("reshape", ["f32[N,3,4]"], {"shape": ["N", -1]}, ["f32[N,12]"]),
    ("reshape", ["f32[6,4]"], {"shape": [-1, 3, 2]}, ["f32[4,3,2]"]),
    ("broadcast_to", ["f32[1,4]"], {"shape": ["N", 3, 4]}, ["f32[N,3,4]"]),
    ("expand_dims", ["f32[N,3]"], {"axes": [-1]}, ["f32[N,3,1]"]),
    ("squeeze", ["f32[N,1,3]"], {"axes": [1]}, ["f32[N,3]"]),
    ("concat", ["f32[N,2]", "f32[N,3]", "f32[N,1]"], {}, ["f32[N,6]"]),
    ("split", ["f32[N,6]"], {"sections": [1, 2, 3]}, ["f32[N,1]", "f32[N,2]", "f32[N,3]"]),
    ("slice", ["f32[N,10]"], {"axes": [1], "starts": [2], "ends": [-1], "steps": [3]}, ["f32[N,3]"]),
    ("slice", ["f32[N,4,6]"], {"axes": [2, 1], "starts": [1, 0], "ends": [3, 1]}, ["f32[N,1,2]"]),
    ("pad", ["f32[N,3]"], {"pads": [0, 0, 2, 1]}, ["f32[N,6]"]),
    ("gather", ["f32[100,16]", "i32[N,7]"], {}, ["f32[N,7,16]"]),
    ("gather", ["f32[N,5,3]", "i64[2]"], {"axis": 1}, ["f32[N,2,3]"]),
    ("scatter_add", ["i64[6]", "f32[6,16]"], {"shape": [100, 16]}, ["f32[100,16]"]),
    ("one_hot", ["i64[N]"], {"depth": 10}, ["f32[N,10]"]),
    ("one_hot", ["i32[N,2]"], {"depth": 3, "dtype": "i32"}, ["i32[N,2,3]"]),
    ("softmax", ["f64[N,10]"], {}, ["f64[N,10]"]),
    ("log_softmax", ["f32[N,3,10]"], {"axis": 1}, ["f32[N,3,10]"]),
    ("conv2d", ["f32[N,28,28,3]", "f32[3,3,3,8]"], {"padding": "same"}, ["f32[N,28,28,8]"]),
    ("conv2d", ["f32[N,28,28,3]", "f32[3,3,3,8]"], {"strides": [2, 2]}, ["f32[N,13,13,8]"]),
    ("conv2d", ["f32[N,7,9,3]", "f32[3,3,3,8]"], {"strides": [2, 4], "padding": "same"}, ["f32[N,4,3,8]"]),
    ("conv2d", ["f32[N,9,9,2]", "f32[3,3,2,4]"], {"dilations": [2, 3]}, ["f32[N,5,3,4]"]),
    ("conv2d", ["f32[N,8,8,3]", "f32[3,3,1,6]"], {"groups": 3, "padding": "same"}, ["f32[N,8,8,6]"]),
    ("conv1d", ["f32[N,10,4]", "f32[3,4,8]"], {"padding": "causal", "dilations": 2}, ["f32[N,10,8]"]),
    ("conv1d", ["f32[N,10,4]", "f32[3,4,8]"], {"padding": "same", "strides": 3}, ["f32[N,4,8]"]),
    ("conv1d", ["f32[N,10,4]", "f32[3,4,8]"], {}, ["f32[N,8,8]"]),
    ("conv2d_input_grad", ["f32[N,13,13,8]", "f32[3,3,3,8]"], {"input_shape": ["N", 28, 28, 3], "strides": [2, 2]},
     ["f32[N,28,28,3]"]),
    ("conv2d_filter_grad", ["f32[N,28,28,3]", "f32[N,13,13,8]"], {"filter_shape": [3, 3, 3, 8], "strides": [2, 2]},
     ["f32[3,3,3,8]"]),
    ("max_pool2d", ["f32[N,7,7,3]"], {"pool_size": [2, 2], "strides": [2, 2]}, ["f32[N,3,3,3]"]),
    ("max_pool2d", ["f32[N,7,7,3]"], {"pool_size": [2, 2], "strides": [2, 2], "padding": "same"}, ["f32[N,4,4,3]"]),
    ("avg_pool2d", ["f32[N,5,8,1]"], {"pool_size": [3, 2], "strides": [1, 3]}, ["f32[N,3,3,1]"]),
    ("avg_pool1d", ["f32[N,9,2]"], {"pool_size": [3], "strides": [2]}, ["f32[N,4,2]"]),
    ("max_pool1d", ["f32[N,9,2]"], {"pool_size": [3], "strides": [2], "padding": "same"}, ["f32[N,5,2]"]),
    ("max_pool2d_grad", ["f32[N,7,7,3]", "f32[N,3,3,3]"], {"pool_size": [2, 2], "strides": [2, 2]},
     ["f32[N,7,7,3]"]),
    ("avg_pool2d_grad", ["f32[N,3,3,3]"], {"pool_size": [2, 2], "strides": [2, 2], "input_shape": ["N", 7, 7, 3]},
     ["f32[N,7,7,3]"]),
    ("random_uniform_like", ["f64[N,5]", "i64[]"], {"seed": 3}, ["f32[N,5]"]),
]


@pytest.mark.parametrize("op,ins,attrs,outs", INFERENCE, ids=[f"{c[0]}-{i}" for i, c in enumerate(INFERENCE)])
def test_inference(op, ins, attrs, outs):
    opdef = get_op(op)
    got = opdef.infer_types([ty(t) for t in ins], opdef.normalize_attrs(attrs, op), op)
    assert [str(t) for t in got] == outs
