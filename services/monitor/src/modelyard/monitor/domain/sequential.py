"""Page's two-sided CUSUM on a standardised stream, run a whole window at a time without a per-value loop.

The recursion S_t = max(0, S_{t-1} + x_t) has the closed form S_t = max(S_0 + C_t, C_t - min_{0<=j<=t} C_j) with
C the cumulative sum of x (C_0 = 0), so a window of values costs one cumsum and one running minimum. The decision
threshold h comes from Siegmund's approximation of the in-control average run length of a CUSUM on N(0, 1) data,
ARL0 ~= (exp(2kb) - 2kb - 1) / (2k^2) with b = h + 1.166, solved for the ARL0 the false-alarm budget allows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from modelyard.monitor.domain.profile import FloatArray


@dataclass(frozen=True)
class CusumState:
    upper: float = 0.0
    lower: float = 0.0


@dataclass(frozen=True)
class CusumAlarm:
    index: int  # position in the window's values where the statistic first crossed h
    statistic: float
    direction: str  # "up" or "down"


def siegmund_threshold(k: float, arl0: float) -> float:
    """h such that a one-sided CUSUM with reference value k runs `arl0` in-control values between false alarms."""

    def arl(h: float) -> float:
        b = 2 * k * (h + 1.166)
        return (math.exp(b) - b - 1) / (2 * k * k)

    target = max(arl0, arl(0.0) + 1.0)
    low, high = 0.0, 1.0
    while arl(high) < target:
        low, high = high, high * 2
    for _ in range(60):  # bisection: the ARL grows monotonically with h; 60 halvings reach float precision
        mid = (low + high) / 2
        low, high = (mid, high) if arl(mid) < target else (low, mid)
    return high


def one_sided_path(start: float, increments: FloatArray) -> FloatArray:
    """S_t = max(0, S_{t-1} + increment_t) from S_0 = `start`, for every t, in closed form."""
    c = np.cumsum(increments)
    running_min = np.minimum(np.minimum.accumulate(c), 0.0)
    result: FloatArray = np.maximum(start + c, c - running_min)
    return result


def cusum(state: CusumState, z: FloatArray, k: float, h: float) -> tuple[CusumState, CusumAlarm | None]:
    """Advance the CUSUM over standardised values `z`; on an alarm, report the first and restart from zero after it.

    Only the first alarm in a window is reported (one breach per window is all the incident logic counts).
    """
    if z.size == 0:
        return state, None
    upper = one_sided_path(state.upper, z - k)
    lower = one_sided_path(state.lower, -z - k)
    crossed = np.nonzero((upper > h) | (lower > h))[0]
    if crossed.size == 0:
        return CusumState(float(upper[-1]), float(lower[-1])), None
    i = int(crossed[0])
    alarm = CusumAlarm(i, float(max(upper[i], lower[i])), "up" if upper[i] > h else "down")
    rest, _ = cusum(CusumState(), z[i + 1 :], k, math.inf)  # restart, but one alarm per window is enough
    return rest, alarm
