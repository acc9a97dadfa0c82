"""Small pure formatting helpers shared by the command line (no terminal library here)."""

from __future__ import annotations

import math

BLOCKS = "▁▂▃▄▅▆▇█"


def format_prob(log_p: float) -> str:
    """exp(log_p) in scientific notation, even far below the smallest float: -21.28 -> 5.7e-10."""
    if log_p == 0:
        return "1"
    if not math.isfinite(log_p):
        return "0"
    l10 = log_p / math.log(10)
    exp = math.floor(l10)
    mant = 10 ** (l10 - exp)
    if round(mant, 1) >= 10:
        mant, exp = mant / 10, exp + 1
    return f"{mant:.1f}e{exp:+03d}" if exp < -4 or exp > 4 else f"{math.exp(log_p):.4g}"


def sparkline(values: list[float], width: int = 60) -> str:
    """A one-line chart of ``values`` (resampled to at most ``width`` points)."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return ""
    if len(vals) > width:
        vals = [vals[int(i * len(vals) / width)] for i in range(width)]
    lo, hi = min(vals), max(vals)
    span = (hi - lo) or 1.0
    return "".join(BLOCKS[min(len(BLOCKS) - 1, int((v - lo) / span * len(BLOCKS)))]
                   for v in vals)


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def percent(x: float | None, digits: int = 2) -> str:
    """A ratio (accuracy, precision, recall, F1) as every command prints it: 0.7272 ->
    "72.72 %"; "-" when there is none."""
    return "-" if x is None else f"{100 * x:.{digits}f} %"


def plural(n: int, word: str) -> str:
    """``1 token``, ``2 tokens``, ``1,024 sentences``."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def format_bytes(n: int) -> str:
    """A file size for people: 980 bytes, 1.2 kB, 3.4 MB (powers of 1000)."""
    for unit, k in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= k:
            return f"{n / k:.1f} {unit}"
    return plural(n, "byte")
