"""Vectorised number-to-text formatting for the HepMC3 writer: whole columns at once, no Python loop per value.

`format_lines` lays out rows of fields (literal bytes, integers, floats in scientific notation) in one
uint8 table, one column block per field, with PAD (0) bytes where a value is shorter than its block,
then drops the PAD bytes, so fields end up separated by exactly the literal text (HepMC3's reader
wants single spaces). All of it is numpy work that releases the GIL, so the HepMC3 writer formats chunks on
several threads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PAD = 0
_ZERO = ord("0")
_MAX_EXPONENT = 99  # two exponent digits; |x| < 1e-99 is written as zero
_POW10 = 10.0 ** np.arange(-_MAX_EXPONENT - 1, _MAX_EXPONENT + 2)  # _POW10[k + 100] = 10^k
_SCALE = 10.0 ** np.arange(0, 2 * _MAX_EXPONENT + 30)  # exact up to 10^22


@dataclass(frozen=True)
class Int:
    """A decimal integer column; `width` counts the sign."""

    values: np.ndarray
    width: int


@dataclass(frozen=True)
class Sci:
    """A float column in scientific notation with `digits` significant digits."""

    values: np.ndarray
    digits: int = 9


def _write_digits(out: np.ndarray, mag: np.ndarray) -> None:
    """Decimal digits of non-negative ints `mag` (n,) into the columns of out (n, k), zero-filled on the left."""
    rest = mag
    for j in range(out.shape[1] - 1, -1, -1):
        quotient = rest // 10
        out[:, j] = rest - 10 * quotient + _ZERO
        rest = quotient


def _write_int(out: np.ndarray, values: np.ndarray) -> None:
    """Integers right-aligned in out (n, width), PAD on the left, '-' before negatives. Only the columns the
    widest value needs are computed (particle ids and PDG ids use a few of their 10-11)."""
    width = out.shape[1]
    v = np.asarray(values, dtype=np.int64)
    mag = np.abs(v)
    need = len(str(int(mag.max()))) if mag.size else 1  # digits of the widest value
    ndig = np.ones(v.size, dtype=np.int64)
    for k in range(1, need):
        ndig += mag >= 10**k
    if np.any(ndig + (v < 0) > width):
        raise ValueError(f"integer too wide for {width} characters")
    lead = width - need  # columns left of every value's digits: PAD, or '-' just before a first digit
    _write_digits(out[:, lead:], mag)
    out[:, : max(lead - 1, 0)] = PAD
    for j in range(max(lead - 1, 0), width - 1):  # column j holds a digit only where ndig > width - 1 - j
        col = out[:, j]
        col[ndig < width - j] = PAD
        col[(v < 0) & (ndig == width - 1 - j)] = ord("-")


def _write_sci(out: np.ndarray, values: np.ndarray, digits: int) -> None:
    """'-d.ddd...e+XX' into out (n, digits + 6); the sign byte is PAD for non-negative values.
    Correctly rounded to within one unit of the last digit."""
    v = np.asarray(values, dtype=np.float64)
    mag = np.abs(v)
    mag = np.where(mag < 10.0 ** -_MAX_EXPONENT, 0.0, mag)
    # decimal exponent from the binary one (frexp), then one correction step against exact powers of ten
    _, exp2 = np.frexp(mag)
    exp = np.floor((exp2 - 1) * 0.30102999566398120).astype(np.int64)
    exp += mag >= _POW10[np.minimum(exp + 101, _POW10.size - 1)]
    lo, hi = 10 ** (digits - 1), 10**digits
    shift = digits - 1 - exp  # scale by an exact power of ten where possible (|shift| <= 22)
    power = _SCALE[np.abs(shift)]
    scaled = np.where(shift >= 0, mag * power, mag / power)
    m = np.rint(scaled).astype(np.int64)
    up = m >= hi  # 9.9999999996 rounds to 10.00000000
    m = np.where(up, m // 10, m)
    exp = np.where(mag > 0, exp + up, 0)
    m = np.where(mag > 0, m, 0)
    if np.any((m < lo) & (mag > 0)):
        raise AssertionError("decimal exponent off by one")  # cannot happen: exp is exact above

    mant = out[:, 1 : digits + 2]  # digit, '.', digits: write digits shifted then move the first one
    _write_digits(out[:, 2 : digits + 2], m)
    mant[:, 0] = mant[:, 1]
    mant[:, 1] = ord(".")
    sign = out[:, 0]
    sign[:] = PAD
    sign[np.signbit(v) & (mag > 0)] = ord("-")
    out[:, digits + 2] = ord("e")
    out[:, digits + 3] = np.where(exp < 0, ord("-"), ord("+"))
    _write_digits(out[:, digits + 4 :], np.abs(exp))


def format_lines(fields: list[bytes | Int | Sci], n: int) -> tuple[np.ndarray, np.ndarray]:
    """n rows, each the concatenation of `fields` (literal bytes or per-row columns), without PAD bytes.

    The table is built column-major (every byte column contiguous), transposed once, and the PAD bytes
    dropped by a boolean mask: numpy releases the GIL for all three, so chunks format side by side on threads
    (bytes.translate, used before, held it). Returns the text as a uint8 array (a bytes-like object) and the
    (n + 1,) byte offsets where each row starts."""
    widths = [len(f) if isinstance(f, bytes) else f.width if isinstance(f, Int) else f.digits + 6 for f in fields]
    table = np.empty((n, sum(widths)), dtype=np.uint8, order="F")
    col = 0
    for field, width in zip(fields, widths):
        block = table[:, col : col + width]
        if isinstance(field, bytes):
            block[:] = np.frombuffer(field, np.uint8)
        elif isinstance(field, Int):
            _write_int(block, field.values)
        else:
            _write_sci(block, field.values, field.digits)
        col += width
    rows = np.ascontiguousarray(table)
    kept = rows != PAD
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.count_nonzero(kept, axis=1), out=offsets[1:])
    return rows[kept], offsets
