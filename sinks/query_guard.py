"""What a reader's query may be, decided on the engine's own parse tree (EXPLAIN AST).

The engine formats the text first (formatQuerySingleLine, the text passed as a parameter, so
it never runs): that refuses multi-statements and yields the one statement that will run. Its
AST then must be a read (SELECT, SHOW, DESCRIBE, EXISTS, EXPLAIN of a read) without INTO OUTFILE,
whose table functions are generators over no outside data, whose functions touch no files, models
or AI services, and whose system tables are catalogue tables. Quoting (`file`, "file") and
comments (file/**/(...)) are gone in the AST. readonly=1 on the session (sinks/query_run.py) is
the engine's second line: it refuses writes, DDL, settings and table functions that need more.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["QueryError", "Vetted", "vet"]

VERSION_NOTE = "warroom read-only endpoint"

# statements a reader may run (EXPLAIN AST node names)
_READS = frozenset(
    {
        "SelectWithUnionQuery",
        "ShowTables",  # also SHOW DATABASES / SHOW SETTINGS
        "ShowColumns",
        "DescribeQuery",
        "ExistsTableQuery",
        "ExistsDatabaseQuery",
        "ExistsViewQuery",
        "ExistsDictionaryQuery",
        "ShowCreateTableQuery",
    }
)
# generators over no outside data; everything else (file, url, loop, remote, merge, Python,
# executable, s3, ...) is refused whatever readonly would allow
TABLE_FUNCTIONS = frozenset(
    {"numbers", "numbers_mt", "generate_series", "generateseries", "values", "view", "null"}
)
# functions that read a host file or call out, beside the engine's categories below
_FUNCTIONS = frozenset({"file"})
FUNCTION_CATEGORIES = ("AI", "Introspection", "Machine Learning")
# system tables readers need (catalogue, clients' discovery); not processes, stack_trace, logs
SYSTEM_TABLES = frozenset(
    {
        "one",
        "numbers",
        "numbers_mt",
        "databases",
        "tables",
        "columns",
        "functions",
        "table_functions",
        "table_engines",
        "settings",
        "formats",
        "data_type_families",
        "aggregate_function_combinators",
        "collations",
        "time_zones",
        "build_options",
        "disks",
        "parts",
        "parts_columns",
        "dictionaries",
    }
)


class QueryError(Exception):
    """A request refused before it reached the store, in ClickHouse's terms."""

    def __init__(self, code: int, name: str, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.code = code
        self.name = name
        self.status = status

    def text(self) -> str:
        return f"Code: {self.code}. DB::Exception: {self} ({self.name}) ({VERSION_NOTE})\n"


@dataclass(frozen=True)
class Vetted:
    """The one statement that may run (the engine's formatting of what was sent)."""

    statement: str
    kind: str


@dataclass(frozen=True)
class _Node:
    depth: int
    kind: str
    name: str
    parent: int  # index of the parent node, -1 for the root


def _nodes(tree: str) -> list[_Node]:
    nodes: list[_Node] = []
    stack: list[int] = []
    for line in tree.splitlines():
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip(" "))
        words = line.split()
        while stack and nodes[stack[-1]].depth >= depth:
            stack.pop()
        name = words[1] if len(words) > 1 and not words[1].startswith("(") else ""
        nodes.append(_Node(depth, words[0], name, stack[-1] if stack else -1))
        stack.append(len(nodes) - 1)
    return nodes


def _denied(code: int, name: str, what: str) -> QueryError:
    return QueryError(
        code, name, f"{what} is not available through the warroom query endpoint", status=403
    )


def _readonly(kind: str) -> QueryError:
    return QueryError(
        164,
        "READONLY",
        f"warroom query endpoint is readonly: only SELECT, SHOW, DESCRIBE, EXISTS and EXPLAIN "
        f"of them are allowed, not {kind}",
    )


def check_tree(tree: str, database: str, denied_functions: frozenset[str]) -> str:
    """The statement kind of an EXPLAIN AST `tree`; QueryError when a reader may not run it."""
    nodes = _nodes(tree)
    if not nodes:
        raise _readonly("an empty query")
    root = nodes[0]
    kind = root.kind
    if kind == "Explain":
        inner = next((n for n in nodes if n.parent == 0 and n.kind != "Literal"), None)
        if inner is None or inner.kind not in _READS:
            raise _readonly(f"EXPLAIN of {inner.kind if inner else 'nothing'}")
    elif kind not in _READS:
        raise _readonly(kind)
    queries = _READS | {"Explain"}
    for node in nodes:
        parent = nodes[node.parent] if node.parent >= 0 else None
        if node.kind == "Literal" and parent is not None and parent.kind in queries:
            # a string right under a statement is INTO OUTFILE '<path>' (or its COMPRESSION)
            raise _denied(497, "ACCESS_DENIED", "INTO OUTFILE")
        if node.kind == "Function":
            fname = node.name.lower()
            if parent is not None and parent.kind == "TableExpression":
                if fname not in TABLE_FUNCTIONS:
                    raise _denied(497, "ACCESS_DENIED", f"table function {node.name}()")
            elif fname in denied_functions:
                raise _denied(497, "ACCESS_DENIED", f"function {node.name}()")
        if node.kind == "TableIdentifier":
            db, dot, table = node.name.partition(".")
            if not dot:
                db, table = database, node.name
            if db.lower() == "system" and table not in SYSTEM_TABLES:
                raise _denied(497, "ACCESS_DENIED", f"table system.{table}")
    return kind


Run = Callable[[str, Mapping[str, str] | None], str]


def denied_functions(run: Run) -> frozenset[str]:
    """Functions readers may not call: `file` and the engine's AI, introspection and
    machine-learning categories (read from system.functions, so new ones come along)."""
    categories = ", ".join(f"'{c}'" for c in FUNCTION_CATEGORIES)
    text = run(
        "SELECT lower(name) FROM system.functions WHERE hasAny(splitByString(', ', categories), "
        f"[{categories}])",
        None,
    )
    return frozenset(text.split()) | _FUNCTIONS


def _escaped(text: str) -> str:
    """A query parameter's value as the engine reads it (the Escaped format of TSV)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")


def vet(
    run: Run, sql: str, params: Mapping[str, str] | None, database: str, denied: frozenset[str]
) -> Vetted:
    """The statement to run in place of `sql`, or QueryError.

    `run(sql, params)` runs a query on the reader's own (readonly) session and returns its
    TabSeparatedRaw text; only formatting and EXPLAIN AST go through it here."""
    statement = run("SELECT formatQuerySingleLine({q:String})", {"q": _escaped(sql)}).rstrip("\n")
    if "\n" in statement:  # one statement is one line here; anything else is not understood
        raise _readonly("a statement the endpoint cannot vet")
    tree = run(f"EXPLAIN AST {statement}", params)
    return Vetted(statement, check_tree(tree, database, denied))
