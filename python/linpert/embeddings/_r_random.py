"""R's random normals, ``set.seed(seed); rnorm(n)``, drawn in Python: the paper's random embeddings, number for number.

R's defaults (``RNGkind("Mersenne-Twister", "Inversion")``): ``set.seed`` scrambles the seed with the linear
congruential step ``seed = 69069 * seed + 1`` (50 times, then once per word) to fill the Mersenne Twister's 624
words; a uniform is a 32-bit output times 2^-32 (kept inside (0, 1)); a normal takes two uniforms,
``u = (floor(2^27 u1) + u2) / 2^27``, and returns ``qnorm(u)``. numpy's MT19937 is the same generator, so only the
seeding and the two-uniform inversion are written here. ``qnorm`` is scipy's ``ndtri`` (agrees with R's AS 241 to a
few units in the last place).
"""

from __future__ import annotations

import numpy as np

__all__ = ["r_rnorm"]

_BIG = 134217728.0  # 2^27
_I2_32M1 = 2.328306437080797e-10  # 1 / (2^32 - 1)


def _mersenne_twister(seed: int) -> np.random.MT19937:
    """The generator in the state R's ``set.seed(seed)`` leaves it."""
    state = int(seed) & 0xFFFFFFFF
    for _ in range(50):
        state = (69069 * state + 1) & 0xFFFFFFFF
    words = np.empty(625, dtype=np.uint32)
    for j in range(625):
        state = (69069 * state + 1) & 0xFFFFFFFF
        words[j] = state
    generator = np.random.MT19937()
    # words[0] is R's position counter (reset to 624: a fresh block is generated first); the rest is the state
    generator.state = {"bit_generator": "MT19937", "state": {"key": words[1:], "pos": 624}}
    return generator


def r_rnorm(n: int, seed: int, *, skip: int = 0) -> np.ndarray:
    """``set.seed(seed); rnorm(skip); rnorm(n)`` of R's default generator, as float64.

    Examples
    --------
    >>> r_rnorm(3, 1).round(7).tolist()  # R: set.seed(1); rnorm(3)
    [-0.6264538, 0.1836433, -0.8356286]
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not -2**31 < seed < 2**31:
        raise ValueError(f"seed must be an integer that R accepts (|seed| < 2^31), got {seed!r}.")
    from scipy.special import ndtri

    raw = _mersenne_twister(int(seed)).random_raw(2 * (int(skip) + int(n)))[2 * int(skip):]
    uniform = raw.astype(np.float64) * 2.3283064365386963e-10
    uniform[uniform <= 0.0] = 0.5 * _I2_32M1  # R's fixup: strictly inside (0, 1)
    uniform[1.0 - uniform <= 0.0] = 1.0 - 0.5 * _I2_32M1
    first, second = uniform[0::2], uniform[1::2]
    return ndtri((np.floor(_BIG * first) + second) / _BIG)
