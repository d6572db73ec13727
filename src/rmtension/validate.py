"""One rule for every number a user can give: CLI options, ``--set`` fields and study-config keys.

Why one place: the same quantity (a pair count, a seed, a learning rate) enters through a flag, a
``--set FIELD=VALUE`` override and a YAML key. Each used to be read with a bare ``int``/``float``,
so ``--max-items -2`` sliced off the last two items, ``0`` meant "no limit", ``nan`` reached the
optimiser and a seed above 2**32 crashed NumPy. Here every such value has a named :class:`Rule`
(type, range, finiteness) and the three entry points apply the same rule:

- the CLI uses a rule as an argparse ``type=`` (a bad value is an argparse error: exit 2, one line);
- :data:`TRAIN_FIELDS` checks a :class:`~rmtension.training.config.TrainConfig`;
- :data:`STUDY_FIELDS` checks the study config, key by key, so the message names the key.

This module imports nothing heavy (no torch), so the CLI can build its parser quickly.
"""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping

from rmtension.errors import RmtensionError

INT_MAX = 2**31 - 1
"""Largest count we accept. Sizes beyond it are typos, and several consumers (tokenizers' Rust
code, torch index tensors) use 32/64-bit integers that a Python int of any size would overflow."""

SEED_MAX = 2**32 - 1
"""NumPy's legacy seeding (``np.random.seed``, called by ``transformers.set_seed``) accepts 0..2**32-1."""

_INT_TEXT = re.compile(r"^[+-]?\d+$")


@dataclass(frozen=True)
class Rule:
    """A numeric kind (int or float) with an allowed range; every value it accepts is finite.

    ``special`` values are accepted besides the range (e.g. -1 for "no step limit"); ``none_ok``
    lets None through (a field whose None means "unset").
    """

    name: str
    kind: type
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    special: tuple[Any, ...] = ()
    none_ok: bool = False
    expect: str = ""
    """How the message words it: "expected <expect>, got ..."."""

    # argparse calls ``type.__name__`` in some of its own messages.
    @property
    def __name__(self) -> str:  # type: ignore[override]
        return self.name

    def or_none(self) -> "Rule":
        return replace(self, none_ok=True)

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` (already a Python number) satisfies the rule."""
        if value is None:
            return self.none_ok
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind is int and not isinstance(value, int):
            return False
        if value in self.special:
            return True
        if not math.isfinite(value):
            return False
        if self.lo is not None and (value < self.lo or (self.lo_open and value == self.lo)):
            return False
        if self.hi is not None and (value > self.hi or (self.hi_open and value == self.hi)):
            return False
        return True

    def check(self, value: Any, where: str) -> Any:
        """``value`` itself (ints stay ints, floats become float), or an error naming ``where``."""
        if not self.accepts(value):
            raise RmtensionError(f"{where}: expected {self.expect}, got {value!r}")
        return float(value) if self.kind is float and value is not None and value not in self.special else value

    def parse(self, text: str) -> Any:
        """Read and check a command-line string; ValueError with the reason if it is not acceptable."""
        s = text.strip()
        value: Any
        if self.kind is int:
            if not _INT_TEXT.match(s):
                raise ValueError(f"expected {self.expect}, got {text!r}")
            value = int(s)
        else:
            try:
                value = float(s)
            except ValueError:
                raise ValueError(f"expected {self.expect}, got {text!r}") from None
        if not self.accepts(value):
            raise ValueError(f"expected {self.expect}, got {text!r}")
        return value

    def __call__(self, text: str) -> Any:
        """The argparse ``type=`` entry point: a bad value becomes an argparse error (exit 2)."""
        try:
            return self.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None


def _int_rule(name: str, lo: int, hi: int, expect: str, special: tuple[int, ...] = ()) -> Rule:
    return Rule(name, int, lo, hi, special=special, expect=expect)


positive_int = _int_rule("positive_int", 1, INT_MAX, f"a positive integer (1..{INT_MAX})")
nonneg_int = _int_rule("nonneg_int", 0, INT_MAX, f"an integer in 0..{INT_MAX}")
seed = _int_rule("seed", 0, SEED_MAX, f"a seed in 0..{SEED_MAX}")
step_limit = _int_rule("step_limit", 1, INT_MAX, f"a positive integer (1..{INT_MAX}), or -1 for no limit", special=(-1,))
histogram_bins = _int_rule("histogram_bins", 1, 10_000, "a number of bins in 1..10000")  # more only costs memory
finite_float = Rule("finite_float", float, expect="a finite number")
positive_float = Rule("positive_float", float, 0.0, lo_open=True, expect="a finite number > 0")
nonneg_float = Rule("nonneg_float", float, 0.0, expect="a finite number ≥ 0")
ratio = Rule("ratio", float, 0.0, 1.0, expect="a number in [0, 1]")
fraction = Rule("fraction", float, 0.0, 1.0, lo_open=True, expect="a number in (0, 1]")
heldout_fraction = Rule("heldout_fraction", float, 0.0, 1.0, hi_open=True, expect="a number in [0, 1)")
percent = Rule("percent", float, 0.0, 100.0, lo_open=True, expect="a percentage in (0, 100]")
percent_or_zero = Rule("percent_or_zero", float, 0.0, 100.0, expect="a percentage in [0, 100]")


@dataclass(frozen=True)
class ListRule:
    """A comma-separated list of values of one rule (``--seeds 0,1,2``, ``--k 0,5,10``); not empty."""

    item: Rule
    name: str = "list"

    @property
    def __name__(self) -> str:  # type: ignore[override]
        return f"list of {self.item.name}"

    def parse(self, text: str) -> list[Any]:
        parts = [p for p in text.replace(" ", "").split(",") if p]
        if not parts:
            raise ValueError(f"expected comma-separated values, each {self.item.expect}, got {text!r}")
        try:
            return [self.item.parse(p) for p in parts]
        except ValueError as exc:
            raise ValueError(f"{exc} in {text!r}" if len(parts) > 1 else str(exc)) from None

    def __call__(self, text: str) -> list[Any]:
        try:
            return self.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None


seed_list = ListRule(seed, "seed_list")
percent_list = ListRule(percent_or_zero, "percent_list")
factor_list = ListRule(finite_float, "factor_list")


# ----------------------------------------------------------------------------- config fields

TRAIN_FIELDS: dict[str, Rule] = {
    "seed": seed,
    "data_seed": seed,
    "max_pairs": positive_int.or_none(),
    "heldout_fraction": heldout_fraction,
    "heldout_max_pairs": positive_int.or_none(),
    "max_length": positive_int,
    "epochs": positive_float.or_none(),
    "max_steps": step_limit,  # the Trainer's convention: -1 = run the epochs
    "lr": positive_float,
    "batch_size": positive_int,
    "grad_accum": positive_int,
    "warmup_ratio": ratio,
    "weight_decay": nonneg_float,
    "max_grad_norm": nonneg_float,  # 0 turns clipping off in transformers' Trainer
    "save_steps": positive_int,
    "logging_steps": positive_int,
    "eval_batch_size": positive_int,
}
"""Every numeric field of ``TrainConfig``, by name."""

STUDY_FIELDS: dict[str, Rule] = {
    "seeds": seed,
    "evaluation.max_items": positive_int,
    "evaluation.batch_size": positive_int,
    "evaluation.max_length": positive_int,
    "neurons.max_pairs": positive_int,
    "neurons.k": percent,
    "neurons.batch_size": positive_int,
    "neurons.max_length": positive_int,
    "neurons.seed": seed,
    "ablation.max_items": positive_int,
    "ablation.random_seed": seed,
    "ablation.curves.k": percent_or_zero,
    "ablation.curves.max_items": positive_int,
    "dial.max_items": positive_int,
    "dial.factors": finite_float,
}
"""Every numeric key of the study config, by dotted path. A list value is checked item by item
(``seeds[1]``), a mapping value key by key (``evaluation.max_items.rm-bench``)."""


def check_value(rule: Rule, value: Any, where: str) -> Any:
    """Apply ``rule`` to a value that may be None, a number, a list or a mapping of numbers."""
    if value is None:
        return None
    if isinstance(value, list):
        return [check_value(rule, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {k: check_value(rule, v, f"{where}.{k}") for k, v in value.items()}
    return rule.check(value, where)


def check_fields(values: Mapping[str, Any], rules: Mapping[str, Rule], prefix: str = "") -> None:
    """Check each ``values[name]`` that has a rule; the error names ``prefix + name``."""
    for name, value in values.items():
        rule = rules.get(name)
        if rule is not None:
            check_value(rule, value, f"{prefix}{name}")


def rules_of(actions: Iterable[argparse.Action]) -> list[tuple[argparse.Action, Rule | ListRule]]:
    """The options of a parser whose values a rule checks (for tests and documentation)."""
    return [(a, a.type) for a in actions if isinstance(a.type, (Rule, ListRule))]
