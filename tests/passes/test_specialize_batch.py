"""specialize-batch: the batch symbol N becomes a fixed size in types and attributes; results do not change."""
import numpy as np
import pytest

from kcompile.ir import GraphBuilder, TensorType, verify
from kcompile.passes import PassError, PassManager
from kcompile.passes.specialize import specialize_batch
from kcompile.runtime.reference import run


def _batched_graph():
    rng = np.random.default_rng(0)
    b = GraphBuilder("batched")
    b.meta = {"note": "kept"}
    x = b.input("x", TensorType(("N", 6)))
    w = b.param("dense/kernel", rng.standard_normal((6, 4)).astype(np.float32))
    with b.location("dense"):
        h = b.relu(b.matmul(x, w))
    flat = b.reshape(b.reshape(h, shape=("N", 2, 2)), shape=("N", 4))
    return b.build([flat, b.reduce_sum(h, axes=[1])], ["out", "total"])


def test_types_and_attributes_lose_the_batch_symbol():
    g = _batched_graph()
    out = specialize_batch(g, batch=3)
    verify(out)
    assert out.inputs[0].type.shape == (3, 6)
    assert [v.type.shape for v in out.outputs] == [(3, 4), (3,)]
    assert [n.attrs["shape"] for n in out.nodes if n.op == "reshape"] == [(3, 2, 2), (3, 4)]
    assert not any(v.type.has_batch for n in out.nodes for v in n.outputs)
    assert out.output_names == g.output_names and out.meta == g.meta and out.name == g.name
    assert [n.name for n in out.nodes] == [n.name for n in g.nodes]
    assert out.params[0].type == g.params[0].type
    np.testing.assert_array_equal(out.param_values["dense/kernel"], g.param_values["dense/kernel"])


def test_outputs_match_the_symbolic_graph():
    g = _batched_graph()
    x = np.random.default_rng(1).standard_normal((5, 6)).astype(np.float32)
    for want, got in zip(run(g, [x]), run(specialize_batch(g, batch=5), [x])):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)


def test_runs_from_a_pipeline_with_the_batch_option():
    out, report = PassManager("specialize-batch{batch=8}", verify_each=True).run(_batched_graph())
    assert report["pipeline"] == ["specialize-batch"]
    assert out.inputs[0].type.shape == (8, 6)


def test_a_specialized_graph_rejects_other_batch_sizes():
    out = specialize_batch(_batched_graph(), batch=2)
    with pytest.raises(Exception, match=r"input .x.: expected shape f32\[2,6\], got \(3, 6\)"):
        run(out, [np.zeros((3, 6), np.float32)])


@pytest.mark.parametrize("batch", [0, -1, 2.5, True, "8"])
def test_batch_must_be_a_positive_integer(batch):
    with pytest.raises(PassError, match="specialize-batch.*positive integer"):
        specialize_batch(_batched_graph(), batch=batch)


def test_the_batch_option_is_required():
    with pytest.raises(PassError, match="specialize-batch.*bad options"):
        PassManager("specialize-batch").run(_batched_graph())
