"""netops.units: durations, loss, rates and lease times parse to one unit and format back to the same text."""
from __future__ import annotations

import pytest

from netops import units


@pytest.mark.parametrize("text,ms", [("20ms", 20.0), ("1.5s", 1500.0), ("500us", 0.5), ("0ms", 0.0), ("60s", 60000.0)])
def test_durations_parse_to_milliseconds(text, ms):
    assert units.parse_duration_ms(text) == ms


@pytest.mark.parametrize("bad", ["20", 20, "61s", "-1ms", "1 minute", "1.2.3ms", None, True])
def test_bad_durations_are_refused(bad):
    with pytest.raises(ValueError, match=repr(bad).replace("(", r"\(").replace(".", r"\.")):
        units.parse_duration_ms(bad)


@pytest.mark.parametrize("ms,text", [(20.0, "20ms"), (1500.0, "1500ms"), (0.5, "500us"), (0.0005, "0.0005ms")])
def test_durations_format_back(ms, text):
    assert units.format_duration(ms) == text
    assert units.parse_duration_ms(text) == ms


@pytest.mark.parametrize("value,pct", [("1%", 1.0), ("0.5%", 0.5), (100, 100.0), (0, 0.0), ("100 %", 100.0)])
def test_loss_parses_to_percent(value, pct):
    assert units.parse_loss_pct(value) == pct


@pytest.mark.parametrize("bad", ["1", "101%", -0.1, "x%", True, None])
def test_bad_loss_is_refused(bad):
    with pytest.raises(ValueError):
        units.parse_loss_pct(bad)


@pytest.mark.parametrize(
    "text,bps", [("10mbit", 10**7), ("500kbit", 500_000), ("1gbit", 10**9), ("64000bit", 64_000), ("8kbit", 8000),
                 ("1.5Mbit", 1_500_000)],
)
def test_rates_parse_as_tc_does(text, bps):
    assert units.parse_rate_bps(text) == bps


@pytest.mark.parametrize("bad", ["7999bit", "10mbps", "10", 10_000_000, "0.5bit", "101gbit", "fast"])
def test_bad_rates_are_refused(bad):
    with pytest.raises(ValueError):
        units.parse_rate_bps(bad)


@pytest.mark.parametrize("bps,text", [(10**7, "10mbit"), (1_500_000, "1500kbit"), (12_345, "12345bit"), (10**9, "1gbit")])
def test_rates_format_in_the_largest_exact_unit(bps, text):
    assert units.format_rate(bps) == text
    assert units.parse_rate_bps(text) == bps


@pytest.mark.parametrize("value,seconds", [(3600, 3600), ("1h", 3600), ("30m", 1800), ("7d", 604_800), ("120s", 120),
                                           ("600", 600)])
def test_lease_times(value, seconds):
    assert units.parse_lease_seconds(value) == seconds


@pytest.mark.parametrize("bad", [119, "8d", "1w", True, "1.5h", -5])
def test_bad_lease_times_are_refused(bad):
    with pytest.raises(ValueError):
        units.parse_lease_seconds(bad)


def test_a_huge_integer_loss_is_refused_not_overflowed():
    """Found by the fuzz: float(10**400) raised OverflowError."""
    with pytest.raises(ValueError, match="between 0% and 100%"):
        units.parse_loss_pct(10**400)
