"""loops.optional_masked_load: an optional operand's masked load (a null bias, a scalar per-column
table) gives zeros when the operand is absent and never addresses it then (a masked-off lane at an
unmapped address costs a fault-suppression assist per load: 8 % of a bias-less convolution), and the
lanes of a present one up to the mask, even right before an unmapped page."""
import ctypes
import mmap

import numpy as np
import pytest
from llvmlite import ir

from kcompile.compiler.kernels.standalone import JitModule
from kcompile.compiler.loops import F32, I64, gep, lane_mask, optional_masked_load, store_vec
from kcompile.compiler.target import host_target

LANES = 16 if host_target().has("avx512f") else 8


def load_kernel():
    """`void f(f32* src, f32* out, i64 nvalid)`: out[:LANES] = src's first nvalid lanes, zeros past
    them, all zeros when src is null."""
    mod = ir.Module("optional_load")
    fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), [F32.as_pointer(), F32.as_pointer(), I64]), name="f")
    src, out, nvalid = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    present = b.icmp_unsigned("!=", src, ir.Constant(src.type, None))
    store_vec(b, optional_masked_load(b, b.gep(src, [ir.Constant(I64, 0)]), present, lane_mask(b, nvalid, LANES),
                                      LANES), out)
    b.ret_void()
    return mod, fn


def _through_casts(value):
    while isinstance(value, ir.CastInstr):
        value = value.operands[0]
    return value


def test_an_absent_operand_is_read_at_a_stack_slot_never_at_its_pointer():
    _, fn = load_kernel()
    (load,) = [i for blk in fn.blocks for i in blk.instructions
               if isinstance(i, ir.CallInstr) and i.callee.name.startswith("llvm.masked.load")]
    address = _through_casts(load.args[0])
    assert isinstance(address, ir.SelectInstr)
    assert isinstance(_through_casts(address.operands[2]), ir.AllocaInstr)


@pytest.fixture(scope="module")
def call():
    mod, _ = load_kernel()
    jit = JitModule(mod)
    f = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)(jit.address("f"))
    yield f
    del jit


def test_absent_gives_zeros(call):
    out = np.full(LANES, 7.0, np.float32)
    call(None, out.ctypes.data, LANES)
    assert (out == 0).all()


@pytest.mark.parametrize("nvalid", [1, 5, LANES])
def test_present_reads_the_masked_lanes_up_to_an_unmapped_page(call, nvalid):
    page = mmap.PAGESIZE
    region = mmap.mmap(-1, 2 * page)
    base = ctypes.addressof(ctypes.c_char.from_buffer(region))
    ctypes.CDLL(None).mprotect(ctypes.c_void_p(base + page), ctypes.c_size_t(page), 0)  # PROT_NONE
    values = np.frombuffer(region, np.float32, count=page // 4)
    values[-nvalid:] = np.arange(1, nvalid + 1, dtype=np.float32)
    out = np.full(LANES, 7.0, np.float32)
    call(base + page - 4 * nvalid, out.ctypes.data, nvalid)
    np.testing.assert_array_equal(out, np.r_[np.arange(1, nvalid + 1), np.zeros(LANES - nvalid)].astype(np.float32))
    del values
    ctypes.CDLL(None).mprotect(ctypes.c_void_p(base + page), ctypes.c_size_t(page), 3)
    region.close()
