"""Tiered JIT: a cold compile runs unoptimized code at once and swaps in optimized code when it is ready.

A cold compile of the MNIST MLP's forward pass and train step spent ~0.95 s of CPU in LLVM's
optimizer and code generator (O1-O3) before the first call could run; at O0 (no IR passes,
FastISel, the fast register allocator) the same IR compiles about ten times faster, into code
that runs 4-8 times slower. So the JIT compiles twice, as HotSpot, V8 and .NET's tiered JIT do:

  tier 0   this process, at once: the glue and the kernels not at hand at O0 (kernel_library.py
           keeps them in memory for the next compile that needs the same kernels); its GEMMs call
           only the MR-row micro-kernels (kernels/microkernel.tile_variants(fewest=True));
  tier 1   a forked child (niced, on the second core): codegen again from the same planned graphs,
           at the usual levels, written to the disk cache (disk_cache.py) as any compile is; a
           watcher thread waits for the child, loads the code and publishes it.

Publishing is one pointer store per entry point: every exported entry of a tiered compile is called
through a stub (`load` a function pointer, `musttail call` it: a load and a jump) in a small module of
its own, so the addresses the callers hold (NativeFunction, CallPlan, BoundCall's blocks) never
change; a call that entered tier 0 finishes there (tier-0 code stays loaded while the engine lives).
Globals the caller binds in the code (the thread launcher, the collective hook) are bound in tier 1
before its entries are published (TieredEngine.bind_globals replays them).

While a child runs it holds one core of the thread budget (ir/thread_budget.py), so tier-0 calls
offered the default count leave it that core; a loop known to be long compiles optimized first
(optimized_first: fit over >= 100 steps, frontend/training/backend.long_run).

The next process finds tier 1 in the disk cache and never tiers. The watcher is a non-daemon thread,
so a process that exits early still waits for its children to fill the cache (about a second).

Tiering needs a disk cache (it carries tier 1 back) and a fork that is safe (fork_compile.parallel_allowed:
the main thread, no other thread than the watchers, no runtime with its own thread pools imported,
several cores); KCOMPILE_TIER_UP=0 turns it off. Elsewhere the JIT compiles at the usual levels
before the first call, as before. A child that fails costs time only: the watcher then compiles
tier 1 in-process (at the usual levels, without forking) and publishes it.

Fork safety: the watchers do all their LLVM and cache work holding codelib.LLVM_LOCK and touch the
watcher list only under its lock; at-fork hooks (the end of this file) take both across every os.fork
of the process, ours (from the main thread only) and the user's, so no child starts with a lock a
watcher holds; a process the user forks meanwhile adopts the tier-0 engines and publishes tier 1 itself.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
import time
import warnings

from kcompile.ir.thread_budget import BUDGET

from .codelib import LLVM_LOCK

STUB_PREFIX = "kc.tier."
CHILD_LIMIT_S = 300.0
_watchers: list = []          # running watcher threads (fork_compile.parallel_allowed does not count them)
_settled: list = []           # publish callbacks to run again once no child compiles any more
_lock = threading.Lock()
_optimized_first = 0          # optimized_first() blocks open (compiles there are not tiered)
_pending: dict = {}           # TieredEngine -> (load, ready, describe, holds a budget core) until published
_own_fork = False             # fork_compile.fork is forking (its children adopt nothing)


def enabled() -> bool:
    return _optimized_first == 0 and os.environ.get("KCOMPILE_TIER_UP", "").strip() != "0"


@contextlib.contextmanager
def optimized_first():
    """Compiles inside build the optimized code before the first call: a caller about to run a long
    loop (fit over many steps: frontend/training/backend.long_run) gains nothing from tier 0, whose
    steps run 4-8 times slower until tier 1 is published (a cold MNIST MLP epoch took ~0.35-0.5 s
    longer tiered)."""
    global _optimized_first
    _optimized_first += 1
    try:
        yield
    finally:
        _optimized_first -= 1


def watchers() -> int:
    """How many watcher threads run now."""
    with _lock:
        return sum(t.is_alive() for t in _watchers)


def fork_child(work) -> int | None:
    """Fork a niced child that runs work() and exits (0 if it returned); its pid, or None if no fork."""
    from .fork_compile import fork
    try:
        pid = fork()
    except OSError:     # no memory or no process left for a child
        return None
    if pid == 0:
        status = 0
        try:
            os.environ["KCOMPILE_PARALLEL_COMPILE"] = "0"   # no helper of its own
            try:
                os.nice(10)     # the caller's tier-0 compiles and calls come first
            except OSError:
                pass
            work()
        except BaseException:
            status = 1
        finally:
            os._exit(status)
    return pid


class TieredEngine:
    """A JITEngine's interface over tier 0 now and tier 1 once published (see the module docstring)."""

    def __init__(self, tier0, stubs, slots: dict, stub_addresses: dict):
        self.tier = 0
        self._current = tier0
        self._keep = [tier0, stubs]          # every tier's code stays loaded: a call may still run in it
        self._slots = slots                  # entry symbol -> address of the stub's function pointer
        self._stubs = stub_addresses         # entry symbol -> the stub's address (what callers get)
        self._binders: list = []
        self._published: list = []           # callbacks after publishing (thread tuners retune)
        self._lock = LLVM_LOCK               # (one lock: binders and publish both reach into LLVM's tables)
        self.failure: BaseException | None = None
        self.done = threading.Event()

    def address(self, symbol: str) -> int:
        stub = self._stubs.get(symbol)
        return stub if stub is not None else self._current.address(symbol)

    def global_address(self, symbol: str) -> int:
        return self._current.global_address(symbol)

    def bind_globals(self, binder) -> None:
        """binder(global_address): writes into the code's globals; run now and again for tier 1."""
        with self._lock:
            binder(self._current.global_address)
            self._binders.append(binder)

    def on_publish(self, callback) -> None:
        """callback() once tier 1 runs (at once if it does already)."""
        with self._lock:
            if self.tier == 0:
                self._published.append(callback)
                return
        callback()

    def publish(self, engine) -> None:
        """Make tier 1 (a JITEngine of the same IR) the code every entry runs from now on."""
        with self._lock:
            for binder in self._binders:
                binder(engine.global_address)
            for symbol, slot in self._slots.items():
                ctypes.c_void_p.from_address(slot).value = engine.address(symbol)   # one aligned store
            self._keep.append(engine)
            self._current, self.tier = engine, 1
            callbacks, self._published = self._published, []
        with _lock:
            _settled.extend(callbacks)
        for callback in callbacks:
            callback()


def exported_entries(module) -> list:
    """(name, return type, [argument types]) of a parsed module's defined, externally visible functions."""
    out = []
    for fn in module.functions:
        if fn.is_declaration or fn.linkage.name not in ("external",) or fn.name.startswith("llvm."):
            continue
        fty = str(fn.global_value_type)
        out.append((fn.name, fty[:fty.index(" (")], [str(a.type) for a in fn.arguments]))
    return out


def entry_signatures(module) -> list:
    """exported_entries from the llvmlite module codegen built, before it is printed (pointers are `ptr`)."""
    from llvmlite import ir

    def text(t) -> str:
        return "ptr" if isinstance(t, ir.PointerType) else str(t)
    return [(fn.name, text(fn.ftype.return_type), [text(a) for a in fn.ftype.args])
            for fn in module.functions if fn.blocks and fn.linkage in ("", "external")]


def stub_module_text(entries: list, triple: str) -> str:
    """One stub per entry: load the published function pointer, musttail-call it with the same arguments."""
    lines = [f'target triple = "{triple}"', ""]
    for name, ret, args in entries:
        slot = f'@"{STUB_PREFIX}{name}"'
        params = ", ".join(f"{t} %a{k}" for k, t in enumerate(args))
        lines += [f"{slot} = global ptr null, align 8",
                  f'define {ret} @"{name}"({params}) {{',
                  f"  %f = load atomic ptr, ptr {slot} monotonic, align 8",
                  f"  %r = musttail call {ret} %f({params})",
                  f"  ret {ret} %r",
                  "}", ""]
    return "\n".join(lines)


def tiered_engine(tier0, entries: list, target):
    """Stubs for `entries` (entry_signatures or exported_entries of the glue) over tier0 (a JITEngine):
    a TieredEngine."""
    from .codelib import CodeLibrary, JITEngine
    code = CodeLibrary("kc_tier_stubs", stub_module_text(entries, target.triple), target, 0).emit_jit_object()
    stubs = JITEngine.from_object(code, target, 0)
    slots = {name: stubs.global_address(STUB_PREFIX + name) for name, _, _ in entries}
    addresses = {name: stubs.address(name) for name, _, _ in entries}
    for name, slot in slots.items():
        ctypes.c_void_p.from_address(slot).value = tier0.address(name)
    return TieredEngine(tier0, stubs, slots, addresses)


def watch(engine: TieredEngine, pid: int | None, load, describe: str, ready=None) -> None:
    """Start the watcher: wait for the child `pid` (None: none was forked), then publish load() (a
    JITEngine: the child's entry lists every kernel it links, so watchers need no order). ready():
    whether tier 1 is in the disk cache (a process forked meanwhile polls it: _after_fork_in_child)."""
    if pid is not None:
        # the child's core: native calls offered the default count leave it to the child meanwhile (tier
        # 0 with both cores starved a niced child: a cold MNIST fit's epoch took 6.6 s once, 1.8 s untiered)
        BUDGET.acquire(1)
    thread = threading.Thread(target=_publish_when_ready,
                              args=(engine, lambda: _reap_holding_core(pid), load, describe),
                              name=f"kcompile-tier-up {describe}", daemon=False)
    with _lock:
        _watchers[:] = [t for t in _watchers if t.is_alive()] + [thread]
        _pending[engine] = (load, ready, describe, pid is not None)
    thread.start()


def _publish_when_ready(engine: TieredEngine, wait_for_code, load, describe: str) -> None:
    """A watcher's (or an adopting process's) thread: wait_for_code(), then publish load()."""
    try:
        wait_for_code()
        with LLVM_LOCK:
            engine.publish(load())
    except BaseException as e:    # tier 0 keeps running: correct, slower
        engine.failure = e
        warnings.warn(f"kcompile: optimized code for {describe} could not be built ({e!r}); "
                      "its unoptimized code stays in use", RuntimeWarning, stacklevel=1)
    finally:
        engine.done.set()
        with _lock:
            _pending.pop(engine, None)
            _watchers[:] = [t for t in _watchers if t.is_alive() and t is not threading.current_thread()]
            again = list(_settled) if not _watchers else []
            if again:
                _settled.clear()
        for callback in again:    # thread counts tuned while a child took a core: tune them again
            callback()


def _reap_holding_core(pid: int | None) -> None:
    """_reap the child (if one was forked), then give back the budget core watch() took for it."""
    if pid is None:
        return
    try:
        _reap(pid)
    finally:
        BUDGET.release(1)


def _reap(pid: int) -> None:
    """Wait for the child; one still running after CHILD_LIMIT_S (far beyond any compile: it could only
    be stuck) is killed, and load() then finds nothing in the cache and compiles tier 1 in-process."""
    deadline, pause = time.monotonic() + CHILD_LIMIT_S, 0.001
    try:
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return
            time.sleep(pause)
            pause = min(2 * pause, 0.01)
    except (ChildProcessError, ProcessLookupError):
        pass


def wait(timeout: float | None = None) -> bool:
    """Wait until every tiered compile of this process runs its optimized code (kc.wait_for_optimized_code;
    a benchmark of a steady state calls it first); False if some did not within `timeout` seconds."""
    deadline = None if timeout is None else time.monotonic() + timeout
    with _lock:
        threads = list(_watchers)
    for t in threads:
        t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
    return not any(t.is_alive() for t in threads)


# -- forks -------------------------------------------------------------------------------------------
# Every os.fork of the process (ours: fork_compile.fork; the user's: multiprocessing's fork start method)
# runs these: the fork waits until no watcher holds LLVM_LOCK or the watcher list's lock, so no child
# starts with a lock held for good. A child the user forked while tier-up children ran has no watcher
# of its own (threads do not survive a fork): it adopts the tier-0 engines, polls the disk cache for their
# tier 1 (the parent's children write it there) and publishes it itself, and gives back the cores the
# parent held for its children. Our own children (compile helpers) adopt nothing: they leave with os._exit.

@contextlib.contextmanager
def own_fork():
    """Around fork_compile.fork's os.fork: its child is one of ours."""
    global _own_fork
    _own_fork = True
    try:
        yield
    finally:
        _own_fork = False


def _before_fork() -> None:
    LLVM_LOCK.acquire()
    _lock.acquire()


def _after_fork_in_parent() -> None:
    _lock.release()
    LLVM_LOCK.release()


def _after_fork_in_child() -> None:
    _lock.release()
    LLVM_LOCK.release()
    _watchers.clear()
    if _own_fork:
        return
    adopted, _pending_copy = [], dict(_pending)
    for engine, (load, ready, describe, holds_core) in _pending_copy.items():
        if holds_core:
            BUDGET.release(1)
        if ready is not None:
            # a daemon: a worker process exits without waiting for it (it has nothing to persist)
            adopted.append(threading.Thread(target=_publish_when_ready,
                                            args=(engine, lambda r=ready: _poll(r), load, describe),
                                            name=f"kcompile-tier-up {describe} (forked)", daemon=True))
    _watchers.extend(adopted)
    for thread in adopted:
        thread.start()


def _poll(ready) -> None:
    """In a process forked while the parent's tier-up child ran: wait until tier 1 is in the cache (after
    CHILD_LIMIT_S, load() compiles it here instead)."""
    deadline = time.monotonic() + CHILD_LIMIT_S
    while not ready() and time.monotonic() < deadline:
        time.sleep(0.02)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)
