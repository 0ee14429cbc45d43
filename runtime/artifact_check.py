"""Validation of an artifact's manifest and of the CPU it is about to run on (no llvmlite needed)."""
from __future__ import annotations

import math
import platform
import re

FORMAT = "kcompile-artifact"
FORMAT_VERSION = 1
MAX_BYTES = 1 << 40          # no tensor, weight file or workspace term may claim more
MAX_DIM = 1 << 31
ITEMSIZE = {"f32": 4, "f64": 8, "i8": 1, "u8": 1, "i32": 4, "i64": 8, "bool": 1}
_HEX64 = re.compile(r"^[0-9a-f]{64}$")

# LLVM feature name -> Linux /proc/cpuinfo flag, for the instruction-set extensions codegen uses.
CPUINFO_FLAG = {
    "sse2": "sse2", "sse3": "pni", "ssse3": "ssse3", "sse4.1": "sse4_1", "sse4.2": "sse4_2", "sse4a": "sse4a",
    "avx": "avx", "avx2": "avx2", "fma": "fma", "fma4": "fma4", "xop": "xop", "f16c": "f16c", "bmi": "bmi1",
    "bmi2": "bmi2", "lzcnt": "abm", "popcnt": "popcnt", "movbe": "movbe", "aes": "aes", "pclmul": "pclmulqdq",
    "avx512f": "avx512f", "avx512cd": "avx512cd", "avx512bw": "avx512bw", "avx512dq": "avx512dq",
    "avx512vl": "avx512vl", "avx512vnni": "avx512_vnni", "avx512bf16": "avx512_bf16",
    "avx512fp16": "avx512_fp16", "avx512vbmi": "avx512vbmi", "avx512vbmi2": "avx512_vbmi2",
    "avx512ifma": "avx512ifma", "avx512bitalg": "avx512_bitalg", "avx512vpopcntdq": "avx512_vpopcntdq",
    "avxvnni": "avx_vnni", "gfni": "gfni", "vaes": "vaes", "vpclmulqdq": "vpclmulqdq", "adx": "adx",
    "sha": "sha_ni", "amx-tile": "amx_tile", "amx-int8": "amx_int8", "amx-bf16": "amx_bf16",
}


class ArtifactError(ValueError):
    """An artifact that is corrupt, truncated, inconsistent, unsafe or built for another CPU."""


def _fail(msg: str):
    raise ArtifactError(f"manifest.json: {msg}")


def _int(v, what: str, lo: int = 0, hi: int = MAX_BYTES) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        _fail(f"{what} must be an integer in [{lo}, {hi}], got {v!r}")
    return v


def _str(v, what: str, ident: bool = False) -> str:
    if not isinstance(v, str) or not v or (ident and not v.isidentifier()):
        _fail(f"{what} must be a {'C identifier' if ident else 'non-empty string'}, got {v!r}")
    return v


def _dict(v, what: str) -> dict:
    if not isinstance(v, dict):
        _fail(f"{what} must be an object, got {type(v).__name__}")
    return v


def _list(v, what: str) -> list:
    if not isinstance(v, list):
        _fail(f"{what} must be a list, got {type(v).__name__}")
    return v


def _tensor(t, what: str, symbols=()) -> int:
    """Check a {name, shape, dtype} spec; returns its static bytes per batch row (or total).
    symbols: the entry's declared dynamic dims (e.g. T), allowed past the leading dimension."""
    t = _dict(t, what)
    _str(t.get("name"), f"{what}.name")
    if t.get("dtype") not in ITEMSIZE:
        _fail(f"{what}.dtype must be one of {sorted(ITEMSIZE)}, got {t.get('dtype')!r}")
    size = ITEMSIZE[t["dtype"]]
    for i, d in enumerate(_list(t.get("shape"), f"{what}.shape")):
        if d == "N" and i == 0 or i and isinstance(d, str) and d in symbols:
            continue
        size *= _int(d, f"{what}.shape[{i}]", 0, MAX_DIM)
        if size > MAX_BYTES:
            _fail(f"{what} declares more than {MAX_BYTES} bytes")
    return size


def _entry(kind: str, e) -> None:
    e = _dict(e, f"entry_points.{kind}")
    _str(e.get("symbol"), f"entry_points.{kind}.symbol", ident=True)
    _str(e.get("workspace_symbol"), f"entry_points.{kind}.workspace_symbol", ident=True)
    ws = _dict(e.get("workspace"), f"entry_points.{kind}.workspace")
    _int(ws.get("per_batch"), f"entry_points.{kind}.workspace.per_batch")
    _int(ws.get("static"), f"entry_points.{kind}.workspace.static")
    symbols = _symbols(e, kind)
    for io in ("inputs", "outputs"):
        for k, t in enumerate(_list(e.get(io), f"entry_points.{kind}.{io}")):
            _tensor(t, f"entry_points.{kind}.{io}[{k}]", symbols)
    for k, v in _dict(e.get("param_updates", {}), f"entry_points.{kind}.param_updates").items():
        _str(v, f"entry_points.{kind}.param_updates[{k!r}]")


def _symbols(e: dict, kind: str) -> tuple:
    """An entry's dynamic dims (a sequence length T): each bound by inputs at named places, and the
    workspace's terms in them ([[symbols], bytes], e.g. [["N", "T"], 512])."""
    if "symbols" not in e:
        if "terms" in e["workspace"]:
            _fail(f"entry_points.{kind}.workspace.terms needs entry_points.{kind}.symbols")
        return ()
    symbols = _dict(e["symbols"], f"entry_points.{kind}.symbols")
    inputs = _list(e.get("inputs"), f"entry_points.{kind}.inputs")
    for sym, places in symbols.items():
        what = f"entry_points.{kind}.symbols[{sym!r}]"
        if not isinstance(sym, str) or not sym.isidentifier() or sym == "N" or not _list(places, what):
            _fail(f"{what}: a symbol must be an identifier other than N, bound by at least one input")
        for place in places:
            if len(_list(place, f"{what}[]")) != 2:
                _fail(f"{what}: each place is [input index, axis], got {place!r}")
            k, axis = (_int(x, f"{what}[]", 0, MAX_DIM) for x in place)
            shape = _dict(inputs[k], what).get("shape") if k < len(inputs) else None
            if not isinstance(shape, list) or not 0 < axis < len(shape) or shape[axis] != sym:
                _fail(f"{what}: input {k} has no dimension {axis} named {sym}")
    for k, term in enumerate(_list(e["workspace"].get("terms"), f"entry_points.{kind}.workspace.terms")):
        what = f"entry_points.{kind}.workspace.terms[{k}]"
        if not isinstance(term, list) or len(term) != 2 or not isinstance(term[0], list) or \
                any(d != "N" and d not in symbols for d in term[0]):
            _fail(f"{what} must be [[symbols], bytes] over N and the entry's symbols, got {term!r}")
        _int(term[1], f"{what}.bytes")
    return tuple(symbols)


def _params(params, weights_bytes: int) -> None:
    spans = []
    for k, p in enumerate(_list(params, "params")):
        size = _tensor(p, f"params[{k}]")
        if "N" in p["shape"]:
            _fail(f"params[{k}] ('{p['name']}') must have a static shape")
        off = _int(p.get("offset"), f"params[{k}].offset")
        n = _int(p.get("nbytes"), f"params[{k}].nbytes")
        if n != size:
            _fail(f"params[{k}] ('{p['name']}') declares {n} bytes, its shape and dtype need {size}")
        if off + n > weights_bytes:
            _fail(f"params[{k}] ('{p['name']}') ends at byte {off + n}, beyond the {weights_bytes}-byte weights")
        spans.append((off, off + n, p["name"]))
    spans.sort()
    for (a0, a1, an), (b0, b1, bn) in zip(spans, spans[1:]):
        if b0 < a1:
            _fail(f"parameters '{an}' and '{bn}' overlap in the weights")


def _sparse_weights(specs, params) -> None:
    """Each kernel stored sparse names its three parameters, of the dtypes and sizes its shape implies."""
    by_name = {p["name"]: p for p in params}
    for k, s in enumerate(_list(specs, "sparse_weights")):
        what = f"sparse_weights[{k}]"
        s = _dict(s, what)
        _str(s.get("name"), f"{what}.name")
        shape = [_int(d, f"{what}.shape[]", 1, MAX_DIM) for d in _list(s.get("shape"), f"{what}.shape")]
        block = [_int(d, f"{what}.block[]", 1, MAX_DIM) for d in _list(s.get("block"), f"{what}.block")]
        windows = s.get("layout", "blocks") == "windows"
        if s.get("layout", "blocks") not in ("blocks", "windows"):
            _fail(f"{what}.layout must be 'blocks' or 'windows', got {s.get('layout')!r}")
        # windows blocks may name slots per lane (G, C, P): the int8 layout (ir/ops/sparse_int8.py)
        if len(shape) != 2 or len(block) not in ((2, 3) if windows else (2,)) \
                or (not windows and (shape[0] % block[0] or shape[1] % block[1])):
            _fail(f"{what}: block {block} must divide the 2-D shape {shape}")
        if "dense_shape" in s:   # a convolution kernel stored as its [K, N] view
            dense = [_int(d, f"{what}.dense_shape[]", 1, MAX_DIM)
                     for d in _list(s["dense_shape"], f"{what}.dense_shape")]
            if math.prod(dense) != shape[0] * shape[1] or dense[-1] != shape[1]:
                _fail(f"{what}: dense_shape {dense} does not view as the stored shape {shape}")
        if s.get("dtype") not in ("f32", "f64") + (("i8",) if windows else ()):
            _fail(f"{what}.dtype must be f32 or f64 (or i8 in the windows layout), got {s.get('dtype')!r}")
        parts = {part: by_name.get(s.get(part)) for part in ("values", "index", "offsets")}
        if any(p is None for p in parts.values()):
            _fail(f"{what}: values, index and offsets must name parameters, got "
                  f"{[s.get(part) for part in parts]}")
        nblocks = parts["index"]["shape"]
        if windows:  # one u8 index per value slot; offsets per (panel, window) group, then the two orders
            groups = -(-shape[1] // block[1]) * -(-shape[0] // block[0])
            want = {"values": (s["dtype"], nblocks if len(nblocks) == 1 else None),
                    "index": ("u8", nblocks if len(nblocks) == 1 else None),
                    "offsets": ("i32", [groups + 1 + shape[0] + shape[1]])}
        else:
            want = {"values": (s["dtype"], [nblocks[0] * block[0] * block[1]] if len(nblocks) == 1 else None),
                    "index": ("i32", nblocks if len(nblocks) == 1 else None),
                    "offsets": ("i32", [shape[1] // block[1] + 1])}
        for part, (dt, sh) in want.items():
            if (parts[part]["dtype"], parts[part]["shape"]) != (dt, sh):
                _fail(f"{what}: parameter '{parts[part]['name']}' ({part}) must be {dt}{sh}, got "
                      f"{parts[part]['dtype']}{parts[part]['shape']}")


def validate_manifest(m) -> dict:
    """Check every field the runtime relies on; returns the manifest or raises ArtifactError."""
    m = _dict(m, "the manifest")
    if m.get("format") != FORMAT:
        _fail(f"format must be {FORMAT!r}, got {m.get('format')!r}")
    if m.get("format_version") != FORMAT_VERSION:
        _fail(f"format_version {m.get('format_version')!r} is not supported (this runtime reads {FORMAT_VERSION})")
    _str(m.get("name"), "name", ident=True)
    _str(m.get("abi_symbol"), "abi_symbol", ident=True)
    if bool(m.get("library")) == bool(m.get("object")):
        _fail("exactly one of 'library' and 'object' must name the code file")
    sums = _dict(m.get("sha256"), "sha256")
    for k, v in sums.items():
        if not isinstance(v, str) or not _HEX64.match(v):
            _fail(f"sha256[{k!r}] is not a SHA-256 hex digest")
    target = _dict(m.get("target"), "target")
    _str(target.get("triple"), "target.triple")
    for f in _list(target.get("features"), "target.features"):
        _str(f, "target.features[]")
    w = _dict(m.get("weights"), "weights")
    _str(w.get("file"), "weights.file")
    _params(m.get("params"), _int(w.get("nbytes"), "weights.nbytes"))
    if "sparse_weights" in m:
        _sparse_weights(m["sparse_weights"], m["params"])
    entries = _dict(m.get("entry_points"), "entry_points")
    if "forward" not in entries:
        _fail("entry_points has no 'forward'")
    for kind, e in entries.items():
        _entry(kind, e)
    for k, v in _dict(m.get("status_codes", {}), "status_codes").items():
        _str(v, f"status_codes[{k!r}]")
    if m.get("thread_launcher") is not None:
        _str(m["thread_launcher"], "thread_launcher", ident=True)
    return m


def host_cpu_flags() -> set | None:
    """The CPU flags of this machine from /proc/cpuinfo (None where that file does not exist)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        return None
    return set()


def check_cpu_features(target: dict, features: set | None = None) -> None:
    """Refuse code built for another architecture, or one claiming any feature this CPU does not report.

    features: the host's enabled features under LLVM's names (default: runtime.host_cpu). Every
    feature the manifest lists must be among them, known to any table or not: an unknown one could
    be an instruction this CPU lacks, and running it would be an illegal-instruction crash."""
    arch = target["triple"].split("-")[0]
    host = platform.machine().lower()
    same = {arch, host} <= {"x86_64", "amd64"} or arch == host or {arch, host} <= {"aarch64", "arm64"}
    if not same:
        raise ArtifactError(f"artifact built for {arch}, this machine is {host}")
    source = "the given feature list"
    if features is None:
        from .host_cpu import host_features
        features, source = host_features()
        if features is None:
            return  # no way to read the features here; the architecture matched
    missing = sorted(f for f in target["features"] if f not in features)
    if missing:
        raise ArtifactError(f"artifact needs CPU features this machine lacks: {', '.join(missing)} "
                            f"(built for {target.get('cpu', '?')}; not reported by {source}); recompile it here")
