"""The NumPy reference interpreter, re-exported from its home beside the IR (kcompile.ir.interpreter)."""
from kcompile.ir import interpreter

InputError = interpreter.InputError
check_inputs = interpreter.check_inputs
run = interpreter.run

__all__ = ["InputError", "check_inputs", "run"]
