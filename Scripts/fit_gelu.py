"""Fits the piecewise polynomial of CSAMKernels/gelu16.h and prints its C table.

GELU(x) = max(x, 0) - S(|x|) with S(a) = a * Phi(-a) (Phi: the standard normal CDF). S is
approximated on 7 intervals of a = (k + t) / SCALE, k = 0..6, t in [-1/2, 1/2] (interval 0:
t in [0, 1/2], with S(0) = 0 exactly), by a degree-7 polynomial in t each; an eighth interval of
zeros covers a beyond the cap (S < 1e-8 there). Each polynomial minimizes the largest weighted
error over its interval (weighted least squares iterated towards minimax, Lawson's method, in
double precision): relative error for a <= 3, and for a > 3, where the task asks only for 1e-8
absolute, relative error capped so that 1e-8 absolute counts as 2.5e-7 relative.

Only numpy is needed: .venv-ref/bin/python Scripts/fit_gelu.py
"""

import math

import numpy as np

INTERVALS = 8  # the last one is all zeros
DEGREE = 7
WIDTH = 0.925  # 6.5 widths reach a = 6.01, where |GELU(-a)| = 5.5e-9
SCALE = np.float32(1 / WIDTH)  # what the kernel multiplies by, so fit against the float32 value


def s(a):
    return a * 0.5 * np.vectorize(math.erfc)(a / math.sqrt(2))


def weight(a):
    relative = 1 / np.maximum(s(a), 1e-300)
    return np.where(a <= 3, relative, np.minimum(relative, 2.5e-7 / 1e-8))


def fit_interval(k, samples=3000, iterations=300):
    low = 0.0 if k == 0 else -0.5
    t = np.cos(np.linspace(0, np.pi, samples)) * (0.5 - low) / 2 + (0.5 + low) / 2
    a = (k + t) / np.float64(SCALE)
    y, w = s(a), weight(a)
    first = 1 if k == 0 else 0  # S(0) = 0 exactly: no constant term in interval 0
    basis = np.vander(t, DEGREE + 1, increasing=True)[:, first:]
    lawson = np.full(samples, 1 / samples)
    best, best_error = None, math.inf
    for _ in range(iterations):
        root = np.sqrt(lawson)
        c = np.linalg.lstsq(basis * (w * root)[:, None], y * w * root, rcond=None)[0]
        c = np.float32(c).astype(np.float64)  # judge the coefficients the kernel will hold
        error = np.abs((basis @ c - y) * w)
        if error.max() < best_error:
            best, best_error = c, error.max()
        lawson *= error
        lawson /= lawson.sum()
    return np.concatenate([np.zeros(first), best]), best_error, (k + low) / SCALE, (k + 0.5) / SCALE


def main():
    table = np.zeros((INTERVALS, DEGREE + 1))
    for k in range(INTERVALS - 1):
        table[k], error, a0, a1 = fit_interval(k)
        print(f"// interval {k}: a in [{a0:.3f}, {a1:.3f}], weighted error {error:.2e}")
    cap = np.float32((INTERVALS - 1 - 0.25) / SCALE)  # inside the interval of zeros
    print(f"#define GELU_TAIL_SCALE {SCALE:.9e}f\n#define GELU_TAIL_CAP {cap:.9e}f")
    print(f"static const float gelu_tail_coefficients[{DEGREE + 1}][{INTERVALS}] = {{")
    for power in range(DEGREE, -1, -1):
        row = ", ".join(f"{np.float32(table[k][power]):.9e}f" for k in range(INTERVALS))
        print(f"    {{{row}}},  // t^{power}")
    print("};")


if __name__ == "__main__":
    main()
