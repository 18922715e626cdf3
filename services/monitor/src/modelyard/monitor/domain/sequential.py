"""Page's CUSUM, run a whole window at a time without a per-value loop, and its thresholds from a false-alarm budget.

The recursion S_t = max(0, S_{t-1} + x_t) has the closed form S_t = max(S_0 + C_t, C_t - min_{0<=j<=t} C_j) with
C the cumulative sum of x (C_0 = 0), so a window of values costs one cumsum and one running minimum. On N(0, 1)
data the decision threshold h comes from Siegmund's approximation of the in-control average run length,
ARL0 ~= (exp(2kb) - 2kb - 1) / (2k^2) with b = h + 1.166, solved for the ARL0 the false-alarm budget allows. On
0/1 data (a classifier's mistakes) the Bernoulli CUSUM of Reynolds and Stoumbos scores +r per mistake and -1 per
correct answer, r the rounded ratio of the log-likelihood ratios of a mistake and a correct answer between the
in-control and the out-of-control error rates; its statistic is an integer, a Markov chain on 0..h-1 whose exact
ARL0 solves (I - Q) L = 1 (Brook and Evans), so h is exact where a normal approximation of skewed 0/1 data is not.

When each 0/1 outcome comes with its own in-control probability q_i of being right (a binary classifier's calibrated
score), the increments are the rows' log-likelihood ratios instead: null, right ~ Bernoulli(q_i); alternative,
symmetric label noise at rate eps, right ~ Bernoulli(q_i - eps (2 q_i - 1)). Under the null exp(log-LR) has mean 1,
so exp(S) of Page's CUSUM on them grows no faster than a martingale and its in-control run length is at least
e^h (Lorden 1971): h = ln(ARL0), with no approximation. The bound stays true when the increments are capped from
above and when the q_i used are lower than the true ones (for q >= 1/2, E[exp(increment)] <= 1 then), which is
what keeps it honest with a calibration estimated from a finite reference (degradation.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from modelyard.monitor.domain.metrics import BoolArray, FloatArray


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


def bernoulli_score(p0: float, p1: float) -> int:
    """r: a mistake's weight against a correct answer's (-1) in the CUSUM tuned to a rise from p0 to p1."""
    mistake, correct = math.log(p1 / p0), math.log((1 - p0) / (1 - p1))
    return max(1, round(mistake / correct))


@lru_cache(maxsize=256)
def bernoulli_threshold(p0: float, r: int, arl0: float) -> int:
    """The smallest integer h at which the Bernoulli CUSUM (+r, -1) on error rate p0 runs `arl0` values between false
    alarms (exactly; the ARL grows with h, so a doubling then a bisection find it)."""
    low, high = 0, r
    while bernoulli_arl(p0, r, high) < arl0:
        low, high = high, high * 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if bernoulli_arl(p0, r, mid) < arl0 else (low, mid)
    return high


def bernoulli_arl(p0: float, r: int, h: int) -> float:
    """Expected values until the Bernoulli CUSUM (+r with probability p0, else -1, floored at 0) reaches h from 0."""
    from scipy.linalg import solve_banded  # label path only: kept off the monitor's start-up imports

    # (I - Q) in banded form: one sub-diagonal (a correct answer steps down) and r super-diagonals (a mistake steps
    # up r; from h on the chain has stopped). Row s, column j is at band[r + s - j, j].
    band = np.zeros((r + 2, h))
    band[r] = 1.0
    band[0, r:] -= p0  # (s, s + r)
    band[r + 1, :-1] -= 1 - p0  # (s, s - 1)
    band[r, 0] -= 1 - p0  # at 0 a correct answer stays at 0
    return float(solve_banded((1, r), band, np.ones(h))[0])


def label_noise_increments(right: BoolArray, q: FloatArray, noise: float, cap: float) -> FloatArray:
    """Each row's log-likelihood ratio of label noise at rate `noise` against none, given its probability `q` of
    being right (in [1/2, 1)), capped at `cap`."""
    shift = noise * (2.0 * q - 1.0)  # how much less likely right the row is under the alternative
    result: FloatArray = np.minimum(np.where(right, np.log1p(-shift / q), np.log1p(shift / (1.0 - q))), cap)
    return result


def likelihood_ratio_threshold(arl0: float) -> float:
    """h at which Page's CUSUM of log-likelihood ratios runs at least `arl0` in-control values between false alarms."""
    return math.log(max(arl0, 1.0))


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
