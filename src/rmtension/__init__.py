"""rmtension: alignment tension (helpfulness vs harmlessness) inside reward models.

The package follows the study stage by stage: ``data`` → ``models`` → ``training`` →
``evaluation`` → ``neurons`` → ``ablation`` → ``analysis`` → ``report``, with ``study``
driving a whole grid and ``cli`` a thin command line on top.

The Python API (:mod:`rmtension.api`, docs/API.md) is exposed here, imported on first use so that
``import rmtension`` (and ``rmtension --help``) does not pay for torch and transformers::

    import rmtension
    run = rmtension.train("rms/helpful", "tiny-llama", "helpful", max_pairs=32)
    rm = rmtension.load_rm(run.path)
    res = rmtension.evaluate(rm, ["llmbar"], max_items=20)
    neurons = rmtension.select_neurons(rmtension.neuron_stats(rm, "hh-rlhf:helpful", max_pairs=16), k=10)
    with rmtension.ablate(rm, neurons):
        ablated = rmtension.evaluate(rm, ["llmbar"], max_items=20)
"""

from rmtension.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {name: "api" for name in ("train", "load_rm", "evaluate", "neuron_stats", "select_neurons", "ablate",
                                     "run_study", "RewardModel", "TrainResult", "StudyResult")}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
