"""Random initialisation that gives the same numbers on every machine.

Two things must be reproducible bit for bit: the tiny test backbones (the neuron stage compares
a trained RM with the untrained base) and an RM's freshly initialised head (same seed, same
weights). Both draw from an explicit CPU ``torch.Generator`` through ``portable_normal``.
"""

from __future__ import annotations

import torch


def portable_normal(shape: torch.Size | tuple[int, ...], gen: torch.Generator, std: float) -> torch.Tensor:
    """N(0, std) values in float32 that are the same on every CPU.

    Drawn in float64 and rounded: torch's float32 sampler has a vectorised (AVX2) path whose last
    bits can differ from the scalar one, and rounding float64 draws to float32 hides such
    last-bit differences of the float64 maths as well.
    """
    return (torch.randn(tuple(shape), generator=gen, dtype=torch.float64) * std).to(torch.float32)
