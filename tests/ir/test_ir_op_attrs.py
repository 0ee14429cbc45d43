"""Walks OPS: every op rejects unknown attributes, wrong arity, wrong attribute kinds, bad choices
and missing required attributes, naming the node, the op and the attribute."""
import pytest

from kcompile.ir import OPS, GraphBuilder, IRError, TensorType
from kcompile.ir.registry import REQUIRED

from ir_op_cases import CASES

WRONG_KIND = {"int": "three", "float": "half", "bool": 1, "str": 3, "ints": [1.5], "floats": ["a"],
              "shape": [2.5], "dtype": "f16", "array": object(), "graph": 3}
FIRST_CASE = {}
for _case in CASES:
    FIRST_CASE.setdefault(_case.op, _case)


def _emit(op, n_inputs=None, **attrs):
    case = FIRST_CASE[op]
    b = GraphBuilder("attrs")
    ins = [b.input(f"x{i}", TensorType(a.shape, a.dtype)) for i, a in enumerate(case.arrays)]
    ins = (ins + [b.input("extra", TensorType([3]))])[:len(ins) if n_inputs is None else n_inputs]
    with b.location("the_node"):
        return b.op(op, *ins, **attrs)


def _valid_attrs(op):
    attrs = dict(FIRST_CASE[op].attrs)
    return {k: tuple(FIRST_CASE[op].arrays[0].shape[0] if d == "N" else d for d in v) if isinstance(v, tuple) else v
            for k, v in attrs.items()}


def _raises(op, fragments, n_inputs=None, **attrs):
    with pytest.raises(IRError) as info:
        _emit(op, n_inputs, **attrs)
    for fragment in ["node 'the_node'", f"'{op}'", *fragments]:
        assert fragment in str(info.value), f"{fragment!r} not in {str(info.value)!r}"


@pytest.mark.parametrize("op", sorted(OPS))
def test_valid_case_builds(op):
    _emit(op, **_valid_attrs(op))


@pytest.mark.parametrize("op", sorted(OPS))
def test_unknown_attribute(op):
    _raises(op, ["no attribute(s) ['bogus']"], **_valid_attrs(op), bogus=1)


@pytest.mark.parametrize("op", sorted(OPS))
def test_wrong_arity(op):
    opdef, n = OPS[op], len(FIRST_CASE[op].arrays)
    if not opdef.variadic:
        _raises(op, [f"takes {n} input(s)", f"got {n + 1}"], n + 1, **_valid_attrs(op))
    if n:
        _raises(op, ["input(s)", f"got {0 if opdef.variadic else n - 1}"], 0 if opdef.variadic else n - 1,
                **_valid_attrs(op))


ATTRS = [(op, name, spec) for op in sorted(OPS) for name, spec in OPS[op].attrs.items()]


@pytest.mark.parametrize("op,name,spec", ATTRS, ids=[f"{op}.{name}" for op, name, _ in ATTRS])
def test_wrong_attribute_kind(op, name, spec):
    _raises(op, [f"attribute '{name}' expects {spec.kind}"], **{**_valid_attrs(op), name: WRONG_KIND[spec.kind]})


CHOICES = [(op, name, spec) for op, name, spec in ATTRS if spec.choices]


@pytest.mark.parametrize("op,name,spec", CHOICES, ids=[f"{op}.{name}" for op, name, _ in CHOICES])
def test_bad_choice(op, name, spec):
    _raises(op, [f"attribute '{name}' must be one of {list(spec.choices)}", "'no_such_choice'"],
            **{**_valid_attrs(op), name: "no_such_choice"})


REQUIRED_ATTRS = [(op, name) for op, name, spec in ATTRS if spec.default is REQUIRED]


@pytest.mark.parametrize("op,name", REQUIRED_ATTRS, ids=[f"{op}.{name}" for op, name in REQUIRED_ATTRS])
def test_missing_required_attribute(op, name):
    attrs = _valid_attrs(op)
    attrs.pop(name, None)
    _raises(op, [f"requires attribute '{name}'"], **attrs)
