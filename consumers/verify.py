"""Compare a projection's live tables with a rebuilt copy, table by table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import psycopg
from psycopg import sql

from consumers.bookkeeping import BOOKKEEPING_TABLES


@dataclass(frozen=True)
class Column:
    name: str
    data_type: str


@dataclass
class TableDifference:
    """Differences of one table; `problem` is set when the tables cannot be compared row by row."""

    table: str
    columns: list[str] = field(default_factory=list)
    problem: str | None = None
    only_live_count: int = 0
    only_rebuilt_count: int = 0
    only_live: list[tuple[Any, ...]] = field(default_factory=list)
    only_rebuilt: list[tuple[Any, ...]] = field(default_factory=list)


def compare_schemas(
    conn: psycopg.Connection,
    live: str,
    rebuilt: str,
    ignored_columns: Mapping[str, frozenset[str]] | None = None,
    row_limit: int = 20,
) -> list[TableDifference]:
    """Return the differences between every projection table of `live` and `rebuilt`.

    Rows are compared as multisets (EXCEPT ALL both ways), so a duplicated row counts.
    The machinery's bookkeeping tables are skipped, and so are the columns that
    `ignored_columns` names per table. At most `row_limit` rows per side are returned,
    with the full counts.
    """
    ignored_columns = ignored_columns or {}
    live_tables = _tables(conn, live)
    rebuilt_tables = _tables(conn, rebuilt)
    differences = []

    for table in sorted(set(live_tables) | set(rebuilt_tables)):
        if table not in rebuilt_tables:
            differences.append(TableDifference(table, problem="the table is missing from the rebuilt schema"))
            continue
        if table not in live_tables:
            differences.append(TableDifference(table, problem="the table is missing from the live schema"))
            continue

        ignored = ignored_columns.get(table, frozenset())
        live_columns = [column for column in live_tables[table] if column.name not in ignored]
        rebuilt_columns = [column for column in rebuilt_tables[table] if column.name not in ignored]
        if live_columns != rebuilt_columns:
            differences.append(
                TableDifference(
                    table,
                    problem=f"the columns differ: live has {_describe(live_columns)}, "
                    f"rebuilt has {_describe(rebuilt_columns)}",
                )
            )
            continue

        difference = _compare_rows(conn, live, rebuilt, table, live_columns, row_limit)
        if difference.only_live_count or difference.only_rebuilt_count:
            differences.append(difference)
    return differences


def _tables(conn: psycopg.Connection, schema: str) -> dict[str, list[Column]]:
    rows = conn.execute(
        """
        SELECT c.table_name, c.column_name, c.data_type
        FROM information_schema.columns c
        JOIN information_schema.tables t USING (table_schema, table_name)
        WHERE c.table_schema = %s AND t.table_type = 'BASE TABLE'
        ORDER BY c.table_name, c.ordinal_position
        """,
        (schema,),
    ).fetchall()
    tables: dict[str, list[Column]] = {}
    for table, column, data_type in rows:
        if table not in BOOKKEEPING_TABLES:
            tables.setdefault(table, []).append(Column(column, data_type))
    return tables


def _compare_rows(
    conn: psycopg.Connection, live: str, rebuilt: str, table: str, columns: list[Column], row_limit: int
) -> TableDifference:
    # json has no equality operator, so EXCEPT needs it as jsonb.
    select_list = sql.SQL(", ").join(
        sql.SQL("{}::jsonb").format(sql.Identifier(column.name)) if column.data_type == "json"
        else sql.Identifier(column.name)
        for column in columns
    )

    def except_all(left: str, right: str) -> sql.Composed:
        return sql.SQL("SELECT {cols} FROM {left}.{table} EXCEPT ALL SELECT {cols} FROM {right}.{table}").format(
            cols=select_list, left=sql.Identifier(left), right=sql.Identifier(right), table=sql.Identifier(table)
        )

    difference = TableDifference(table, columns=[column.name for column in columns])
    for left, right, side in ((live, rebuilt, "live"), (rebuilt, live, "rebuilt")):
        query = except_all(left, right)
        count = conn.execute(sql.SQL("SELECT count(*) FROM ({}) AS difference").format(query)).fetchone()
        rows = conn.execute(sql.SQL("{} ORDER BY 1 LIMIT {}").format(query, sql.Literal(row_limit))).fetchall()
        if side == "live":
            difference.only_live_count, difference.only_live = count[0] if count else 0, rows
        else:
            difference.only_rebuilt_count, difference.only_rebuilt = count[0] if count else 0, rows
    return difference


def _describe(columns: list[Column]) -> str:
    return "(" + ", ".join(f"{column.name} {column.data_type}" for column in columns) + ")"
