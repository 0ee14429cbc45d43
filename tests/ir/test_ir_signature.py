"""check_signature: inputs matched by position or name, dtype, rank, static dims and one batch size."""
import numpy as np
import pytest

from kcompile.ir import TensorType
from kcompile.ir.signature import SignatureDtypeError, SignatureError, check_signature

SIG = [("pixels", TensorType(["N", 4, 3])), ("ids", TensorType(["N"], "i32")), ("scale", TensorType([2], "f64"))]
X = np.ones((5, 4, 3), np.float32)
IDS = np.arange(5, dtype=np.int32)
SCALE = np.ones(2, np.float64)


def test_list_and_dict_give_arrays_in_signature_order_and_the_batch():
    for given in ([X, IDS, SCALE], {"scale": SCALE, "ids": IDS, "pixels": X}):
        arrays, batch = check_signature("graph @net", SIG, given)
        assert batch == 5
        assert [a is b for a, b in zip(arrays, [X, IDS, SCALE])] == [True, True, True]


def test_no_symbolic_dimension_means_no_batch_and_lists_become_arrays():
    arrays, batch = check_signature("graph @s", [("v", TensorType([2], "f64"))], [[1.0, 2.0]])
    assert batch is None and isinstance(arrays[0], np.ndarray) and arrays[0].dtype == np.float64


BAD = [
    ([X[0], IDS, SCALE], "graph @net, input 'pixels': expected rank 3 f32[N,4,3], got shape (4, 3)"),
    ([X[:, :3], IDS, SCALE], "graph @net, input 'pixels': expected shape f32[N,4,3], got (5, 3, 3) (dimension 1)"),
    ([X, IDS[:4], SCALE], "graph @net, input 'ids': batch size 4 differs from other inputs' batch 5"),
    ([X, IDS, SCALE[:1]], "graph @net, input 'scale': expected shape f64[2], got (1,) (dimension 0)"),
    ([X.astype(np.float64), IDS, SCALE], "graph @net, input 'pixels': expected dtype f32 (float32), got float64"),
    ([X], "graph @net takes 3 inputs (pixels, ids, scale), got 1"),
    ({"pixels": X, "ids": IDS}, "graph @net: missing inputs ['scale'], unexpected inputs []"),
    ({"pixels": X, "ids": IDS, "scale": SCALE, "y": IDS}, "graph @net: missing inputs [], unexpected inputs ['y']"),
]


@pytest.mark.parametrize("given,message", BAD, ids=[m for _, m in BAD])
def test_mismatches_name_the_owner_input_expected_and_actual(given, message):
    with pytest.raises(SignatureError) as info:
        check_signature("graph @net", SIG, given)
    assert str(info.value) == message
    assert isinstance(info.value, ValueError) and not isinstance(info.value, TypeError)


def test_convert_casts_same_kind_dtypes_and_refuses_others_with_a_type_error():
    arrays, _ = check_signature("f", SIG, [X.astype(np.float64), IDS.astype(np.int64), SCALE], convert=True)
    assert [a.dtype for a in arrays] == [np.float32, np.int32, np.float64]
    with pytest.raises(SignatureDtypeError, match=r"f, input 'pixels': complex input \(dtype complex64\) is "
                                                  r"refused"):   # the one input dtype policy: never cast to real
        check_signature("f", SIG, [X.astype(np.complex64), IDS, SCALE], convert=True)
    with pytest.raises(TypeError, match="input 'ids'.*got float32"):  # float -> int is not same-kind
        check_signature("f", SIG, [X, IDS.astype(np.float32), SCALE], convert=True)


def test_conversion_happens_before_the_shape_checks():
    with pytest.raises(SignatureError, match="expected rank 3"):
        check_signature("f", SIG, [X[0].astype(np.float64), IDS, SCALE], convert=True)


def test_allow_unexpected_ignores_extra_names_but_not_missing_ones():
    given = {"pixels": X, "ids": IDS, "scale": SCALE, "labels": IDS}
    assert check_signature("f", SIG, given, allow_unexpected=True)[1] == 5
    with pytest.raises(SignatureError, match=r"^f: missing inputs \['ids'\]$"):
        check_signature("f", SIG, {"pixels": X, "scale": SCALE, "labels": IDS}, allow_unexpected=True)


def test_max_batch_bounds_the_symbolic_dimension():
    assert check_signature("f", SIG, [X, IDS, SCALE], max_batch=5)[1] == 5
    with pytest.raises(SignatureError, match="input 'pixels': batch size 5 is too large \\(at most 4\\)"):
        check_signature("f", SIG, [X, IDS, SCALE], max_batch=4)


def test_an_empty_batch_is_a_batch():
    arrays, batch = check_signature("f", SIG, [X[:0], IDS[:0], SCALE])
    assert batch == 0 and arrays[0].shape == (0, 4, 3)
