"""The statement scanner: kind, FORMAT clause, inline INSERT data, multi-statements."""

from __future__ import annotations

import pytest

from core.embedded.warehouse.errors import WarehouseError
from core.embedded.warehouse.sql import scan

FORMATS = {name.lower(): name for name in ("Native", "JSON", "TabSeparated", "CSV", "RowBinary")}


def test_select_with_format() -> None:
    statement = scan("SELECT 1\n FORMAT native", FORMATS)
    assert (statement.kind, statement.format, statement.has_result) == ("SELECT", "Native", True)


def test_format_inside_strings_comments_and_calls_does_not_count() -> None:
    sql = "SELECT 'FORMAT JSON', format(x) /* FORMAT CSV */ FROM t -- FORMAT JSON\n"
    assert scan(sql, FORMATS).format is None
    assert scan("SELECT format FROM t", FORMATS).format is None
    assert scan("SELECT 1 FORMAT JSON SETTINGS max_threads = 1", FORMATS).format == "JSON"


def test_insert_data_starts_after_the_newline() -> None:
    text = "INSERT INTO t (a, b) SETTINGS x = 1 FORMAT RowBinary\n\t\x00data\n\n"
    statement = scan(text, FORMATS)
    assert statement.is_insert_with_data
    assert statement.format == "RowBinary"
    assert text[: statement.format_start].rstrip() == "INSERT INTO t (a, b) SETTINGS x = 1"
    assert text[statement.data_start :] == "\t\x00data\n\n"
    spaced = scan("INSERT INTO t FORMAT CSV   1,2", FORMATS)
    assert spaced.data_start == len("INSERT INTO t FORMAT CSV   ")


def test_inserts_without_inline_data() -> None:
    for sql in ("INSERT INTO t VALUES (1, 'FORMAT CSV')", "INSERT INTO t SELECT * FROM s"):
        statement = scan(sql, FORMATS)
        assert statement.kind == "INSERT"
        assert not statement.is_insert_with_data
        assert not statement.has_result


def test_session_changing_statements() -> None:
    assert scan("SET max_threads = 1", FORMATS).changes_session
    assert scan("use db", FORMATS).changes_session
    assert scan("CREATE TEMPORARY TABLE x (a UInt8)", FORMATS).changes_session
    assert not scan("CREATE TABLE temporary (a UInt8) ENGINE = Log", FORMATS).changes_session


def test_multi_statements_and_empty_queries_are_refused() -> None:
    assert scan("SELECT 1;", FORMATS).kind == "SELECT"
    assert scan("SELECT ';' ; -- done", FORMATS).kind == "SELECT"
    with pytest.raises(WarehouseError) as caught:
        scan("SELECT 1; DROP TABLE t", FORMATS)
    assert caught.value.code == 62
    with pytest.raises(WarehouseError):
        scan("  -- nothing\n", FORMATS)
