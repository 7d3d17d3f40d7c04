"""Verdicts on a run: the warnings a person would want, and gates that fail a CI job.

Warnings (``warnings.csv``, ``--json`` and the terminal): the model predicts one class, or is no
better than chance (a one-sided binomial test at 5 % against 1/K), or no better than the constant
mean (regression); a method's maps are constant (all zero included) on some images; a sampled
method's maps are unreliable (split-half reliability below :data:`RELIABILITY_WARNING`); a method's
deletion (insertion) AUC is no better than the random map's; consistency computed at chance.

Gates (``--fail-if``): ``METHOD.COLUMN OP VALUE[@GROUP]`` fails the run (exit code 8) when the mean
of COLUMN for METHOD in GROUP (``all`` by default) satisfies ``OP VALUE``; OP is one of ``<``,
``<=``, ``>``, ``>=``, ``==``, ``!=``; METHOD may be ``*`` (every method, the random map left out).
A gate whose value is missing (no image had it) fails too: a CI job must not pass on no evidence.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from xaicli.errors import UsageError

#: a sampled map whose split-half reliability is below this is flagged as unreliable
RELIABILITY_WARNING = 0.9
OPERATORS = {"<=": operator.le, ">=": operator.ge, "==": operator.eq, "!=": operator.ne, "<": operator.lt,
             ">": operator.gt}
_GATE = re.compile(r"^\s*(?P<method>[^.\s]+(?:@[^.\s]+)?|\*)\.(?P<column>[A-Za-z][\w]*)\s*(?P<op><=|>=|==|!=|<|>)"
                   r"\s*(?P<value>[-+0-9.eE]+)\s*(?:@\s*(?P<group>\S.*?))?\s*$")


@dataclass(frozen=True)
class Gate:
    method: str
    column: str
    op: str
    value: float
    group: str = "all"
    text: str = ""

    @classmethod
    def parse(cls, text: str) -> Gate:
        match = _GATE.match(text)
        if not match:
            raise UsageError(f"fail_if {text!r}: write METHOD.COLUMN<VALUE (or <=, >, >=, ==, !=), optionally "
                             "@GROUP, e.g. 'gradcam.PointingHit<0.8' or 'ig.RoiLift<2@true=nodule'", parameter="fail_if")
        try:
            value = float(match["value"])
        except ValueError:
            raise UsageError(f"fail_if {text!r}: {match['value']!r} is not a number", parameter="fail_if") from None
        return cls(match["method"], match["column"], match["op"], value, (match["group"] or "all").strip(), text.strip())

    def check(self, methods: Sequence[str], columns: Sequence[str]) -> None:
        """Before any model call: the gate names a method and a column this run has."""
        # a layer's row (gradcam@conv1) is known only once maps exist: its method must be chosen
        if self.method != "*" and self.method.split("@")[0] not in methods:
            raise UsageError(f"fail_if {self.text!r}: no method {self.method!r} in this run "
                             f"({', '.join(methods)})", parameter="fail_if")
        if self.column not in columns:
            raise UsageError(f"fail_if {self.text!r}: no column {self.column!r}; columns: {', '.join(columns)}",
                             parameter="fail_if")

    def evaluate(self, rows: list[dict[str, Any]]) -> list[str]:
        """The failures of this gate over a summary's rows (one line each)."""
        methods = [self.method] if self.method != "*" else sorted({r["Method"] for r in rows if r["Method"] != "random"})
        failures = []
        for method in methods:
            row = next((r for r in rows if r["Method"] == method and r["Group"] == self.group), None)
            value = None if row is None else row.get(self.column)
            where = f"{method}.{self.column} in group {self.group}"
            if value is None or (isinstance(value, float) and math.isnan(value)):
                failures.append(f"{where} has no value (no image of the group had it): gate {self.text!r} "
                                "cannot pass")
            elif OPERATORS[self.op](float(value), self.value):
                failures.append(f"{where} = {float(value):.4g} {self.op} {self.value:g} "
                                f"({row['Images']} images): gate {self.text!r} failed")
        return failures


def run_gates(gates: Sequence[Gate], rows: list[dict[str, Any]]) -> list[str]:
    return [failure for gate in gates for failure in gate.evaluate(rows)]


def binomial_tail(successes: int, n: int, p: float) -> float:
    """P(X >= successes) for X ~ Binomial(n, p): how likely chance alone scores this well."""
    return float(sum(math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(successes, n + 1)))


def model_warnings(info: Any, predicted: dict[str, int], correct: int, judged: int,
                   abs_errors: float, constant_errors: float, regression_n: int) -> list[dict[str, Any]]:
    """Whether the model does its job on the explained images (see the module docstring)."""
    out = []
    images = sum(predicted.values())
    if info.task == "classification" and images >= 2 and len(predicted) == 1:
        (label,) = predicted
        out.append(_warning("one-class", "", f"the model predicts {label!r} for every one of the {images} images: "
                            "its maps explain one answer, not a decision", images))
    if info.task == "classification" and judged:
        classes = max(2, len(info.class_names))
        p = binomial_tail(correct, judged, 1.0 / classes)
        if p > 0.05:
            out.append(_warning("chance", "", f"accuracy {correct / judged:.3f} on {judged} images is no better than "
                                f"chance (1/{classes}; binomial p = {p:.2f}): the maps explain a model that has not "
                                "learned the task", judged))
    if info.task == "regression" and regression_n and abs_errors >= constant_errors:
        out.append(_warning("chance", "", f"MAE {abs_errors / regression_n:.4g} is no better than predicting the "
                            f"mean of the truths ({constant_errors / regression_n:.4g})", regression_n))
    return out


def map_warnings(key: str, images: int, constant: int, unreliable: int, reliability: float,
                 classification: bool = False) -> list[dict[str, Any]]:
    """``classification``: the maps explain class scores, which saturate near 0 and 1 (a masked or
    noisy copy either keeps the class or loses it, and gradients vanish), so logits are the other cure."""
    out = []
    logits = "; or explain logits (--score logit): probabilities near 0 or 1 saturate" if classification else ""
    if constant:
        out.append(_warning("constant-maps", key, f"{key}: {constant} of {images} maps are constant (all zero "
                            "included): they carry no explanation", constant))
    if unreliable:
        out.append(_warning("unreliable", key, f"{key}: {unreliable} of {images} maps have a split-half reliability "
                            f"below {RELIABILITY_WARNING:g} (mean {reliability:.2f}): they are partly noise; "
                            f"raise the method's samples (n_masks, num_samples, n_samples){logits}", unreliable))
    return out


def faithfulness_warnings(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Methods whose deletion (insertion) AUC is no better than the random map's, on all images."""
    base = {r["Method"]: r for r in rows if r["Group"] == "all"}
    random_row = base.get("random")
    out = []
    if random_row is None:
        return out
    for method, row in base.items():
        if method == "random":
            continue
        for column, sign in (("Deletion", 1.0), ("Insertion", -1.0)):
            mine, chance = row.get(column), random_row.get(column)
            if isinstance(mine, float) and isinstance(chance, float) and not (math.isnan(mine) or math.isnan(chance)):
                # "no better" within float rounding: the curves of one image are scored in batches of
                # different makeup, so equal curves can differ in their last digits
                if sign * (mine - chance) >= -1e-6 * max(abs(chance), 1e-12):
                    better = "lower" if column == "Deletion" else "higher"
                    out.append(_warning("no-better-than-random", method,
                                        f"{method}: {column} AUC {mine:.4g} is no better than the random map's "
                                        f"{chance:.4g} ({better} is better): its ranking of pixels is not faithful "
                                        "to the model", row.get("Images", 0)))
    return out


def consistency_warning(warnings: list[dict[str, Any]], has_consistency: bool) -> list[dict[str, Any]]:
    if has_consistency and any(w["kind"] == "chance" for w in warnings):
        return [_warning("consistency-at-chance", "", "consistency was computed at chance accuracy: the few "
                         "correct maps of each class say little about the model", 0)]
    return []


def _warning(kind: str, method: str, message: str, images: int) -> dict[str, Any]:
    return {"kind": kind, "method": method, "images": images, "message": message}
