"""Textual IR: print a Graph in an MLIR-like form and parse it back to the same Graph.

    graph @mlp(%x: f32[N,784]) -> (logits: f32[N,10]) {
      %dense_kernel = param "dense/kernel" : f32[784,10]
      %0 = matmul(%x, %dense_kernel) : f32[N,10] loc("dense")
      %1, %2 = split(%0) {sections=[4, 6]} : f32[N,4], f32[N,6]
      return %0
    }

Attributes equal to their schema default are left out (the parser fills them back in). Values
print as their name when it is unique, else as a counter (%0, %1, ...) that parses back to an
unnamed Value; names that are not plain identifiers are quoted (%"a/b"). Constants print as
`array(f32[2], [0.5, 1.0])` with every element in its shortest exact (round-tripping) form.
Parameter initial values live beside the graph, so a parsed graph has parameters without values.

A region (a graph-valued attribute, e.g. a scan body) prints as a full nested `graph @name(...)
-> (...) { ... }` block, indented one level deeper than its node; its values have their own
names, since a region is closed:

      %0, %1 = scan(%h, %xs) {body=graph @step(%h: f32[N,4], %x: f32[N,4]) -> (h: f32[N,4], y: f32[N,4]) {
        %0 = add(%h, %x) : f32[N,4]
        return %0, %0
      }, carries=1} : f32[N,4], f32[3,N,4]
"""
from __future__ import annotations

import json
import re

import numpy as np

from .dtypes import DType
from .errors import IRError, ParseError
from .graph import Graph, Node, Value
from .registry import OPS, REQUIRED
from .types import TensorType
from .verifier import verify, verify_region

_IDENT = re.compile(r"[^\W\d]\w*")
_NAME = re.compile(r"[^\W\d][\w.$-]*")  # bare %value / @graph names
_COUNTER = re.compile(r"[0-9]+")         # printer-made names: parse back as unnamed
_KEYWORDS = ("true", "false", "inf", "nan", "array")  # identifiers that mean something else as values
_STR = r'"(?:[^"\\\n]|\\.)*"'
_TOKEN = re.compile(rf"""
    (?P<space>\s+|//[^\n]*)
  | (?P<value>%(?:[\w.$-]+|{_STR}))
  | (?P<global>@(?:[\w.$-]+|{_STR}))
  | (?P<number>-?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|inf\b|nan\b))
  | (?P<ident>[^\W\d]\w*)
  | (?P<string>{_STR})
  | (?P<punct>->|[(){{}}\[\],:=])
""", re.VERBOSE)


# -- printer -----------------------------------------------------------------------------
def print_graph(graph: Graph) -> str:
    """The canonical text of `graph` (parse_graph gives it back)."""
    names = _Namer()
    args = ", ".join(f"{names.define(v)}: {v.type}" for v in graph.inputs)
    outs = ", ".join(f"{_symbol(n)}: {v.type}" for n, v in zip(graph.output_names, graph.outputs))
    lines = [f"graph @{_name(graph.name)}({args}) -> ({outs}) {{"]
    lines += [f"  {names.define(p)} = param {_quote(p.param_name)} : {p.type}" for p in graph.params]
    lines += ["  " + _print_node(node, names) for node in graph.nodes]
    lines += ["  return " + ", ".join(names.use(v) for v in graph.outputs), "}"]
    return "\n".join(lines) + "\n"


class _Namer:
    """Gives each Value its printed %name: its own name when free, else the next counter."""

    def __init__(self):
        self.by_value, self.taken, self.counter = {}, set(), 0

    def define(self, v: Value) -> str:
        name = v.name
        if not name or _COUNTER.fullmatch(name) or name in self.taken:
            name, self.counter = str(self.counter), self.counter + 1
        self.taken.add(name)
        self.by_value[v] = "%" + _name(name)
        return self.by_value[v]

    def use(self, v: Value) -> str:
        # An undefined value (a malformed graph) still prints, so the text shows the fault.
        return self.by_value[v] if v in self.by_value else self.define(v)


def _print_node(node: Node, names: _Namer) -> str:
    ins = ", ".join(names.use(v) for v in node.inputs)
    outs = ", ".join(names.define(v) for v in node.outputs)
    types = ", ".join(str(v.type) for v in node.outputs)
    loc = f" loc({_quote(node.name)})" if node.name is not None else ""
    return f"{outs} = {node.op}({ins}){_print_attrs(node)} : {types}{loc}"


def _print_attrs(node: Node) -> str:
    schema = OPS[node.op].attrs if node.op in OPS else {}
    shown = []
    for key, value in node.attrs.items():
        text, spec = _attr_text(value), schema.get(key)
        if spec is not None and spec.default is not REQUIRED and \
                text == _attr_text(spec.normalize(spec.default, node.op, key)):
            continue  # comparing texts keeps -0.0 apart from 0.0
        shown.append(f"{key}={text}")
    return " {" + ", ".join(shown) + "}" if shown else ""


def _attr_text(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    if isinstance(v, str):
        return _quote(v)
    if isinstance(v, DType):
        return v.name
    if isinstance(v, Graph):  # a region: its own text, one level deeper
        return print_graph(v).rstrip("\n").replace("\n", "\n  ")
    if isinstance(v, np.ndarray):
        items = ", ".join(_scalar_text(x) for x in v.reshape(-1))
        return f"array({TensorType(v.shape, v.dtype)}, [{items}])"
    if isinstance(v, (tuple, list)):  # symbols in shapes print bare: [N, 4]
        return "[" + ", ".join(_symbol(x) if isinstance(x, str) else _attr_text(x) for x in v) + "]"
    raise IRError(f"cannot print attribute value {v!r} of type {type(v).__name__}")


def _scalar_text(x) -> str:
    # str() of a NumPy scalar is the shortest text that parses back to the same value of its type
    return ("true" if x else "false") if isinstance(x, np.bool_) else str(x)


def _symbol(s: str) -> str:
    return s if _IDENT.fullmatch(s) and s not in _KEYWORDS else _quote(s)


def _quote(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def _name(s: str) -> str:
    return s if _NAME.fullmatch(s) or _COUNTER.fullmatch(s) else _quote(s)


# -- tokenizer ---------------------------------------------------------------------------
class _Tok:
    __slots__ = ("kind", "text", "line", "col")

    def __init__(self, kind, text, line, col):
        self.kind, self.text, self.line, self.col = kind, text, line, col

    def describe(self) -> str:
        return "end of input" if self.kind == "eof" else repr(self.text)


def _tokenize(text: str) -> list:
    toks, pos, line, line_start = [], 0, 1, 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ParseError(f"unexpected character {text[pos]!r}", line, pos - line_start + 1)
        kind = m.lastgroup
        if kind != "space":
            toks.append(_Tok(m.group() if kind == "punct" else kind, m.group(), line, pos - line_start + 1))
        newlines = m.group().count("\n")
        if newlines:
            line, line_start = line + newlines, m.start() + m.group().rindex("\n") + 1
        pos = m.end()
    toks.append(_Tok("eof", "", line, pos - line_start + 1))
    return toks


# -- parser ------------------------------------------------------------------------------
def parse_graph(text: str) -> Graph:
    """Parse the text form; raises ParseError with line and column on any fault."""
    return _Parser(text).graph()


class _Parser:
    def __init__(self, text: str):
        self.toks, self.i = _tokenize(text), 0
        self.values: dict = {}

    # token helpers
    def next(self) -> _Tok:
        tok = self.toks[self.i]
        if tok.kind != "eof":   # stay on the end: a caller that takes any token (array items) must not run past it
            self.i += 1
        return tok

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def accept(self, kind: str, text: str | None = None):
        tok = self.peek()
        if tok.kind == kind and (text is None or tok.text == text):
            return self.next()
        return None

    def expect(self, kind: str, what: str | None = None, text: str | None = None) -> _Tok:
        tok = self.next()
        if tok.kind != kind or (text is not None and tok.text != text):
            raise self.fail(tok, f"expected {what or repr(text or kind)}, got {tok.describe()}")
        return tok

    def fail(self, tok: _Tok, message: str) -> ParseError:
        return ParseError(message, tok.line, tok.col)

    def listed(self, item) -> list:
        """item (',' item)*"""
        out = [item()]
        while self.accept(","):
            out.append(item())
        return out

    def separated(self, item, close: str) -> list:
        """item (',' item)* up to the closing punctuation, which is consumed."""
        if self.accept(close):
            return []
        out = self.listed(item)
        self.expect(close, f"',' or '{close}'")
        return out

    # grammar
    def graph(self) -> Graph:
        graph = self.graph_block(self.expect("ident", "'graph'", "graph"), None)
        self.expect("eof", "end of input after '}'")
        return graph

    def region(self, start: _Tok) -> Graph:
        """A nested graph block as an attribute value; its value names are its own (regions are closed)."""
        outer, self.values = self.values, {}
        try:
            return self.graph_block(start, f"line {start.line}, column {start.col}")
        finally:
            self.values = outer

    def graph_block(self, start: _Tok, region_at: str | None) -> Graph:
        name = self.string_or_bare(self.expect("global", "a graph name like @main"), 1)
        self.expect("(")
        inputs = self.separated(self.argument, ")")
        self.expect("->")
        self.expect("(")
        header = self.separated(self.result, ")")
        self.expect("{")
        params, nodes = [], []
        while not (ret := self.accept("ident", "return")):
            self.statement(params, nodes)
        outputs = self.listed(self.use)
        self.expect("}")
        self.check_results(ret, header, outputs)
        return self.finish(ret, Graph(name, inputs, params, nodes, outputs, None, [n for n, _ in header]),
                           region_at)

    def argument(self) -> Value:
        tok = self.expect("value", "an input like %x")
        self.expect(":")
        return self.define(tok, Value(self.type(), self.value_name(tok)))

    def result(self):
        tok = self.next()
        if tok.kind not in ("ident", "string"):
            raise self.fail(tok, f"expected an output name, got {tok.describe()}")
        self.expect(":")
        return self.string_or_bare(tok, 0), self.type()

    def statement(self, params: list, nodes: list):
        if self.peek().kind != "value":
            raise self.fail(self.peek(), f"expected a statement like '%0 = op(...)' or 'return', "
                                         f"got {self.peek().describe()}")
        results = self.listed(lambda: self.expect("value", "a result like %1"))
        self.expect("=")
        op = self.expect("ident", "an op name or 'param'")
        if op.text == "param" and self.peek().kind == "string":
            params.append(self.param(results, op))
        else:
            nodes.append(self.node(results, op, nodes))

    def param(self, results: list, op: _Tok) -> Value:
        if len(results) != 1:
            raise self.fail(op, "a param defines exactly one value")
        pname = self.string_or_bare(self.next(), 0)
        self.expect(":")
        return self.define(results[0], Value(self.type(), self.value_name(results[0]), param_name=pname))

    def node(self, results: list, op: _Tok, nodes: list) -> Node:
        self.expect("(")
        ins = self.separated(self.use, ")")
        raw = dict(self.separated(self.attribute, "}")) if self.accept("{") else {}
        self.expect(":")
        types = self.listed(self.type)
        loc = None
        if self.accept("ident", "loc"):
            self.expect("(")
            loc = self.string_or_bare(self.expect("string", "a location string"), 0)
            self.expect(")")
        if len(types) != len(results):
            raise self.fail(op, f"{len(results)} result(s) but {len(types)} type(s)")
        node = Node(op.text, ins, self.checked_attrs(op, len(nodes), ins, raw, types, loc), types, loc,
                    [self.value_name(t) for t in results])
        for tok, v in zip(results, node.outputs):
            self.define(tok, v)
        return node

    def checked_attrs(self, op: _Tok, index: int, ins: list, raw: dict, types: list, loc) -> dict:
        """Normalize attributes and check the printed types against inference, as the builder does."""
        if op.text not in OPS:
            raise self.fail(op, f"unknown op '{op.text}'")
        where = f"node #{index}" + (f" '{loc}'" if loc is not None else "")
        try:
            attrs = OPS[op.text].normalize_attrs(raw, where)
            inferred = OPS[op.text].infer_types([v.type for v in ins], attrs, where)
        except IRError as e:
            raise self.fail(op, str(e)) from None
        if inferred != types:
            raise self.fail(op, f"{where} ({op.text}): printed types {', '.join(map(str, types))} but inference gives "
                                f"{', '.join(map(str, inferred))}")
        return attrs

    def attribute(self):
        key = self.expect("ident", "an attribute name")
        self.expect("=")
        return key.text, self.attr_value()

    def attr_value(self):
        tok = self.next()
        if tok.kind == "number":
            return _number(tok.text)
        if tok.kind == "string":
            return self.string_or_bare(tok, 0)
        if tok.kind == "[":
            return self.separated(self.attr_value, "]")
        if tok.kind == "ident" and tok.text in ("true", "false"):
            return tok.text == "true"
        if tok.kind == "ident" and tok.text == "array" and self.accept("("):
            return self.array(tok)
        if tok.kind == "ident" and tok.text == "graph" and self.peek().kind == "global":
            return self.region(tok)
        if tok.kind == "ident":
            return tok.text  # a dtype or a shape symbol
        raise self.fail(tok, f"expected an attribute value, got {tok.describe()}")

    def array(self, start: _Tok) -> np.ndarray:
        t = self.type()
        self.expect(",")
        self.expect("[")
        items = self.separated(self.next, "]")
        self.expect(")")
        if not t.is_static:
            raise self.fail(start, f"array type {t} must have a static shape")
        if len(items) != t.numel():
            raise self.fail(start, f"array {t} needs {t.numel()} elements, got {len(items)}")
        return np.array([self.element(tok, t.dtype) for tok in items], t.dtype.np).reshape(t.shape)

    def element(self, tok: _Tok, dt: DType):
        try:
            if dt.is_float and tok.kind == "number":
                return np.float64(float(tok.text)).astype(dt.np)  # shortest texts round-trip via f64
            if dt.is_int and tok.kind == "number" and _COUNTER.fullmatch(tok.text.lstrip("-")):
                return dt.np.type(int(tok.text))
            if dt.name == "bool" and tok.text in ("true", "false"):
                return tok.text == "true"
        except OverflowError:
            raise self.fail(tok, f"{tok.text} is out of range for {dt.name}") from None
        raise self.fail(tok, f"expected a {dt.name} array element, got {tok.describe()}")

    def type(self) -> TensorType:
        tok = self.expect("ident", "a type like f32[N,4]")
        self.expect("[")
        dims = self.separated(self.dim, "]")
        try:
            return TensorType(dims, tok.text)
        except (TypeError, ValueError) as e:
            raise self.fail(tok, f"bad type: {e}") from None

    def dim(self):
        tok = self.next()
        if tok.kind == "number" and _COUNTER.fullmatch(tok.text):
            return int(tok.text)
        if tok.kind == "ident":
            return tok.text
        raise self.fail(tok, f"expected a dimension (a size or a symbol like N), got {tok.describe()}")

    # values and names
    def use(self) -> Value:
        tok = self.expect("value", "a value like %x")
        key = self.key(tok)
        if key not in self.values:
            raise self.fail(tok, f"use of undefined value {tok.text}")
        return self.values[key]

    def define(self, tok: _Tok, v: Value) -> Value:
        key = self.key(tok)
        if key in self.values:
            raise self.fail(tok, f"value {tok.text} is defined twice")
        self.values[key] = v
        return v

    def key(self, tok: _Tok) -> str:
        return self.string_or_bare(tok, 1)

    def value_name(self, tok: _Tok):
        name = self.key(tok)
        return None if _COUNTER.fullmatch(tok.text[1:]) else name

    def string_or_bare(self, tok: _Tok, skip: int) -> str:
        body = tok.text[skip:]
        if not body.startswith('"'):
            return body
        try:
            return json.loads(body)
        except json.JSONDecodeError as e:
            raise self.fail(tok, f"bad string escape: {e.msg}") from None

    # whole-graph checks
    def check_results(self, ret: _Tok, header: list, outputs: list):
        if len(header) != len(outputs):
            raise self.fail(ret, f"the signature declares {len(header)} output(s), return gives {len(outputs)}")
        for j, ((name, t), v) in enumerate(zip(header, outputs)):
            if v.type != t:
                raise self.fail(ret, f"output {j} ('{name}') is declared {t} but returns {v.type}")

    def finish(self, ret: _Tok, graph: Graph, region_at: str | None) -> Graph:
        try:
            return verify(graph) if region_at is None else verify_region(graph, f"region at {region_at}")
        except IRError as e:
            raise self.fail(ret, str(e)) from None


def _number(text: str):
    return float(text) if any(c in text for c in ".eEin") else int(text)  # 1.0, 1e-07, inf, nan: floats
