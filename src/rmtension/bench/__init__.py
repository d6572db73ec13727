"""Reward-model benchmarks: RewardBench, RewardBench 2, RM-Bench, LLMBar, held-out HH-RLHF and generic files.

Loaders (``loaders``), item and metric types (``types``) and the helpful/harmless subset groups (``groups``)
behind ``--bench NAME`` and ``rmtension bench list|show``. Not to be confused with the repository's
``benchmarks/`` folder, which holds speed benchmarks (scripts timing rmtension against plain baselines).
"""
