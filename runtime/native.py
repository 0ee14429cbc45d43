"""Load and run compiled artifacts: kcompile.runtime.load(path) -> CompiledModel.

Needs numpy, ctypes and kcompile.ir (for the shared input check; pure Python) only (llvmlite
only for artifacts that hold an object file because no linker existed). Imports neither kcompile.compiler nor kcompile.frontend. Everything read from
disk is validated before use: paths stay inside the artifact directory, sizes are bounded and
consistent before any allocation, checksums match, and the CPU has the features the code needs.
Every call checks its inputs so that native code never reads or writes out of bounds.
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import os
import stat
import threading
from pathlib import Path
from typing import Mapping

import numpy as np

from kcompile.ir import TensorType, load_budget, weight_epoch
from kcompile.ir.call_plan import CallPlan, aligned_empty
from kcompile.ir.signature import check_batch_size, check_lengths, check_signature
from kcompile.ir.thread_tuner import ThreadTuner

from .artifact_check import ArtifactError, check_cpu_features, validate_manifest
from .code_loader import ObjectCode, SharedLibrary
from . import packed_weights
from .sparse_weights import SparseWeights

ENTRY_CFUNC = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_void_p),
                               ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32)
# An entry with dynamic dims (a sequence length T) also takes every input's shape (compiler/dynamic_dims.py)
DYNAMIC_ENTRY_CFUNC = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.POINTER(ctypes.c_void_p),
                                       ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p, ctypes.c_void_p,
                                       ctypes.c_int64, ctypes.c_int32, ctypes.POINTER(ctypes.c_int64))
PACKED_SUFFIX = "_packed"   # <symbol>_packed(const int64_t args[6]): compiler/codegen.py
ENTRY_FIELDS = ("symbol", "workspace_symbol", "workspace", "inputs", "outputs", "param_updates")
PARAM_FIELDS = ("name", "offset", "nbytes", "shape", "dtype")
MAX_MANIFEST_BYTES = 16 << 20
MAX_BATCH = 1 << 31
DTYPES = {"f32": np.float32, "f64": np.float64, "i8": np.int8, "u8": np.uint8, "i32": np.int32,
          "i64": np.int64, "bool": np.bool_}


class NativeRuntimeError(RuntimeError):
    """The native code reported an error status (e.g. an index out of range)."""


def load(path) -> "CompiledModel":
    """Open an artifact directory written by kcompile (compiler.artifact) for predict/train_step."""
    return CompiledModel(path)


def _safe_file(root: Path, name, what: str) -> Path:
    """root/name as a regular file inside root: no separators, '..', absolute paths or symlinks."""
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ArtifactError(f"{what}: bad file name {name!r} (must be a plain file name inside the artifact)")
    p = root / name
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        raise ArtifactError(f"{what}: file {name!r} is missing from {root}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ArtifactError(f"{what}: {name!r} is not a regular file (symlinks are refused)")
    if Path(os.path.realpath(p)).parent != Path(os.path.realpath(root)):
        raise ArtifactError(f"{what}: {name!r} escapes the artifact directory")
    return p


def _read_checked(root: Path, name: str, manifest: dict, what: str, expect_size: int | None = None) -> bytes:
    p = _safe_file(root, name, what)
    size = os.lstat(p).st_size
    if expect_size is not None and size != expect_size:
        raise ArtifactError(f"{what}: {name} holds {size} bytes, the manifest declares {expect_size} "
                            f"({'truncated' if size < expect_size else 'oversized'})")
    load_budget.check_bytes(f"artifact {root.name}: {what} file {name}", size)   # before reading it in
    data = p.read_bytes()
    want = manifest["sha256"].get(name)
    if want is None or hashlib.sha256(data).hexdigest() != want:
        raise ArtifactError(f"{what}: {name} does not match its checksum (corrupt or modified)")
    return data


class _Entry:
    """One entry point: the C function, its tensor signature and workspace formula."""

    def __init__(self, kind: str, spec: dict, address: int):
        self.kind, self.spec = kind, spec
        self.dynamic = "symbols" in spec   # the entry takes input_shapes
        self.fn = (DYNAMIC_ENTRY_CFUNC if self.dynamic else ENTRY_CFUNC)(address)
        self.inputs, self.outputs = spec["inputs"], spec["outputs"]
        self.signature = [(s["name"], TensorType(s["shape"], s["dtype"])) for s in self.inputs]
        self.per_batch, self.static = spec["workspace"]["per_batch"], spec["workspace"]["static"]
        self.terms = [(tuple(t), c) for t, c in spec["workspace"].get("terms", [])]

    def workspace_bytes(self, batch: int, dims: dict) -> int:
        """per_batch*N + static + each term (e.g. C*N*T) at these sizes."""
        sizes, total = {**dims, "N": batch}, self.per_batch * batch + self.static
        for symbols, coeff in self.terms:
            for d in symbols:
                coeff *= sizes[d]
            total += coeff
        return total


class CompiledModel:
    """A loaded artifact: predict / __call__, train_step (training artifacts), get/set_weights."""

    def __init__(self, path):
        root = Path(path)
        if root.is_symlink() or not root.is_dir():
            raise ArtifactError(f"{root} is not an artifact directory")
        self.path = root
        manifest_file = _safe_file(root, "manifest.json", "manifest")
        if os.lstat(manifest_file).st_size > MAX_MANIFEST_BYTES:
            raise ArtifactError(f"manifest.json is larger than {MAX_MANIFEST_BYTES} bytes")
        try:
            manifest = json.loads(manifest_file.read_text())
        except (ValueError, UnicodeDecodeError) as e:
            raise ArtifactError(f"manifest.json is not valid JSON: {e}") from None
        self.manifest = validate_manifest(manifest)
        check_cpu_features(self.manifest["target"])
        weights = _read_checked(root, self.manifest["weights"]["file"], self.manifest, "weights",
                                self.manifest["weights"]["nbytes"])
        self._params = aligned_empty(len(weights))
        self._params[:] = np.frombuffer(weights, np.uint8)
        by_name = {p["name"]: p for p in self.manifest["params"]}
        self._sparse = SparseWeights(self.manifest.get("sparse_weights", []), lambda n: self._param_view(by_name[n]))
        # prepacked f32 weights: derived, repacked after writes of their sources (runtime/packed_weights.py)
        self._packs = packed_weights.artifact_packs(self.manifest["params"], lambda n: self._param_view(by_name[n]))
        self._logical_params = [p for p in self.manifest["params"] if not packed_weights.derived(p["name"])]
        self._code = self._load_code(root)
        self._check_interface()
        self._entries = {k: _Entry(k, spec, self._code.address(spec["symbol"]))
                         for k, spec in self.manifest["entry_points"].items()}
        self._train_lock = threading.Lock()
        self._nthreads: int | None = None   # threads per call; None: the default offer (ir/thread_budget.py),
        self._tuner = ThreadTuner()          # limited to the count that helps (ir/thread_tuner.py)
        self._plan = None   # the forward entry's fast path, made on first use (ir/call_plan.py)
        training = self.manifest.get("training") or {}
        self.learning_rate = training.get("learning_rate")
        self.iterations = int(training.get("iterations", 0))

    def _check_interface(self) -> None:
        """The manifest must describe exactly the interface the code was compiled for (its ABI string):
        shapes, dtypes, parameter layout and workspace sizes are trusted only after this."""
        m = self.manifest
        expected = {
            "entry_points": {k: {f: e.get(f) for f in ENTRY_FIELDS} | ({"symbols": e["symbols"]} if "symbols" in e
                                                                       else {})
                             for k, e in m["entry_points"].items()},
            "params": [{f: p.get(f) for f in PARAM_FIELDS} for p in m["params"]],
            "param_block_bytes": m["weights"]["nbytes"],
        } | ({"sparse_weights": m["sparse_weights"]} if "sparse_weights" in m else {})
        embedded = self._code.string(m["abi_symbol"])
        if embedded != json.dumps(expected, sort_keys=True, separators=(",", ":")):
            raise ArtifactError("manifest.json does not match the interface compiled into the code "
                                "(entry points, tensor shapes, parameter layout or workspace sizes differ)")

    def _load_code(self, root: Path):
        m = self.manifest
        if m.get("library"):
            data_name = m["library"]
            _read_checked(root, data_name, m, "library")
            code = SharedLibrary(root / data_name)
        else:
            obj = _read_checked(root, m["object"], m, "object file")
            code = ObjectCode(obj)
        if m.get("thread_launcher"):
            code.bind_threads(m["thread_launcher"])
        return code

    # -- calls ---------------------------------------------------------------------------
    @property
    def input_specs(self) -> list:
        return self._entries["forward"].inputs

    @property
    def output_specs(self) -> list:
        return self._entries["forward"].outputs

    @property
    def nthreads(self) -> int | None:
        """Threads per call as set (None: the default offer, tuned per batch size; the code's kernels
        use fewer for small work)."""
        return self._nthreads

    @nthreads.setter
    def nthreads(self, value: int | None) -> None:
        self._nthreads = None if value is None else max(1, int(value))
        self._plan = None   # its argument blocks hold the old count

    def _forward_plan(self):
        """The forward entry's CallPlan, or False where the code has no packed entry (older artifacts,
        a dynamic length) or a tensor without the batch dimension."""
        if self._plan is None:
            entry = self._entries["forward"]
            specs = entry.inputs + entry.outputs
            try:
                address = self._code.address(entry.spec["symbol"] + PACKED_SUFFIX)
            except ArtifactError:
                address = None
            if address is None or entry.dynamic or not all(self._batched(s) for s in specs):
                self._plan = False
            else:
                tensors = [[(DTYPES[s["dtype"]], s["shape"][1:]) for s in io] for io in (entry.inputs, entry.outputs)]
                self._plan = CallPlan(address, *tensors, self._params.ctypes.data,
                                      (entry.per_batch, entry.static), self._nthreads,
                                      lambda status: self._raise_status("forward", status), keep=self._params,
                                      tuner=self._tuner, packs=self._packs or None)
        return self._plan

    def _fast_forward(self, arrays):
        """Outputs through the prepared call, or None (then the checked path runs and explains)."""
        plan = self._plan if self._plan is not None else self._forward_plan()
        return plan(arrays) if plan else None

    def __call__(self, *inputs):
        plan = self._plan
        outs = (plan.call1(inputs[0]) if plan and len(inputs) == 1 and plan._dtype0 is not None
                else self._fast_forward(inputs))
        if outs is None:
            outs = self._run("forward", list(inputs))
        return outs[0] if len(outs) == 1 else outs

    def predict(self, x, batch_size: int | None = None):
        """Outputs for inputs x (an array, a list in input order, or a dict by input name)."""
        if batch_size is None and type(x) is np.ndarray:
            plan = self._plan
            outs = plan.call1(x) if plan and plan._dtype0 is not None else self._fast_forward((x,))
            if outs is not None:
                return outs[0] if len(outs) == 1 else outs
        batch_size = check_batch_size(batch_size, f"{self.manifest['name']}.predict")
        arrays = self._as_list(x, "forward")
        batch = self._batch_of(self._entries["forward"], arrays)
        if batch_size is None or batch is None or batch <= batch_size:
            outs = self._run("forward", arrays)
        else:
            parts = [self._run("forward", [a[i:i + batch_size] if self._batched(s) else a
                                           for a, s in zip(arrays, self.input_specs)])
                     for i in range(0, batch, batch_size)]
            outs = [np.concatenate(p) if self._batched(s) else p[0]
                    for p, s in zip(zip(*parts), self.output_specs)]
        return outs[0] if len(outs) == 1 else outs

    def train_step(self, *inputs, learning_rate: float | None = None, sample_weight=None):
        """One optimizer step in place on the parameters; returns the step's outputs (e.g. the loss).

        Inputs named "__rng_counter", "__iterations" (the step count) and "__learning_rate" are
        supplied from this model's state (learning_rate: the argument, else self.learning_rate);
        "sample_weight" defaults to ones. Give the others (x, y) positionally.
        """
        entry = self._entries.get("train_step")
        if entry is None:
            raise ArtifactError(f"artifact '{self.manifest['name']}' has no train_step entry point "
                                "(compile it with a training step)")
        given = list(inputs)
        batch = len(given[0]) if given and np.ndim(given[0]) else 0
        with self._train_lock:
            full = [self._state_input(spec, given, learning_rate, sample_weight, batch) for spec in entry.inputs]
            if given:
                raise ValueError(f"train_step got {len(given)} input(s) more than its signature "
                                 f"{[s['name'] for s in entry.inputs]}")
            outs = self._run("train_step", full)
            self.iterations += 1
        return outs[0] if len(outs) == 1 else outs

    def _state_input(self, spec, given: list, learning_rate, sample_weight, batch: int):
        name = spec["name"]
        if name == "__rng_counter":
            return np.int64(self.iterations)
        if name == "__iterations":
            return np.float32(self.iterations)
        if name == "__learning_rate":
            lr = learning_rate if learning_rate is not None else self.learning_rate
            if lr is None:
                raise ValueError("train_step needs a learning rate: pass learning_rate= or set model.learning_rate")
            return np.float32(lr)
        if name == "sample_weight":
            return np.ones(batch, np.float32) if sample_weight is None else sample_weight
        if not given:
            raise ValueError(f"train_step is missing input '{name}'")
        return given.pop(0)

    def _as_list(self, x, kind):
        specs = self._entries[kind].inputs
        if isinstance(x, Mapping):
            missing = [s["name"] for s in specs if s["name"] not in x]
            if missing:
                raise ValueError(f"missing inputs {missing}; expected {[s['name'] for s in specs]}")
            return [x[s["name"]] for s in specs]
        if isinstance(x, (list, tuple)) and len(specs) > 1:
            return list(x)
        return [x]

    @staticmethod
    def _batched(spec) -> bool:
        return bool(spec["shape"]) and spec["shape"][0] == "N"

    def _batch_of(self, entry, arrays):
        for a, s in zip(arrays, entry.inputs):
            if self._batched(s):
                return int(np.shape(a)[0]) if np.ndim(a) else None
        return None

    def _run(self, kind: str, inputs: list) -> list:
        entry = self._entries[kind]
        self._packs.refresh_if_stale()
        if len(inputs) == 1 and len(entry.inputs) > 1 and isinstance(inputs[0], (list, tuple, Mapping)):
            inputs = self._as_list(inputs[0], kind)
        dims: dict = {}
        arrays, batch = check_call_inputs(entry, inputs, dims)
        batch = 0 if batch is None else batch
        sizes = {**dims, "N": batch}
        outs = [np.empty([sizes[d] if isinstance(d, str) else d for d in s["shape"]], DTYPES[s["dtype"]])
                for s in entry.outputs]
        ws = aligned_empty(entry.workspace_bytes(batch, dims))
        in_ptrs = (ctypes.c_void_p * max(1, len(arrays)))(*[a.ctypes.data for a in arrays])
        out_ptrs = (ctypes.c_void_p * max(1, len(outs)))(*[o.ctypes.data for o in outs])
        shapes = [int(d) for a in arrays for d in a.shape]
        extra = ((ctypes.c_int64 * max(1, len(shapes)))(*shapes),) if entry.dynamic else ()
        key = (batch, tuple(sorted(dims.items()))) if dims else batch   # tuned per batch (and length)
        with self._tuner.call(key, self._nthreads) as n:   # the cores calls in flight left (or nthreads as set)
            status = entry.fn(in_ptrs, out_ptrs, self._params.ctypes.data, ws.ctypes.data, batch, n, *extra)
        if entry.spec.get("param_updates"):
            weight_epoch.bump()   # the step wrote weights in place: packed copies are stale
        if status:
            self._raise_status(kind, status)
        return outs

    def _raise_status(self, kind: str, status: int):
        msg = self.manifest["status_codes"].get(str(status), f"error status {status}")
        raise NativeRuntimeError(f"{self.manifest['name']}.{kind}: {msg}")

    # -- weights -------------------------------------------------------------------------
    def _param_view(self, p) -> np.ndarray:
        raw = self._params[p["offset"]:p["offset"] + p["nbytes"]]
        return raw.view(np.dtype(DTYPES[p["dtype"]]).newbyteorder("<")).reshape(p["shape"])

    def get_weights(self) -> list:
        """Copies of the parameters, in manifest order (a kernel stored sparse: dense, at its values' place)."""
        return [self._param_view(p).astype(DTYPES[p["dtype"]]) if kind == "param" else self._sparse.dense(p)
                for kind, p in self._sparse.logical(self._logical_params)]

    @property
    def weight_names(self) -> list:
        return [p["name"] if kind == "param" else p for kind, p in self._sparse.logical(self._logical_params)]

    def set_weights(self, weights) -> None:
        """Replace parameters from a list (get_weights order) or a dict by name; shapes must match.

        A kernel compiled sparse takes a dense array whose nonzeros lie in the compiled pattern
        (anything else is refused, naming the parameter: recompile for a new pattern)."""
        params = [p if kind == "param" else {"name": p, "shape": self._sparse.dense_shape(p),
                                             "dtype": self._sparse.specs[p]["dtype"], "sparse": True}
                  for kind, p in self._sparse.logical(self._logical_params)]
        if isinstance(weights, Mapping):
            for name in weights:
                self._sparse.refuse_part(name)
            unknown = sorted(set(weights) - {p["name"] for p in params})
            if unknown:
                raise ValueError(f"unknown parameters {unknown}")
            items = [(p, weights[p["name"]]) for p in params if p["name"] in weights]
        else:
            weights = list(weights)
            if len(weights) != len(params):
                raise ValueError(f"set_weights expects {len(params)} arrays, got {len(weights)}")
            items = list(zip(params, weights))
        checked = []
        for p, w in items:
            a = np.asarray(w)
            if list(a.shape) != list(p["shape"]):
                raise ValueError(f"parameter '{p['name']}' expects shape {list(p['shape'])}, got {list(a.shape)}")
            a = a.astype(DTYPES[p["dtype"]], casting="same_kind")
            if p.get("sparse"):
                values = self._sparse.compact_values(p["name"], a)
                p = next(q for q in self.manifest["params"] if q["name"] == self._sparse.specs[p["name"]]["values"])
                a = values
            checked.append((p, a))
        with self._train_lock:
            for p, a in checked:
                self._param_view(p)[...] = a
            weight_epoch.bump()   # packed copies of these weights are stale


def check_call_inputs(entry: _Entry, inputs: list, dims: dict | None = None):
    """Rank, shape, dtype (converted when same-kind, else refused) and contiguity of each input; dims
    receives the dynamic lengths (one size per symbol across inputs, at least 1, named otherwise)."""
    dims = {} if dims is None else dims
    arrays, batch = check_signature(f"entry '{entry.kind}'", entry.signature, inputs, convert=True,
                                    max_batch=MAX_BATCH, dims=dims)
    check_lengths(f"entry '{entry.kind}'", dims)
    return [np.ascontiguousarray(a) for a in arrays], batch
