"""bench/harness_instructions.py's pure helpers: reading callgrind's instruction total, Locust's printed request
count, and the difference that cancels startup and shutdown. The figure itself comes from `make bench`."""
from __future__ import annotations

import pytest

from bench.harness_instructions import callgrind_total, per_request, printed_request_count, result

CALLGRIND_OUT = """\
# callgrind format
version: 1
creator: callgrind-3.19.0
cmd:  /work/.venv/bin/python /work/.venv/bin/locust -f bench/_lf_http.py
events: Ir
summary: 2706830949

fl=(1) ???
fn=(1) 0x0000000000001090
0 3

totals: 2706830950
"""

LOCUST_SUMMARY = """\
Type     Name                                                                          # reqs      # fails |    Avg
--------|----------------------------------------------------------------------------|-------|-------------|-------
GET      /                                                                               1500     0(0.00%) |      4
--------|----------------------------------------------------------------------------|-------|-------------|-------
         Aggregated                                                                      1500     0(0.00%) |      4

Response time percentiles (approximated)
         Aggregated                                                                         4      5      5   1499
"""


def test_callgrind_total_reads_the_totals_line_before_the_summary():
    assert callgrind_total(CALLGRIND_OUT) == 2706830950
    assert callgrind_total(CALLGRIND_OUT.replace("totals: 2706830950\n", "")) == 2706830949


def test_callgrind_total_names_a_file_without_either_line():
    with pytest.raises(ValueError, match="totals"):
        callgrind_total("events: Ir\nfn=(1) main\n0 3\n")


def test_per_request_cancels_the_fixed_cost():
    fixed, each = 1_800_000_000, 600_000
    assert per_request(1000, fixed + 1000 * each, 7000, fixed + 7000 * each) == each
    with pytest.raises(ValueError, match="n2 > n1"):
        per_request(7000, 1.0, 1000, 2.0)


def test_printed_request_count_takes_the_request_table_row():
    assert printed_request_count(LOCUST_SUMMARY) == 1500
    with pytest.raises(ValueError, match="Aggregated"):
        printed_request_count("chaos verdict: FAIL (exit code 6)\n")


def test_result_is_the_ratio_of_per_request_counts_and_fails_a_harness_adding_five_percent():
    counts = {"plain": {1000: [2_600_000_000, 2_600_000_010], 7000: [6_200_000_000, 6_200_000_010]},
              "harness": {1000: [4_400_000_000, 4_400_000_000], 7000: [8_180_000_000, 8_180_000_000]}}
    got = result(counts, 1000, 7000)
    assert got["details"]["plain_instr_per_req"] == 600_000
    assert got["details"]["harness_instr_per_req"] == 630_000
    assert got["details"]["harness_added_instr_per_req"] == 30_000
    assert got["details"]["instr_per_req_per_repeat"] == {"plain": [600_000, 600_000], "harness": [630_000, 630_000]}
    assert got["value"] == round(600_000 / 630_000, 4) and got["passed"] is False
    assert "30,000 instructions per request (+5.0%)" in got["limited_by"]
