"""The fuzz targets (fuzz/): their oracle, their seeds, and a short atheris run of each.

Long runs are not tests: `python -m fuzz.run --target NAME --cpu-minutes 10` (see fuzz/__init__.py).
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("atheris")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))   # fuzz/ sits at the repo root beside the packages, not inside one

from kcompile.cli.errors import CLIError  # noqa: E402
from kcompile.runtime import ArtifactError, NativeRuntimeError  # noqa: E402

from fuzz import seed_models  # noqa: E402
from fuzz.harness import Finding, expect_clear_errors  # noqa: E402
from fuzz.targets import TARGETS, artifact, ir_text, load_model, run_inputs  # noqa: E402

SHORT_RUNS, SHORT_SECONDS = 150, 120   # whichever comes first: a loaded CI host still mutates for a while
MIN_EXECUTIONS = 20                    # more than the seeds (at most 10 per target): mutations ran


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz-fixtures")
    seed_models.artifacts(path)
    seed_models.saved_models(path)
    return path


# -- the oracle: clear project errors pass, anything else is a finding ------------------------
def _raise(e):
    raise e


@pytest.mark.parametrize("error", [ValueError("bad shape [3] for 'x'"), ArtifactError("manifest.json: bad"),
                                   CLIError("no such input"), NativeRuntimeError("index out of range"),
                                   NotImplementedError("layer 'd': dtype='float16' is not supported")])
def test_clear_project_errors_are_the_right_answer(error):
    assert expect_clear_errors(_raise, error) is None


@pytest.mark.parametrize("error", [TypeError("x"), KeyError("a"), AttributeError("get"), MemoryError(),
                                   RecursionError(), IndexError(0), ZeroDivisionError()])
def test_other_exceptions_escape_as_findings(error):
    with pytest.raises(type(error)):
        expect_clear_errors(_raise, error)


def test_a_project_error_without_a_message_is_a_finding():
    with pytest.raises(Finding):
        expect_clear_errors(_raise, ValueError(""))


# -- the seeds reach past the parsers: each loads and runs, so mutations start deep ------------
def test_load_model_seeds_load(fixtures, tmp_path):
    one = load_model.setup(fixtures, tmp_path)
    for seed in load_model.seeds(fixtures):
        one(seed)
        import kcompile as kc
        assert kc.models.load_model(tmp_path / "model.keras").weights   # the file one_input wrote


def test_artifact_seeds_load_and_run(fixtures, tmp_path):
    from kcompile.runtime import load
    one = artifact.setup(fixtures, tmp_path)
    names = []
    for seed in artifact.seeds(fixtures):
        one(seed)
        names.append(load(tmp_path / "artifact").manifest["name"])
    assert sorted(set(names)) == ["pair", "sgd", "small"]


def test_ir_text_seeds_parse():
    from kcompile.ir.text import parse_graph
    seeds = ir_text.seeds(None)
    assert len(seeds) >= 5 and all(parse_graph(s.decode()).nodes for s in seeds)


def test_run_inputs_seeds_run(fixtures, tmp_path):
    one = run_inputs.setup(fixtures, tmp_path)
    for seed in run_inputs.seeds(fixtures):
        one(seed)
        assert (tmp_path / "out.npz").is_file(), seed[:1]


# -- a short coverage-guided run of each target, all four at once ----------------------------
def test_short_fuzz_run_of_each_target_finds_nothing(fixtures, tmp_path):
    args = ["--runs", str(SHORT_RUNS), "--seconds", str(SHORT_SECONDS), "--workdir", str(tmp_path),
            "--fixtures", str(fixtures)]
    procs = {t: subprocess.Popen([sys.executable, "-m", "fuzz.run", "--target", t, *args],
                                 cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for t in sorted(TARGETS)}
    for t, p in procs.items():
        out, _ = p.communicate(timeout=SHORT_SECONDS + 240)   # start-up (instrumenting imports) included
        text = out.decode(errors="replace")
        assert p.returncode == 0, f"{t}:\n{text[-3000:]}"
        report = json.loads(text.strip().splitlines()[-1])
        assert report["findings"] == [] and report["executions"] >= MIN_EXECUTIONS, report


# -- what the fuzzers found, kept fixed -------------------------------------------------------
def _run_cli(argv, capsys):
    from kcompile.cli import main
    status = main(argv)
    return status, capsys.readouterr().err


_BYTES_KEY_HEADER = b"{b'descr': '<f4', 'fortran_order': False, 'shape': (2,), }"   # numpy: TypeError


@pytest.mark.parametrize("content", [b"", b"\x93NUMPY\x01\x00\x06\x00{\n   \n", b"\x93NUMPY",
                                     b"\x93NUMPY\x01\x00" + bytes([len(_BYTES_KEY_HEADER) + 1, 0])
                                     + _BYTES_KEY_HEADER + b"\n"])
def test_kcompile_run_refuses_empty_or_mangled_npy(fixtures, tmp_path, capsys, content):
    (tmp_path / "x.npy").write_bytes(content)
    status, err = _run_cli(["run", str(fixtures / "artifacts" / "small"), "--input", str(tmp_path / "x.npy")], capsys)
    assert status == 1 and "is not a plain .npy array" in err and "x.npy" in err, err


@pytest.mark.parametrize("given, problem", [(["b"], "['a'] given no --input"),
                                            (["a", "a", "b"], "['a'] given more than once")])
def test_kcompile_run_named_inputs_must_name_each_input_once(fixtures, tmp_path, capsys, given, problem):
    np.save(tmp_path / "a.npy", np.ones((2, 4), np.float32))
    np.save(tmp_path / "b.npy", np.ones(4, np.float32))
    argv = ["run", str(fixtures / "artifacts" / "pair")] + [f"--input={n}={tmp_path / n}.npy" for n in given]
    status, err = _run_cli(argv, capsys)
    assert status == 1 and problem in err, err


@pytest.mark.parametrize("member, problem", [
    (b"\x93NUMPY\x01\x00\x06\x00{\n   \n", "weights are corrupt"),   # numpy's header parser: TokenError
    (b"not an array", "weights are corrupt"),                          # np.load returned the raw bytes
])
def test_load_model_refuses_a_weight_that_is_not_a_npy_array(fixtures, tmp_path, member, problem):
    import kcompile as kc
    from fuzz.harness import join_parts, split_parts
    seed = load_model.unpack((fixtures / "models" / "mlp.keras").read_bytes())
    parts = split_parts(seed[1:])
    parts[2] = member
    (tmp_path / "m.keras").write_bytes(load_model.pack(b"\x01" + join_parts(parts)))
    with pytest.raises(ValueError, match=problem):
        kc.models.load_model(tmp_path / "m.keras")


def _flag_encrypted(archive: bytes, member: str) -> bytes:
    """Set the 'encrypted' bit of `member` in its local and central ZIP headers (zipfile cannot write it)."""
    data, name = bytearray(archive), member.encode()
    for sig, flag_at, name_at in ((b"PK\x03\x04", 6, 30), (b"PK\x01\x02", 8, 46)):
        start = 0
        while (start := data.find(sig, start)) >= 0:
            if data[start + name_at:start + name_at + len(name)] == name:
                data[start + flag_at] |= 0x1
            start += 4
    return bytes(data)


@pytest.mark.parametrize("member", ["weights.npz", "config.json"])
def test_load_model_refuses_a_member_flagged_encrypted(fixtures, tmp_path, member):
    import kcompile as kc
    archive = (fixtures / "models" / "mlp.keras").read_bytes()
    (tmp_path / "m.keras").write_bytes(_flag_encrypted(archive, member))   # zipfile: RuntimeError on read
    with pytest.raises(ValueError, match="not a valid kcompile file"):
        kc.models.load_model(tmp_path / "m.keras")


@pytest.mark.parametrize("symbol", ["N", "O3"])
def test_parse_graph_refuses_a_convolution_kernel_with_a_symbolic_size(symbol):
    """The fuzzer's IR text: conv2d's shape inference did arithmetic on the symbol (TypeError)."""
    from kcompile.ir import IRError
    from kcompile.ir.text import parse_graph
    text = (f"graph @g(%x: f32[N,6,6,2], %w: f32[{symbol},3,2,7]) -> (y: f32[N,6,6,7]) {{\n"
            '  %0 = conv2d(%x, %w) {padding="same"} : f32[N,6,6,7]\n'
            "  return %0\n}\n")
    with pytest.raises(IRError, match=f"kernel's spatial size must be static, got the symbol '{symbol}'"):
        parse_graph(text)


def test_parse_graph_refuses_text_that_ends_inside_an_array():
    """The fuzzer's IR text: the array parser took the end-of-text token as an item and ran past it (IndexError)."""
    from kcompile.ir import ParseError
    from kcompile.ir.text import parse_graph
    text = "graph @g(%a: f32[N,4]) -> (y: f32[N,4]) {\n  %1 = constant() {value=array(f32[], ["
    with pytest.raises(ParseError, match="expected"):
        parse_graph(text)


def test_parse_graph_refuses_an_op_that_needs_a_static_size_given_a_symbol():
    """The fuzzer's IR text (after symbolic sequence lengths landed): conv2d's inference did arithmetic on a
    symbolic spatial size; the registry turns such a TypeError into a ShapeError naming the op and types."""
    from kcompile.ir import IRError
    from kcompile.ir.text import parse_graph
    text = ("graph @g(%x: f32[N,G,6,2], %w: f32[3,3,2,3]) -> (y: f32[N,6,6,3]) {\n"
            '  %0 = conv2d(%x, %w) {padding="same"} : f32[N,6,6,3]\n'
            "  return %0\n}\n")
    with pytest.raises(IRError, match=r"op 'conv2d' needs static sizes .*f32\[N,G,6,2\]"):
        parse_graph(text)


@pytest.mark.parametrize("reference", [[5, 0], [0, 7], ["0", 0]])
def test_load_model_refuses_a_functional_config_that_refers_to_a_missing_tensor(tmp_path, reference):
    """The fuzzer's archive: a node argument pointing past the nodes before it escaped as IndexError."""
    import kcompile as kc
    from kcompile.frontend.config_tree import functional_from_config
    x = kc.Input((4,))
    model = kc.Model(x, kc.layers.Dense(2)(kc.layers.Dense(3)(x)))
    config = model.get_config()
    config["nodes"][1]["args"] = [{"__tensor__": reference}]
    with pytest.raises(ValueError, match="malformed functional config: a tensor refers to"):
        functional_from_config(config, {})


@pytest.mark.parametrize("config", ['"same"', "[1, 2]", '{"weights": 3}'])
def test_load_model_refuses_a_config_that_is_not_an_object_with_a_weights_list(tmp_path, config):
    """The fuzzer's archive: config.json holding a JSON string escaped as AttributeError ('str'.get)."""
    import zipfile

    import kcompile as kc
    model = kc.Sequential([kc.Input((3,)), kc.layers.Dense(2)])
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as z:
        members = {n: z.read(n) for n in z.namelist()}
    members["config.json"] = config.encode()
    with zipfile.ZipFile(tmp_path / "bad.keras", "w") as z:
        for n, data in members.items():
            z.writestr(n, data)
    with pytest.raises(ValueError, match="malformed model config"):
        kc.models.load_model(tmp_path / "bad.keras")
