"""List filters: a documented subset of AIP-160, compiled to SQL predicates.

Grammar (case-sensitive keywords):

    expression := term { "OR" term }
    term       := factor { ["AND"] factor }        -- juxtaposition is AND, as in AIP-160
    factor     := ["NOT" | "-"] ( "(" expression ")" | comparison )
    comparison := FIELD OPERATOR VALUE
    OPERATOR   := "=" | "!=" | "<" | "<=" | ">" | ">=" | ":"   -- ":" is "has" (list contains)
    VALUE      := "double-quoted string" | bare word (number, enum name, true/false)

Each resource declares its filterable fields (`FilterSchema`); a field it does
not declare, an operator the field does not support or a value of the wrong
type is an INVALID_ARGUMENT on `filter` that says what is allowed. The result
is a SQLAlchemy boolean expression applied inside the query, next to the data
scope predicate, so filters never post-process results.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from crm_shared.errors import InvalidArgument

MAX_FILTER_DEPTH = 20

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<op><=|>=|!=|=|<|>|:)
      | (?P<lparen>\()
      | (?P<rparen>\))
      | (?P<minus>-(?=[A-Za-z_(]))
      | (?P<word>[^\s()=<>!:"]+)
    )""",
    re.VERBOSE,
)


def invalid_filter(description: str) -> InvalidArgument:
    return InvalidArgument.for_field("filter", description, reason="INVALID_FILTER")


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    position: int


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise invalid_filter(f"unexpected character at position {pos}: {text[pos : pos + 10]!r}")
        kind = match.lastgroup or ""
        tokens.append(Token(kind, match.group(kind), match.start(kind)))
        pos = match.end()
    return tokens


# --- syntax tree -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    field: str
    op: str
    value: str
    quoted: bool


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class And:
    operands: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    operands: tuple[Node, ...]


Node = Comparison | Not | And | Or


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise invalid_filter("unexpected end of filter")
        self.i += 1
        return token

    def is_word(self, text: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "word" and token.text == text

    def expression(self, depth: int) -> Node:
        if depth > MAX_FILTER_DEPTH:
            raise invalid_filter("filter is nested too deeply")
        terms = [self.term(depth)]
        while self.is_word("OR"):
            self.take()
            terms.append(self.term(depth))
        return terms[0] if len(terms) == 1 else Or(tuple(terms))

    def term(self, depth: int) -> Node:
        factors = [self.factor(depth)]
        while True:
            token = self.peek()
            if token is None or token.kind == "rparen" or self.is_word("OR"):
                break
            if self.is_word("AND"):
                self.take()
            factors.append(self.factor(depth))
        return factors[0] if len(factors) == 1 else And(tuple(factors))

    def factor(self, depth: int) -> Node:
        token = self.peek()
        if token is not None and (self.is_word("NOT") or token.kind == "minus"):
            self.take()
            return Not(self.factor(depth + 1))
        if token is not None and token.kind == "lparen":
            self.take()
            inner = self.expression(depth + 1)
            closing = self.take()
            if closing.kind != "rparen":
                raise invalid_filter(f"expected ')' at position {closing.position}")
            return inner
        return self.comparison()

    def comparison(self) -> Comparison:
        name = self.take()
        if name.kind != "word" or name.text in ("AND", "OR", "NOT"):
            raise invalid_filter(f"expected a field name at position {name.position}, found {name.text!r}")
        op = self.take()
        if op.kind != "op":
            raise invalid_filter(f"expected an operator after {name.text!r} (one of = != < <= > >= :)")
        value = self.take()
        if value.kind == "string":
            return Comparison(name.text, op.text, _unescape(value.text[1:-1]), True)
        if value.kind == "word":
            return Comparison(name.text, op.text, value.text, False)
        raise invalid_filter(f"expected a value after {name.text} {op.text}")


def _unescape(body: str) -> str:
    # Only \" and \\ are escapes; everything else (including non-ASCII text) is literal.
    return re.sub(r"\\(.)", lambda m: m.group(1), body)


def parse_filter(text: str) -> Node | None:
    tokens = tokenize(text)
    if not tokens:
        return None
    parser = _Parser(tokens)
    node = parser.expression(0)
    if parser.peek() is not None:
        leftover = parser.peek()
        raise invalid_filter(f"unexpected {leftover.text!r} at position {leftover.position}")
    return node


# --- fields and compilation ----------------------------------------------------------------------

Compile = Callable[[str, Any], sa.ColumnElement[bool]]
_ORDERING = {"=", "!=", "<", "<=", ">", ">="}


def _compare(column: sa.ColumnElement, op: str, value: Any) -> sa.ColumnElement[bool]:
    return {
        "=": lambda: column == value,
        "!=": lambda: column != value,
        "<": lambda: column < value,
        "<=": lambda: column <= value,
        ">": lambda: column > value,
        ">=": lambda: column >= value,
    }[op]()


@dataclass(frozen=True)
class FilterField:
    """How one filterable field is typed and turned into SQL."""

    operators: frozenset[str]
    convert: Callable[[str, bool], Any]
    to_sql: Compile
    description: str = ""

    @staticmethod
    def string(column: sa.ColumnElement, *, operators: str = "= !=") -> FilterField:
        return FilterField(
            frozenset(operators.split()), lambda v, q: v, lambda op, v: _compare(column, op, v)
        )

    @staticmethod
    def number(column: sa.ColumnElement) -> FilterField:
        def convert(value: str, quoted: bool) -> float:
            try:
                return float(value)
            except ValueError:
                raise invalid_filter(f"{value!r} is not a number") from None

        return FilterField(frozenset(_ORDERING), convert, lambda op, v: _compare(column, op, v))

    @staticmethod
    def boolean(column: sa.ColumnElement) -> FilterField:
        def convert(value: str, quoted: bool) -> bool:
            if value not in ("true", "false"):
                raise invalid_filter(f"{value!r} is not a boolean; use true or false")
            return value == "true"

        return FilterField(frozenset({"=", "!="}), convert, lambda op, v: _compare(column, op, v))

    @staticmethod
    def timestamp(column: sa.ColumnElement) -> FilterField:
        def convert(value: str, quoted: bool) -> datetime:
            try:
                moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise invalid_filter(
                    f'{value!r} is not an RFC 3339 timestamp like "2026-01-31T00:00:00Z"'
                ) from None
            if moment.tzinfo is None:
                raise invalid_filter(f"timestamp {value!r} needs a time zone (e.g. a trailing Z)")
            return moment

        return FilterField(frozenset(_ORDERING), convert, lambda op, v: _compare(column, op, v))

    @staticmethod
    def enum(column: sa.ColumnElement, values: Mapping[str, Any]) -> FilterField:
        """`values` maps the API's enum names (e.g. CUSTOMER_TIER_A) to stored values."""

        def convert(value: str, quoted: bool) -> Any:
            if value not in values:
                raise invalid_filter(f"{value!r} is not one of {', '.join(sorted(values))}")
            return values[value]

        return FilterField(frozenset({"=", "!="}), convert, lambda op, v: _compare(column, op, v))

    @staticmethod
    def custom(
        operators: str, to_sql: Compile, convert: Callable[[str, bool], Any] | None = None
    ) -> FilterField:
        return FilterField(frozenset(operators.split()), convert or (lambda v, q: v), to_sql)


@dataclass(frozen=True)
class FilterSchema:
    fields: Mapping[str, FilterField] = field(default_factory=dict)

    def compile(self, text: str) -> sa.ColumnElement[bool] | None:
        node = parse_filter(text)
        return None if node is None else self._compile(node)

    def _compile(self, node: Node) -> sa.ColumnElement[bool]:
        if isinstance(node, And):
            return sa.and_(*(self._compile(n) for n in node.operands))
        if isinstance(node, Or):
            return sa.or_(*(self._compile(n) for n in node.operands))
        if isinstance(node, Not):
            return sa.not_(self._compile(node.operand))
        spec = self.fields.get(node.field)
        if spec is None:
            raise invalid_filter(
                f"unknown field {node.field!r}; filterable fields: {', '.join(sorted(self.fields))}"
            )
        if node.op not in spec.operators:
            allowed = " ".join(sorted(spec.operators))
            raise invalid_filter(
                f"operator {node.op!r} is not supported on {node.field!r}; use one of: {allowed}"
            )
        return spec.to_sql(node.op, spec.convert(node.value, node.quoted))
