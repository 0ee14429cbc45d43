"""Errors raised by the IR: they name the op, the node and the offending types."""


class IRError(ValueError):
    """A malformed graph, node or attribute."""


class ShapeError(IRError):
    """Operand shapes or dtypes an op cannot accept."""


class VerificationError(IRError):
    """A graph that breaks an IR invariant."""


class ParseError(IRError):
    """Text that is not a valid graph; carries line and column."""

    def __init__(self, message: str, line: int, column: int):
        super().__init__(f"line {line}, column {column}: {message}")
        self.line = line
        self.column = column
