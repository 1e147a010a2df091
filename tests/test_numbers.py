"""Numeric options take plain ASCII numbers only: Python's int() and float() also accept
other scripts' digits, underscores, signs, 'inf' and 'nan', which no user means."""

from __future__ import annotations

import pytest
from helpers import assert_one_error, auto

ODD = ["８０８０", "٣٠", "80_80", "+80", "inf", "nan", "1e3", "0x50"]


@pytest.mark.parametrize("option", ["--port", "--backoff-base", "--backoff-max", "--stop-timeout",
                                    "--restart-every", "--log-max-bytes", "--log-keep-parts",
                                    "--log-keep-days"])
@pytest.mark.parametrize("value", ODD)
def test_odd_numbers_are_refused_with_one_line(auto_home, capsys, option, value):
    code, _, err = auto(capsys, "add", "svc", "sleep 1", "--no-start", option, value)
    assert_one_error(code, err, 2)
    code, out, _ = auto(capsys, "ps", "--json")
    assert out.strip() == "[]"  # nothing was added


@pytest.mark.parametrize(("option", "value"), [("--port", "8080"), ("--backoff-base", "0.5"),
                                               ("--stop-timeout", "10"), ("--restart-every", "2h"),
                                               ("--log-max-bytes", "50M"), ("--log-keep-days", "7d")])
def test_plain_numbers_are_taken(auto_home, capsys, option, value):
    code, _, err = auto(capsys, "add", "svc", "sleep 1", "--no-start", option, value)
    assert code == 0, err
