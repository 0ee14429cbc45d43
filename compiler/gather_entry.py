"""`<entry>_gathered(const int64_t *args)`: gather a batch's rows from whole arrays, then run the entry.

fit's shuffled batches are rows of the dataset picked by the epoch's permutation. Gathering them in
NumPy costs a Python call per array and, the rows being scattered over the dataset, mostly memory
latency; here the step's own code copies them into the caller's batch buffers and runs on at once:

    args = {inputs, outputs, params, workspace, batch, nthreads,   (the packed entry's six)
            index, rows, gathers, count}
    index    const int64_t[batch]: the batch's row numbers
    rows     the row count of every gathered source
    gathers  `count` records of three int64: {input slot k, source address, bytes per row}
             (the caller's inputs[k] points to a buffer of at least batch rows)

Every index is checked against [0, rows) before anything is copied: one outside returns
STATUS_ROW_OUT_OF_RANGE and the step does not run (nothing is read out of bounds, nothing updated).
"""
from __future__ import annotations

from llvmlite import ir

from .loops import I8, I32, I64, for_range, i64
from .lower.context import STATUS_ROW_OUT_OF_RANGE

GATHERED_SUFFIX = "_gathered"
GATHERED_TYPE = ir.FunctionType(I32, [I64.as_pointer()])
ARGS = 10          # int64 words in the argument block
RECORD = 3         # int64 words per gather record


def gathered_wrapper(module: ir.Module, entry: ir.Function) -> None:
    """Add `<entry>_gathered` to the module (entry: a static-shape entry, pointer or block params)."""
    fn = ir.Function(module, GATHERED_TYPE, entry.name + GATHERED_SUFFIX)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    word = [b.load(b.gep(fn.args[0], [i64(k)])) for k in range(ARGS)]
    inputs_t, outputs_t, params_t, ws_t = entry.function_type.args[:4]
    inputs = b.inttoptr(word[0], inputs_t)
    batch, index_addr, rows, records_addr, count = word[4], word[6], word[7], word[8], word[9]
    index = b.inttoptr(index_addr, I64.as_pointer())
    records = b.inttoptr(records_addr, I64.as_pointer())
    bad = fn.append_basic_block("index.bad")
    with for_range(b, batch, name="check") as i:   # all indices first: a bad one copies nothing
        j = b.load(b.gep(index, [i]))
        ok_block = b.append_basic_block("index.ok")
        b.cbranch(b.icmp_unsigned("<", j, rows), ok_block, bad)   # (unsigned: a negative index is huge)
        b.position_at_end(ok_block)
    memcpy = module.declare_intrinsic("llvm.memcpy", [I8.as_pointer(), I8.as_pointer(), I64])
    with for_range(b, count, name="gather") as r:
        field = [b.load(b.gep(records, [b.add(b.mul(r, i64(RECORD)), i64(f))])) for f in range(RECORD)]
        dst = b.load(b.gep(inputs, [field[0]]))
        src = b.inttoptr(field[1], I8.as_pointer())
        row_bytes = field[2]
        with for_range(b, batch, name="row") as i:
            j = b.load(b.gep(index, [i]))
            b.call(memcpy, [b.gep(dst, [b.mul(i, row_bytes)]), b.gep(src, [b.mul(j, row_bytes)]), row_bytes,
                            ir.Constant(ir.IntType(1), 0)])
    args = [inputs, b.inttoptr(word[1], outputs_t), b.inttoptr(word[2], params_t), b.inttoptr(word[3], ws_t)]
    b.ret(b.call(entry, args + [batch, b.trunc(word[5], I32)]))
    b.position_at_end(bad)
    b.ret(ir.Constant(I32, STATUS_ROW_OUT_OF_RANGE))
