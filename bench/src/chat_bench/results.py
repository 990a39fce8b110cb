"""What one scenario run produced: its settings, its figures, and what went wrong."""

from dataclasses import dataclass, field
from typing import Any

Figure = float | int | str | bool | None


@dataclass
class ScenarioResult:
    scenario: str
    settings: dict[str, Any]
    figures: dict[str, Figure] = field(default_factory=dict)
    # Correctness failures (lost, duplicated, refused): never speed, which targets judge.
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Per-step rows: each step's figures and its CPU per operation per process.
    rows: list[dict[str, Figure]] = field(default_factory=list)

    @property
    def correct(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "correct": self.correct,
            "settings": self.settings,
            "figures": self.figures,
            "problems": self.problems,
            "notes": self.notes,
            "rows": self.rows,
        }
