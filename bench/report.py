"""Figures, their goals (issue 8), the printed table and the JSON document."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The goal of each figure's ratio: (comparison, bound).
GOALS: dict[str, tuple[str, float]] = {
    "warm_p50_ms": ("<=", 2.0),
    "warm_p99_ms": ("<=", 3.0),
    "throughput_c32_openwhisk": (">=", 0.15),
    "throughput_c32_seed": (">=", 0.12),
    "throughput_100_actions": (">=", 0.5),
    "concurrent_action_throughput": (">=", 3.0),
    "stem_cell_start_ms": ("<=", 0.3),
    "p99_at_80pct_ms": ("<=", 5.0),
}


@dataclass
class Figure:
    """One measured figure against its baseline from the same run. `value` is None when it
    could not be measured; `extra` says why (`note`) and what else was seen."""

    name: str
    value: float | None
    baseline: float | None
    unit: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline

    def goal_met(self) -> bool | None:
        if self.name not in GOALS or self.ratio is None:
            return None
        op, bound = GOALS[self.name]
        return self.ratio <= bound if op == "<=" else self.ratio >= bound

    def to_json(self) -> dict[str, Any]:
        ratio = self.ratio
        doc: dict[str, Any] = {
            "value": _round(self.value),
            "baseline": _round(self.baseline),
            "ratio": None if ratio is None else round(ratio, 4),
            "unit": self.unit,
        }
        if self.name in GOALS:
            op, bound = GOALS[self.name]
            doc["goal"] = f"ratio {op} {bound:g}"
            doc["goal_met"] = self.goal_met()
        return {**doc, **self.extra}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"


def table(figures: list[Figure], machine: dict[str, Any], wall_s: float) -> str:
    head = f"  {'figure':<30} {'value':>10} {'baseline':>10} {'ratio':>8}  {'goal':<8} unit"
    lines = [
        "",
        f"Homerun benchmarks ({machine['cpus']} CPUs, load {_load(machine['load_before'])} "
        f"before, {_load(machine['load_after'])} after, {wall_s:.0f} s)",
        head,
        "  " + "-" * (len(head) - 2),
    ]
    notes: list[str] = []
    for f in figures:
        ratio = "-" if f.ratio is None else f"{f.ratio:.3g}x"
        goal = ""
        if f.name in GOALS:
            op, bound = GOALS[f.name]
            mark = {True: "ok", False: "no", None: "?"}[f.goal_met()]
            goal = f"{op}{bound:g} {mark}"
        flag = ""
        if "note" in f.extra:
            notes.append(f"  [{len(notes) + 1}] {f.name}: {f.extra['note']}")
            flag = f" [{len(notes)}]"
        lines.append(
            f"  {f.name:<30} {_num(f.value):>10} {_num(f.baseline):>10} {ratio:>8}  "
            f"{goal:<8} {f.unit}{flag}"
        )
    return "\n".join([*lines, *notes])


def _load(load: list[float]) -> str:
    return "/".join(f"{x:.2f}" for x in load)


def machine(load_before: list[float]) -> dict[str, Any]:
    return {
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }


def write_json(
    path: Path, figures: list[Figure], machine: dict[str, Any], run: dict[str, Any]
) -> None:
    doc = {"figures": {f.name: f.to_json() for f in figures}, "machine": machine, "run": run}
    path.write_text(json.dumps(doc, indent=2) + "\n")
