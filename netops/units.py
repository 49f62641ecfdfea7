"""Parsing and formatting of the quantities a topology document carries: durations, loss, rates, lease times.

Each `parse_*` takes the user's value and returns a number in one fixed unit, or raises `ValueError` with a
message that quotes the value (the caller prefixes it with the document path). Each `format_*` is its inverse on
the normalised form, so `format_x(parse_x(format_x(v))) == format_x(v)`.

Rates follow tc(8): `kbit` is 1000 bit/s, `mbit` 10^6, `gbit` 10^9 (decimal, never 1024).
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_NUMBER = r"(\d+(?:\.\d+)?|\.\d+)"
_DURATION_RE = re.compile(rf"^{_NUMBER}\s*(us|ms|s)$")
_DURATION_MS = {"us": Decimal("0.001"), "ms": Decimal(1), "s": Decimal(1000)}
_RATE_RE = re.compile(rf"^{_NUMBER}\s*(bit|kbit|mbit|gbit)$", re.IGNORECASE)
_RATE_BPS = {"bit": 1, "kbit": 1000, "mbit": 1000**2, "gbit": 1000**3}
_LEASE_RE = re.compile(r"^(\d+)\s*([smhd]?)\Z")
_LEASE_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}

MAX_DELAY_MS = 60_000.0
MIN_RATE_BPS = 8_000
MAX_RATE_BPS = 100 * 1000**3
MIN_LEASE_S = 120
MAX_LEASE_S = 604_800


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_duration_ms(value: object) -> float:
    """'20ms', '1.5s', '500us' -> milliseconds, within 0..60 s. A bare number is refused: the unit is required."""
    if not isinstance(value, str) or not (m := _DURATION_RE.match(value.strip())):
        raise ValueError(f"{value!r} is not a duration like '20ms', '1.5s' or '500us'")
    ms = Decimal(m.group(1)) * _DURATION_MS[m.group(2)]
    if ms > Decimal(MAX_DELAY_MS):
        raise ValueError(f"{value!r} is longer than 60s")
    return float(ms)


def format_duration(ms: float) -> str:
    """Milliseconds -> '20ms' (or '1500us' when not a whole number of milliseconds)."""
    d = Decimal(repr(ms))
    if d == d.to_integral_value():
        return f"{int(d)}ms"
    us = d * 1000
    if us == us.to_integral_value():
        return f"{int(us)}us"
    return f"{d.normalize():f}ms"


def parse_loss_pct(value: object) -> float:
    """'1%', '0.5%' or a number 0..100 -> percent."""
    if _is_number(value):
        if not 0 <= value <= 100:  # type: ignore[operator]  # before float(): a huge int does not fit one
            raise ValueError(f"{value!r} is not between 0% and 100%")
        pct = float(value)  # type: ignore[arg-type]
    elif isinstance(value, str) and value.strip().endswith("%"):
        try:
            pct = float(Decimal(value.strip()[:-1].strip()))
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a loss like '1%' or a number 0..100") from None
    else:
        raise ValueError(f"{value!r} is not a loss like '1%' or a number 0..100")
    if not 0 <= pct <= 100:
        raise ValueError(f"{value!r} is not between 0% and 100%")
    return pct


def format_loss(pct: float) -> str:
    return f"{Decimal(repr(pct)).normalize():f}%"


def parse_rate_bps(value: object) -> int:
    """'10mbit', '500kbit', '1gbit', '64000bit' -> bits per second, at least 8kbit."""
    if not isinstance(value, str) or not (m := _RATE_RE.match(value.strip())):
        raise ValueError(f"{value!r} is not a rate like '10mbit', '500kbit', '1gbit' or '64000bit'")
    bps = Decimal(m.group(1)) * _RATE_BPS[m.group(2).lower()]
    if bps != bps.to_integral_value():
        raise ValueError(f"{value!r} is not a whole number of bits per second")
    if bps < MIN_RATE_BPS:
        raise ValueError(f"{value!r} is below the minimum rate of 8kbit")
    if bps > MAX_RATE_BPS:
        raise ValueError(f"{value!r} is above the maximum rate of 100gbit")
    return int(bps)


def format_rate(bps: int) -> str:
    """Bits per second -> the largest unit that divides it exactly ('10mbit', '64kbit', '12345bit')."""
    for unit in ("gbit", "mbit", "kbit"):
        if bps % _RATE_BPS[unit] == 0:
            return f"{bps // _RATE_BPS[unit]}{unit}"
    return f"{bps}bit"


def parse_lease_seconds(value: object) -> int:
    """A DHCP lease time: seconds as an integer, or '30m', '1h', '2d', '600s'; 120 s .. 7 days."""
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and (m := _LEASE_RE.match(value.strip())):
        seconds = int(m.group(1)) * _LEASE_S[m.group(2)]
    else:
        raise ValueError(f"{value!r} is not a lease time in seconds or like '30m', '1h', '1d'")
    if not MIN_LEASE_S <= seconds <= MAX_LEASE_S:
        raise ValueError(f"{value!r} is not between 120 seconds and 7 days")
    return seconds
