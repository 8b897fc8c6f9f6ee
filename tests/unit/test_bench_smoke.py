"""The benchmarks import, and their result schema helper accepts good results and names what is wrong in bad ones.

No timing assertions here: the figures themselves come from `make bench`.
"""
from __future__ import annotations

import importlib

import pytest

from bench import __main__ as bench_main
from bench.common import make_result, markdown_table, percentile, validate_result


@pytest.mark.parametrize("name", bench_main.BENCHMARKS)
def test_every_benchmark_module_imports_and_names_its_goal(name):
    module = importlib.import_module(f"bench.{name}")
    assert callable(module.run)
    assert isinstance(module.TITLE, str) and module.TITLE
    assert isinstance(module.GOAL, (int, float))
    assert getattr(module, "GOAL_OP", ">=") in (">=", "<=")


def test_make_result_derives_pass_from_value_and_goal():
    good = make_result("x", "X", 0.99, "ratio", 0.97, ">=", "nothing")
    bad = make_result("x", "X", 60.0, "ms", 50.0, "<=", "the hub")
    missing = make_result("x", "X", None, "ms", 50.0, "<=", "error")
    assert good["passed"] is True and bad["passed"] is False and missing["passed"] is False
    assert validate_result(good) == [] and validate_result(bad) == [] and validate_result(missing) == []


def test_validate_result_names_each_problem():
    result = make_result("x", "X", 0.5, "ratio", 0.8, ">=", "proxy")
    result["passed"] = True
    assert any("passed is True" in p for p in validate_result(result))
    del result["limited_by"]
    assert validate_result(result) == ["missing key 'limited_by'"]
    assert validate_result([]) == ["a result must be an object, got list"]
    with pytest.raises(ValueError, match="goal_op"):
        make_result("x", "X", 1.0, "", 1.0, "==", "")


def test_markdown_table_has_a_row_per_result():
    rows = [make_result("a", "A", 1.0, "ratio", 0.97, ">=", "x|y"), make_result("b", "B", None, "ms", 50, "<=", "err")]
    table = markdown_table(rows).splitlines()
    assert len(table) == 4
    assert "n/a" in table[3] and "**FAIL**" in table[3] and "x/y" in table[2]


def test_percentile_is_nearest_rank():
    assert percentile([], 50) is None
    assert percentile([3, 1, 2], 50) == 2
    assert percentile(list(range(1, 101)), 99) == 99
    assert percentile(list(range(1, 101)), 100) == 100
