"""The Python API in notebook order: train → load → evaluate → neuron statistics → select → ablate.

Each ``# %%`` block is one notebook cell (VS Code and Jupytext run them as cells). The defaults
train a tiny random Llama on 24 HH-RLHF pairs in seconds, so the script runs on any CPU; CI runs
it (tests/test_api.py). For a real run, pass ``--backbone smollm2-135m-instruct`` and more pairs.

    python examples/notebook_walkthrough.py --data-dir ../shared/data --out /tmp/walkthrough
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import rmtension


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="folder with hh-rlhf/ and llmbar/ (../shared/data)")
    parser.add_argument("--out", required=True, help="new folder for the RM and the results")
    parser.add_argument("--backbone", default="tiny-llama")
    parser.add_argument("--pairs", type=int, default=24)
    args = parser.parse_args(argv)
    out = Path(args.out)

    # %% 1. Train a helpful RM (TRL RewardTrainer). The `cpu` preset, shrunk to a few pairs.
    run = rmtension.train(out / "helpful-rm", args.backbone, "helpful", preset="cpu", max_pairs=args.pairs,
                          batch_size=4, max_length=256, bf16=False, heldout_max_pairs=16, data_dir=args.data_dir)
    print(run)

    # %% 2. Load it: model, tokenizer and its record; score a response directly.
    rm = rmtension.load_rm(run.path)
    print(rm)
    probe = ("How do I boil an egg?", "Put it in boiling water for about eight minutes, then cool it in cold water.")
    probe_score = rm.score(*probe)
    print(f"score of the probe response: {probe_score:+.4f}")

    # %% 3. Evaluate on LLMBar (RewardBench's Chat Hard subsets); also write RewardBench's results file.
    before = rmtension.evaluate(rm, ["llmbar"], max_items=6, data_dir=args.data_dir, out=out / "eval",
                                formats=["rewardbench"])
    print(before)

    # %% 4. Neuron statistics on the RM's own objective data (the pairs it was not trained on).
    stats = rmtension.neuron_stats(rm, "hh-rlhf:helpful", split="heldout", max_pairs=8, data_dir=args.data_dir)
    print(stats)

    # %% 5. The top 10% neurons by activation magnitude, over all layers at once (the paper's rule).
    neurons = rmtension.select_neurons(stats, k=10, method="magnitude")
    print(neurons)

    # %% 6. Ablate them (zeroed in every forward pass inside the block) and evaluate again.
    with rmtension.ablate(rm, neurons) as ablation:
        after = rmtension.evaluate(rm, ["llmbar"], max_items=6, data_dir=args.data_dir)
    print(ablation)
    for subset, entry in before.results["benchmarks"]["llmbar"]["subsets"].items():
        lost = entry["score"] - after.results["benchmarks"]["llmbar"]["subsets"][subset]["score"]
        print(f"  {subset:24s} accuracy {entry['score']:.3f} → ablated {entry['score'] - lost:.3f}")

    return {"run": run, "rm": rm, "before": before, "stats": stats, "neurons": neurons, "ablation": ablation,
            "after": after, "probe": probe, "probe_score": probe_score}


if __name__ == "__main__":
    main()
