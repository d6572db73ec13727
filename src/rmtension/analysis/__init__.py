"""Stages 3 and 6: analyses over scored benchmarks and neuron sets.

Submodules:

- ``retention`` — behavioural retention of the mixed RM relative to the helpful and harmless RMs;
- ``calibration`` — reward margins and score distributions where a single RM and the mixed RM are
  both right.

Both are numpy only. This ``__init__`` imports nothing, so other analyses (overlap, ...) can live
beside them without import-order coupling.
"""
