"""The persistent compile cache: a second process compiles nothing; corrupt, concurrent, stale and
oversized caches are handled; the key follows everything the machine code depends on."""
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

from kcompile.compiler import jit
from kcompile.compiler.disk_cache import DiskCache, toolchain_digest
from kcompile.ir import atomic_files
from kcompile.compiler.driver import Compilation, CompileOptions
from kcompile.compiler.target import host_target
from kcompile.ir import GraphBuilder, TensorType


def _graph(width=7, name="dc"):
    b = GraphBuilder(name)
    x = b.input("x", TensorType(["N", width]))
    return b.build([b.tanh(b.mul(x, b.param("w", np.linspace(-1, 1, width).astype(np.float32))))])


def _compile(cache, graph=None, **options):
    c = Compilation({"forward": graph or _graph()}, "dc", CompileOptions(**options), disk_cache=cache)
    return jit.NativeFunction(c.entries["forward"], c), c


def _x(width=7):
    return np.arange(3 * width, dtype=np.float32).reshape(3, width) / 10


def test_second_compile_loads_code_and_runs_it_the_same(tmp_path):
    cache = DiskCache(tmp_path)
    fn, first = _compile(cache)
    expected = fn([_x()])[0]
    assert len(cache.entries()) == 1 and first.stage_runs["native"] == 1
    fn2, second = _compile(cache)
    np.testing.assert_array_equal(fn2([_x()])[0], expected)
    assert "native" not in second.stage_runs and "library" not in second.stage_runs  # nothing compiled
    assert second.stage_runs["persisted"] == 1 and "disk-cache-read" in second.timings


def test_a_new_process_compiles_nothing(tmp_path):
    script = textwrap.dedent("""
        import numpy as np, kcompile as kc
        from kcompile.compiler import jit
        m = kc.Sequential([kc.Input((6,)), kc.layers.Dense(4, activation="relu", kernel_initializer="ones")])
        y = m.predict_on_batch(np.ones((2, 6), np.float32))
        runs = sum(f.compilation.stage_runs["native"] for f in jit._CACHE.values())
        print(runs, float(y.sum()))
    """)
    env = dict(os.environ, KCOMPILE_CACHE_DIR=str(tmp_path))
    out = [subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True).stdout
           for _ in range(2)]
    assert out[0].split() == ["1", "48.0"] and out[1].split() == ["0", "48.0"]


def test_key_follows_target_options_and_toolchain(tmp_path):
    base = Compilation({"forward": _graph()}, "dc").persistent_key
    assert Compilation({"forward": _graph()}, "dc").persistent_key == base
    narrower = host_target().without("avx512f")
    assert Compilation({"forward": _graph()}, "dc", CompileOptions(target=narrower)).persistent_key != base
    assert Compilation({"forward": _graph()}, "dc", CompileOptions(opt_level=1)).persistent_key != base
    assert Compilation({"forward": _graph(8)}, "dc").persistent_key != base
    assert len(toolchain_digest()) == 64


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage"])
def test_a_corrupt_entry_is_dropped_and_compiled_again(tmp_path, damage):
    cache = DiskCache(tmp_path)
    fn, c = _compile(cache)
    expected = fn([_x()])[0]
    path = cache.path(c.persistent_key)
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[-100] ^= 0xFF
    elif damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data = bytearray(b"not a cache entry")
    path.write_bytes(bytes(data))
    fn2, c2 = _compile(cache)
    np.testing.assert_array_equal(fn2([_x()])[0], expected)
    assert c2.stage_runs["native"] == 1                     # compiled again, and stored whole
    assert cache.get(c2.persistent_key) is not None


def test_size_bound_evicts_least_recently_used(tmp_path):
    cache = DiskCache(tmp_path)
    _, a = _compile(cache, _graph(5))
    _, b = _compile(cache, _graph(6))
    os.utime(cache.path(a.persistent_key), (1, 1))          # a: used long ago
    size = cache.path(b.persistent_key).stat().st_size
    DiskCache(tmp_path, limit=size + 10).evict()
    assert not cache.path(a.persistent_key).exists() and cache.path(b.persistent_key).exists()


def test_stale_temp_files_of_dead_writers_are_removed(tmp_path):
    cache = DiskCache(tmp_path)
    (tmp_path / "ab").mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    live = atomic_files.sibling(tmp_path / "ab" / "entry.kco", "tmp")       # this process: alive
    stale = live.with_name(live.name.replace(f"-{os.getpid()}-", f"-{dead}-"))
    stale.write_bytes(b"half an entry")
    live.write_bytes(b"being written")
    cache.entries()
    assert not stale.exists() and live.exists()


def test_concurrent_processes_share_one_entry(tmp_path):
    script = textwrap.dedent("""
        import numpy as np, kcompile as kc
        m = kc.Sequential([kc.Input((5,)), kc.layers.Dense(3, kernel_initializer="ones")])
        print(float(m.predict_on_batch(np.ones((1, 5), np.float32)).sum()))
    """)
    env = dict(os.environ, KCOMPILE_CACHE_DIR=str(tmp_path))
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    outs = [p.communicate()[0].split() for p in procs]
    assert outs == [["15.0"]] * 3 and all(p.returncode == 0 for p in procs)
    files = [p.name for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 1 and files[0].endswith(".kco")


def test_disabled_cache_and_unsafe_folder_are_not_used(tmp_path, monkeypatch):
    monkeypatch.setenv("KCOMPILE_DISABLE_CACHE", "1")
    assert DiskCache.from_environment() is None
    monkeypatch.delenv("KCOMPILE_DISABLE_CACHE")
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("KCOMPILE_CACHE_DIR", str(shared))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert DiskCache.from_environment() is None
    assert "others may write" in str(caught[0].message)


def test_max_size_setting_is_checked(monkeypatch, tmp_path):
    monkeypatch.setenv("KCOMPILE_CACHE_MAX_MB", "lots")
    with pytest.raises(ValueError, match="KCOMPILE_CACHE_MAX_MB"):
        DiskCache(tmp_path)


def test_artifact_object_code_is_cached_by_the_planned_graphs(tmp_path):
    from kcompile import runtime
    from kcompile.compiler.artifact import write_compilation

    cache = DiskCache(tmp_path / "cache")
    first = Compilation({"forward": _graph()}, "dc", disk_cache=cache)
    write_compilation(first, tmp_path / "a")
    second = Compilation({"forward": _graph()}, "dc", disk_cache=cache)
    write_compilation(second, tmp_path / "b")
    assert first.stage_runs["library"] == 1 and "library" not in second.stage_runs   # LLVM did not run
    a, b = runtime.load(tmp_path / "a"), runtime.load(tmp_path / "b")
    np.testing.assert_array_equal(a(_x()), b(_x()))
