"""Stage 2–3: scoring benchmark items with an RM and turning scores into the benchmarks' numbers.

Submodules:

- ``scorer`` — the one reward scorer (torch);
- ``metrics`` — every benchmark's per-item correctness and subset score (numpy only), registered by
  metric name in ``metrics.METRICS``;
- ``aggregate`` — RewardBench section scores, group means, mean ± std over seeds, intervals (numpy).

This package's ``__init__`` imports nothing on purpose, so that ``from rmtension.evaluation.metrics
import ...`` never pulls in torch.
"""
