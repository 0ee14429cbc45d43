"""The bad-input table: each row does one bad thing and names the error it must raise.

A row is a function registered with @case(area, error type, pattern): it must raise that type
(or a subclass) with a message matching the pattern, i.e. naming the problem. Rows marked
isolate=True may reach native code (artifacts, the CLI, compiled predict), so they run in a
subprocess (reliability_worker.py), all of them in one, where a crash fails the rows instead of
the test session. Rows build what they need from a Ctx: one tiny model, its saved archive, one
compiled artifact, each made once and copied before a row damages it.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np


@dataclass
class Case:
    id: str
    area: str
    fn: object
    error: type
    match: str
    isolate: bool


CASES: list[Case] = []


def case(area: str, error: type, match: str, isolate: bool = False):
    def register(fn):
        CASES.append(Case(fn.__name__, area, fn, error, match, isolate))
        return fn
    return register


class CLIFailed(Exception):
    """The CLI returned a non-zero status; the message is what it printed on stderr."""


class Ctx:
    """What the rows share, each made on first use in the folder `tmp`."""

    def __init__(self, tmp: Path):
        self.tmp = Path(tmp)
        self._n = 0

    def fresh(self, name: str) -> Path:
        self._n += 1
        d = self.tmp / f"{self._n:03d}-{name}"
        d.mkdir()
        return d

    @cached_property
    def model(self):
        import kcompile as kc
        m = kc.Sequential([kc.Input((3,)), kc.layers.Dense(2, name="dense")], name="tiny")
        m.compile(optimizer="sgd", loss="mse")
        return m

    @cached_property
    def saved(self) -> Path:
        path = self.tmp / "tiny.keras"
        self.model.save(path)
        return path

    @cached_property
    def artifact(self) -> Path:
        from kcompile.compiler.artifact import write_artifact
        return write_artifact(self.model.forward_graph(), self.tmp / "tiny_artifact", "tiny")

    def artifact_copy(self, edit_manifest=None) -> Path:
        dst = self.fresh("artifact") / "tiny"
        shutil.copytree(self.artifact, dst)
        if edit_manifest is not None:
            m = json.loads((dst / "manifest.json").read_text())
            edit_manifest(m)
            (dst / "manifest.json").write_text(json.dumps(m))
        return dst

    def archive(self, edit_config=None, members: dict | None = None) -> Path:
        """A copy of the saved model with its config edited and/or members replaced."""
        with zipfile.ZipFile(self.saved) as z:
            parts = {n: z.read(n) for n in z.namelist()}
        if edit_config is not None:
            config = json.loads(parts["config.json"])
            edit_config(config)
            parts["config.json"] = json.dumps(config).encode()
        parts.update(members or {})
        path = self.fresh("archive") / "model.keras"
        with zipfile.ZipFile(path, "w") as z:
            for name, data in parts.items():
                z.writestr(name, data)
        return path

    def npy(self, array=None, header: dict | None = None, name="x.npy", data: bytes = b"") -> Path:
        path = self.fresh("npy") / name
        if header is None:
            np.save(path, array, allow_pickle=True)
        else:
            buf = io.BytesIO()
            np.lib.format.write_array_header_1_0(buf, header)
            path.write_bytes(buf.getvalue() + data)
        return path


def load(path):
    import kcompile as kc
    return kc.models.load_model(path)


def cli(*argv):
    """Run the kcompile command line in-process; a failure raises CLIFailed with its stderr."""
    from kcompile.cli import main
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = main([str(a) for a in argv])
    if status != 0:
        text = err.getvalue().strip()
        assert text.startswith("kcompile: error:") and "\n" not in text, f"not one clear line: {text!r}"
        raise CLIFailed(text)


@contextlib.contextmanager
def budget(nbytes: int):
    old = os.environ.get("KCOMPILE_MAX_LOAD_BYTES")
    os.environ["KCOMPILE_MAX_LOAD_BYTES"] = str(nbytes)
    try:
        yield
    finally:
        if old is None:
            del os.environ["KCOMPILE_MAX_LOAD_BYTES"]
        else:
            os.environ["KCOMPILE_MAX_LOAD_BYTES"] = old


X = np.ones((4, 3), np.float32)
Y = np.ones((4, 2), np.float32)


def layers():
    import kcompile as kc
    return kc.layers


# -- front end: layer arguments at construction -------------------------------------------------
@case("frontend", ValueError, r"Dense.*`units`.*-3")
def dense_negative_units(ctx):
    layers().Dense(-3)


@case("frontend", ValueError, r"Dense.*`units`.*'sixteen'")
def dense_units_string(ctx):
    layers().Dense("sixteen")


@case("frontend", ValueError, r"Dense.*`units`.*2\.5")
def dense_units_float(ctx):
    layers().Dense(2.5)


@case("frontend", ValueError, r"Conv2D.*`filters`.*0")
def conv_zero_filters(ctx):
    layers().Conv2D(0, 3)


@case("frontend", ValueError, r"Conv2D.*`kernel_size`.*0")
def conv_zero_kernel(ctx):
    layers().Conv2D(4, 0)


@case("frontend", ValueError, r"Conv1D.*`strides`.*-1")
def conv_negative_stride(ctx):
    layers().Conv1D(4, 3, strides=-1)


@case("frontend", ValueError, r"Conv2D.*`padding`.*'full'")
def conv_unknown_padding(ctx):
    layers().Conv2D(4, 3, padding="full")


@case("frontend", ValueError, r"DepthwiseConv2D.*`depth_multiplier`")
def depthwise_zero_multiplier(ctx):
    layers().DepthwiseConv2D(3, depth_multiplier=0)


@case("frontend", ValueError, r"Dropout.*`rate`.*1\.5")
def dropout_rate_above_one(ctx):
    layers().Dropout(1.5)


@case("frontend", ValueError, r"Dropout.*`rate`.*'half'")
def dropout_rate_string(ctx):
    layers().Dropout("half")


@case("frontend", ValueError, r"Embedding.*`input_dim`.*0")
def embedding_zero_vocabulary(ctx):
    layers().Embedding(0, 4)


@case("frontend", ValueError, r"LSTM.*`units`.*-1")
def lstm_negative_units(ctx):
    layers().LSTM(-1)


@case("frontend", ValueError, r"MaxPooling2D.*`pool_size`")
def pool_zero_size(ctx):
    layers().MaxPooling2D(pool_size=(2, 0))


@case("frontend", ValueError, r"ZeroPadding2D.*`padding`.*-1")
def zero_padding_negative(ctx):
    layers().ZeroPadding2D(-1)


@case("frontend", ValueError, r"Reshape.*`target_shape`")
def reshape_target_string(ctx):
    layers().Reshape("3x4")


@case("frontend", ValueError, r"RepeatVector.*`n`.*0")
def repeat_vector_zero(ctx):
    layers().RepeatVector(0)


@case("frontend", ValueError, r"BatchNormalization.*`momentum`.*2")
def batchnorm_momentum_out_of_range(ctx):
    layers().BatchNormalization(momentum=2)


@case("frontend", ValueError, r"ReLU.*`max_value`.*-1")
def relu_negative_max(ctx):
    layers().ReLU(max_value=-1)


@case("frontend", ValueError, r"Lambda.*callable")
def lambda_not_callable(ctx):
    layers().Lambda(42)


# -- front end: data given to predict / fit / evaluate / eager calls ------------------------------
@case("frontend", ValueError, r"predict.*batch_size.*0", isolate=True)
def predict_batch_size_zero(ctx):
    ctx.model.predict(X, batch_size=0, verbose=0)


@case("frontend", ValueError, r"predict.*batch_size.*-1", isolate=True)
def predict_batch_size_negative(ctx):
    ctx.model.predict(X, batch_size=-1, verbose=0)


@case("frontend", ValueError, r"fit.*batch_size.*0", isolate=True)
def fit_batch_size_zero(ctx):
    ctx.model.fit(X, Y, batch_size=0, verbose=0)


@case("frontend", TypeError, r"complex.*refused", isolate=True)
def predict_complex(ctx):
    ctx.model.predict(X + 1j, verbose=0)


@case("frontend", TypeError, r"complex.*refused", isolate=True)
def fit_complex_x(ctx):
    ctx.model.fit(X + 1j, Y, verbose=0)


@case("frontend", TypeError, r"complex.*refused", isolate=True)
def evaluate_complex_y(ctx):
    ctx.model.evaluate(X, Y + 1j, verbose=0)


@case("frontend", TypeError, r"complex.*refused", isolate=True)
def eager_call_complex(ctx):
    ctx.model(X + 1j)


@case("frontend", ValueError, r"expects samples of shape \(3,\)", isolate=True)
def predict_wrong_feature_count(ctx):
    ctx.model.predict(np.ones((4, 5), np.float32), verbose=0)


@case("frontend", TypeError, r"numeric", isolate=True)
def predict_strings(ctx):
    ctx.model.predict(np.array([["a", "b", "c"]]), verbose=0)


@case("frontend", ValueError, r"empty", isolate=True)
def fit_no_samples(ctx):
    ctx.model.fit(np.ones((0, 3), np.float32), np.ones((0, 2), np.float32), verbose=0)


# -- the IR: types and text ----------------------------------------------------------------------
def ir():
    import kcompile.ir as ir
    return ir


@case("ir", ValueError, r"\[1099511627776,1099511627776\].*int64")
def type_element_count_overflow(ctx):
    ir().TensorType((2**40, 2**40), "f32")


@case("ir", ValueError, r"per batch row.*int64")
def type_batch_row_overflow(ctx):
    ir().TensorType(("N", 2**62, 4), "f32")


@case("ir", ValueError, r"int64")
def type_zero_dim_does_not_hide_overflow(ctx):
    ir().TensorType((0, 2**70), "f32")


@case("ir", ValueError, r"leading dimension")
def type_symbol_not_leading(ctx):
    ir().TensorType((3, "M"), "f32")


@case("ir", ValueError, r"dimension 0 must be >= 0")
def type_negative_dim(ctx):
    ir().TensorType((-1,), "f32")


@case("ir", TypeError, r"unsupported dtype")
def type_complex_dtype(ctx):
    ir().TensorType((3,), "c64")


HEAD = "graph @g(%x: f32[N,3]) -> (y: f32[N,3]) {\n"


@case("ir", ValueError, r"line 1.*int64")
def text_overflowing_type(ctx):
    ir().parse_graph("graph @g(%x: f32[N,4611686018427387904,4]) -> (y: f32[N,3]) {\n  return %x\n}\n")


@case("ir", ValueError, r"line 2.*int64")
def text_overflowing_param(ctx):
    ir().parse_graph(HEAD + '  %w = param "w" : f32[3,4611686018427387904]\n  return %x\n}\n')


@case("ir", ValueError, r"unknown op 'frobnicate'")
def text_unknown_op(ctx):
    ir().parse_graph(HEAD + "  %0 = frobnicate(%x) : f32[N,3]\n  return %0\n}\n")


@case("ir", ValueError, r"undefined value %y")
def text_undefined_value(ctx):
    ir().parse_graph(HEAD + "  %0 = relu(%y) : f32[N,3]\n  return %0\n}\n")


@case("ir", ValueError, r"inference gives f32\[N,3\]")
def text_wrong_printed_type(ctx):
    ir().parse_graph(HEAD.replace("y: f32[N,3]", "y: f32[N,4]") + "  %0 = relu(%x) : f32[N,4]\n  return %0\n}\n")


@case("ir", ValueError, r"attribute 'axis' expects int")
def text_bad_attribute(ctx):
    ir().parse_graph(HEAD + '  %0 = softmax(%x) {axis="z"} : f32[N,3]\n  return %0\n}\n')


@case("ir", ValueError, r"defined twice")
def text_value_defined_twice(ctx):
    ir().parse_graph(HEAD + "  %0 = relu(%x) : f32[N,3]\n  %0 = relu(%x) : f32[N,3]\n  return %0\n}\n")


@case("ir", ValueError, r"contraction mismatch")
def text_matmul_mismatch(ctx):
    ir().parse_graph(HEAD + "  %0 = matmul(%x, %x) : f32[N,3]\n  return %0\n}\n")


@case("ir", ValueError, r"unexpected character")
def text_nul_byte(ctx):
    ir().parse_graph("graph @g\x00")


# -- saved models ----------------------------------------------------------------------------------
def _dense_config(config) -> dict:
    return config["model"]["config"]["layers"][1]["config"]


def _add_layer(config, layer: dict) -> None:
    config["model"]["config"]["layers"].insert(1, layer)


@case("saving", FileNotFoundError, r"no such kcompile model")
def load_missing_file(ctx):
    load(ctx.tmp / "nowhere.keras")


@case("saving", ValueError, r"not a valid kcompile file")
def load_not_a_zip(ctx):
    path = ctx.fresh("junk") / "junk.keras"
    path.write_bytes(b"definitely not a zip archive")
    load(path)


@case("saving", ValueError, r"not a valid kcompile file")
def load_truncated_archive(ctx):
    path = ctx.fresh("cut") / "cut.keras"
    data = ctx.saved.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    load(path)


@case("saving", ValueError, r"Dense.*`units`.*'sixteen'")
def config_units_string(ctx):
    load(ctx.archive(lambda c: _dense_config(c).update(units="sixteen")))


@case("saving", ValueError, r"Dense.*`units`.*-3")
def config_units_negative(ctx):
    load(ctx.archive(lambda c: _dense_config(c).update(units=-3)))


@case("saving", ValueError, r"kernel.*12,000,000,000,000 bytes.*loading budget")
def config_declares_terabytes(ctx):
    load(ctx.archive(lambda c: _dense_config(c).update(units=10**12)))


KERAS3_LAMBDA = {"class_name": "Lambda", "config": {
    "name": "lam", "arguments": {}, "output_shape": None,
    "function": {"class_name": "__lambda__", "config": {"code": "4wEAAAAAAAAAAAAAAAEAAAACAAAAQwAAAHMIAAAAfABkARQAUwA=",
                                                        "defaults": None, "closure": None}}}}
KERAS2_LAMBDA = {"class_name": "Lambda", "config": {
    "name": "lam", "arguments": {}, "output_shape": None, "function_type": "lambda", "module": "__main__",
    "output_shape_type": "raw", "output_shape_module": None,
    "function": ["4wEAAAAAAAAAAAAAAAEAAAACAAAAQwAAAHMIAAAAfABkARQAUwA=", None, None]}}


@case("saving", ValueError, r"Lambda 'lam': serialized Python code is refused")
def config_keras3_marshalled_lambda(ctx):
    load(ctx.archive(lambda c: _add_layer(c, KERAS3_LAMBDA)))


@case("saving", ValueError, r"Lambda 'lam': serialized Python code is refused")
def config_keras2_marshalled_lambda(ctx):
    load(ctx.archive(lambda c: _add_layer(c, KERAS2_LAMBDA)))


@case("saving", ValueError, r"unknown layer class 'Frobnicator'")
def config_unknown_layer_class(ctx):
    load(ctx.archive(lambda c: _add_layer(c, {"class_name": "Frobnicator", "config": {}})))


@case("saving", ValueError, r"format version 99")
def archive_future_version(ctx):
    load(ctx.archive(members={"kcompile.json": json.dumps({"format": "kcompile-model", "version": 99})}))


def _npz(**members: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(f"{name}.npy", data)
    return buf.getvalue()


def _npy_header(shape, descr="<f4") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


@case("saving", ValueError, r"array 'w0' of shape \(10000000, 10000000\).*loading budget")
def weights_header_declares_terabytes(ctx):
    load(ctx.archive(members={"weights.npz": _npz(w0=_npy_header((10**7, 10**7)))}))


@case("saving", ValueError, r"Python objects")
def weights_object_array(ctx):
    buf = io.BytesIO()
    np.save(buf, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    load(ctx.archive(members={"weights.npz": _npz(w0=buf.getvalue())}))


@case("saving", ValueError, r"truncated")
def weights_truncated_data(ctx):
    load(ctx.archive(members={"weights.npz": _npz(w0=_npy_header((3, 2)) + b"\0" * 5)}))


@case("saving", ValueError, r"loading budget of 200 bytes")
def load_over_configured_budget(ctx):
    path = ctx.saved
    with budget(200):
        load(path)


@case("saving", ValueError, r"KCOMPILE_MAX_LOAD_BYTES='lots'")
def budget_not_a_number(ctx):
    path = ctx.saved
    old = os.environ.get("KCOMPILE_MAX_LOAD_BYTES")
    os.environ["KCOMPILE_MAX_LOAD_BYTES"] = "lots"
    try:
        load(path)
    finally:
        os.environ.pop("KCOMPILE_MAX_LOAD_BYTES")
        if old is not None:
            os.environ["KCOMPILE_MAX_LOAD_BYTES"] = old


@case("saving", ValueError, r"holds 1 weight arrays but model 'tiny' has 2")
def weights_count_mismatch(ctx):
    buf = io.BytesIO()
    np.savez(buf, w0=np.ones((3, 2), np.float32))
    load(ctx.archive(lambda c: c.update(weights=c["weights"][:1]), members={"weights.npz": buf.getvalue()}))


@case("saving", ValueError, r"weight for 'dense/kernel' has shape \(2, 3\)")
def weights_wrong_shape(ctx):
    buf = io.BytesIO()
    np.savez(buf, w0=np.ones((2, 3), np.float32), w1=np.ones(2, np.float32))
    load(ctx.archive(members={"weights.npz": buf.getvalue()}))


@case("saving", FileExistsError, r"overwrite=False")
def save_refuses_overwrite(ctx):
    ctx.model.save(ctx.saved, overwrite=False)


# -- artifacts -------------------------------------------------------------------------------------
def runtime_load(path):
    from kcompile.runtime import load as rt_load
    return rt_load(path)


@case("artifact", ValueError, r"lacks: made-up-feature.*not reported by LLVM", isolate=True)
def artifact_unknown_cpu_feature(ctx):
    runtime_load(ctx.artifact_copy(lambda m: m["target"]["features"].append("made-up-feature")))


@case("artifact", ValueError, r"lacks: (amx-tile|avx512fp16|fma4|xop|sse4a|tbm) \(built for", isolate=True)
def artifact_cpu_feature_host_lacks(ctx):
    from kcompile.runtime.host_cpu import host_features
    have = host_features()[0]
    extra = [f for f in ("amx-tile", "avx512fp16", "fma4", "xop", "sse4a", "tbm") if f not in have]
    assert extra, "this host has every probe feature"   # AMD parts lack AMX, Intel parts lack sse4a
    runtime_load(ctx.artifact_copy(lambda m: m["target"]["features"].append(extra[0])))


@case("artifact", ValueError, r"tiny\.predict: batch_size.*0", isolate=True)
def artifact_predict_batch_size_zero(ctx):
    runtime_load(ctx.artifact).predict(X, batch_size=0)


@case("artifact", ValueError, r"tiny\.predict: batch_size.*-1", isolate=True)
def artifact_predict_batch_size_negative(ctx):
    runtime_load(ctx.artifact).predict(X, batch_size=-1)


@case("artifact", TypeError, r"input 'input_layer'.*complex.*refused", isolate=True)
def artifact_predict_complex(ctx):
    runtime_load(ctx.artifact).predict(X + 1j)


@case("artifact", ValueError, r"expected shape f32\[N,3\]", isolate=True)
def artifact_predict_wrong_shape(ctx):
    runtime_load(ctx.artifact).predict(np.ones((4, 5), np.float32))


@case("artifact", ValueError, r"weights\.bin holds .* \(truncated\)", isolate=True)
def artifact_weights_truncated(ctx):
    art = ctx.artifact_copy()
    data = (art / "weights.bin").read_bytes()
    (art / "weights.bin").write_bytes(data[:-4])
    runtime_load(art)


@case("artifact", ValueError, r"weights file weights\.bin declares \d+ bytes.*loading budget of 16 bytes", isolate=True)
def artifact_weights_over_budget(ctx):
    art = ctx.artifact_copy()
    with budget(16):
        runtime_load(art)


@case("artifact", ValueError, r"not valid JSON", isolate=True)
def artifact_manifest_not_json(ctx):
    art = ctx.artifact_copy()
    (art / "manifest.json").write_text("{ not json")
    runtime_load(art)


@case("artifact", ValueError, r"does not match its checksum", isolate=True)
def artifact_library_modified(ctx):
    art = ctx.artifact_copy()
    lib = art / "libtiny.so"
    data = bytearray(lib.read_bytes())
    data[200] ^= 0xFF
    lib.write_bytes(bytes(data))
    runtime_load(art)


@case("artifact", ValueError, r"declares more than", isolate=True)
def artifact_manifest_huge_tensor(ctx):
    runtime_load(ctx.artifact_copy(lambda m: m["entry_points"]["forward"]["inputs"][0].update(
        shape=["N", 2**31, 2**31])))


@case("artifact", ValueError, r"bad file name '\.\./weights\.bin'", isolate=True)
def artifact_path_escape(ctx):
    runtime_load(ctx.artifact_copy(lambda m: m["weights"].update(file="../weights.bin")))


@case("artifact", ValueError, r"not an artifact directory", isolate=True)
def artifact_missing(ctx):
    runtime_load(ctx.tmp / "no-such-artifact")


# -- ONNX export -----------------------------------------------------------------------------------
def export(path, **kw):
    from kcompile.compiler.onnx_export import export_onnx
    import kcompile as kc
    m = kc.Sequential([kc.Input((3,)), kc.layers.Dense(2)])
    export_onnx(m.forward_graph(), path, **kw)


@case("onnx", ValueError, r"opset 5 is not supported")
def onnx_old_opset(ctx):
    export(ctx.fresh("onnx") / "m.onnx", opset=5)


@case("onnx", ValueError, r"batch must be a positive int, got 0")
def onnx_batch_zero(ctx):
    export(ctx.fresh("onnx") / "m.onnx", batch=0)


@case("onnx", IsADirectoryError, r"is a directory")
def onnx_path_is_folder(ctx):
    export(ctx.fresh("onnx"))


@case("onnx", FileNotFoundError, r"folder .* does not exist")
def onnx_folder_missing(ctx):
    export(ctx.tmp / "missing-folder" / "m.onnx")


@case("onnx", CLIFailed, r"kcompile: error: .*(INVALID_PROTOBUF|Protobuf|protobuf|parsing)", isolate=True)
def onnx_corrupt_file_run(ctx):
    path = ctx.fresh("onnx") / "bad.onnx"
    path.write_bytes(b"\x08\x07garbage")
    cli("run", path, "--input", ctx.npy(X))


# -- the command line ------------------------------------------------------------------------------
@case("cli", CLIFailed, r"--batch-size must be a positive integer, got 0", isolate=True)
def cli_run_batch_size_zero(ctx):
    cli("run", ctx.artifact, "--input", ctx.npy(X), "--batch-size", 0)


@case("cli", CLIFailed, r"--batch-size must be a positive integer, got -1", isolate=True)
def cli_run_batch_size_negative(ctx):
    cli("run", ctx.artifact, "--input", ctx.npy(X), "--batch-size", -1)


@case("cli", CLIFailed, r"complex.*refused", isolate=True)
def cli_run_complex_input(ctx):
    cli("run", ctx.artifact, "--input", ctx.npy(X.astype(np.complex64)))


@case("cli", CLIFailed, r"x\.npy.*1,000,000,000,000 bytes.*loading budget", isolate=True)
def cli_run_input_header_declares_terabytes(ctx):
    cli("run", ctx.artifact, "--input", ctx.npy(header={"descr": "<f4", "fortran_order": False,
                                                       "shape": (250_000_000_000,)}))


@case("cli", CLIFailed, r"not a plain \.npy array.*Python objects", isolate=True)
def cli_run_pickled_input(ctx):
    cli("run", ctx.artifact, "--input", ctx.npy(np.array([{"a": 1}], dtype=object)))


@case("cli", CLIFailed, r"truncated", isolate=True)
def cli_run_truncated_input(ctx):
    cli("run", ctx.artifact, "--input", ctx.npy(header={"descr": "<f4", "fortran_order": False, "shape": (4, 3)},
                                                data=b"\0" * 7))


@case("cli", CLIFailed, r"input file '.*nope\.npy' does not exist", isolate=True)
def cli_run_missing_input(ctx):
    cli("run", ctx.artifact, "--input", ctx.tmp / "nope.npy")


@case("cli", CLIFailed, r"artifact '.*no-artifact' does not exist", isolate=True)
def cli_run_missing_artifact(ctx):
    cli("run", ctx.tmp / "no-artifact", "--input", ctx.npy(X))


@case("cli", CLIFailed, r"--output must end in \.npy", isolate=True)
def cli_run_output_suffix(ctx):
    cli("run", ctx.artifact, "--input", ctx.npy(X), "--output", ctx.tmp / "out.txt")


@case("cli", CLIFailed, r"expected shape f32\[N,3\]", isolate=True)
def cli_run_wrong_shape(ctx):
    cli("run", ctx.artifact, "--input", ctx.npy(np.ones((2, 7), np.float32)))


@case("cli", CLIFailed, r"--batch must be a positive integer, got 0", isolate=True)
def cli_compile_batch_zero(ctx):
    cli(ctx.saved, "-o", ctx.fresh("out") / "o", "--batch", 0)


@case("cli", CLIFailed, r"unknown --emit kind 'exe'", isolate=True)
def cli_compile_unknown_emit(ctx):
    cli(ctx.saved, "-o", ctx.fresh("out") / "o", "--emit", "exe")


@case("cli", CLIFailed, r"exists and is not a folder", isolate=True)
def cli_compile_output_is_a_file(ctx):
    target = ctx.fresh("out") / "file"
    target.write_text("x")
    cli(ctx.saved, "-o", target)


@case("cli", CLIFailed, r"serialized Python code is refused", isolate=True)
def cli_compile_marshalled_lambda(ctx):
    cli(ctx.archive(lambda c: _add_layer(c, KERAS3_LAMBDA)), "-o", ctx.fresh("out") / "o")


@case("cli", CLIFailed, r"--calibration-data .*loading budget", isolate=True)
def cli_calibration_header_declares_terabytes(ctx):
    data = ctx.npy(header={"descr": "<f4", "fortran_order": False, "shape": (10**7, 10**7)}, name="cal.npy")
    cli(ctx.saved, "-o", ctx.fresh("out") / "o", "--quantize", "int8", "--calibration-data", data)


def run_case(c: Case, ctx: Ctx):
    """Run one row: (exception class names, message), or None when it raised nothing."""
    try:
        c.fn(ctx)
    except Exception as e:   # noqa: BLE001  (the row decides which type is right)
        return [k.__name__ for k in type(e).__mro__], str(e)
    return None
