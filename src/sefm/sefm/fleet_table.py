"""The operator's view of the fleet: one row per robot, fed by its topics (ROS-free)."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.table import Table

from sefm_interfaces.episode_protocol import EpisodeEnd, EpisodeStart, PauseChange


@dataclass
class RobotRow:
    episode: int | None = None
    step: int = 0
    steps_to_go: float | None = None
    success: bool | None = None
    paused: bool = False
    last_end: str = ""
    episodes_done: int = 0
    detections: int = 0  # episodes the detector ended as successes


@dataclass
class FleetTable:
    rows: dict[str, RobotRow] = field(default_factory=dict)
    policy_version: str = "-"

    def row(self, namespace: str) -> RobotRow:
        return self.rows.setdefault(namespace, RobotRow())

    def on_event(self, namespace: str, event: EpisodeStart | EpisodeEnd | PauseChange) -> None:
        row = self.row(namespace)
        if isinstance(event, EpisodeStart):
            row.episode, row.step, row.steps_to_go, row.success = event.episode_id, 0, None, None
        elif isinstance(event, EpisodeEnd):
            meta = event.meta
            row.episodes_done += 1
            row.detections += bool(meta.extra.get("detected_success"))
            row.last_end = f"{meta.termination} @ {meta.length}"
        else:
            row.paused = event.event == "pause"

    def on_steps_to_go(self, namespace: str, d: float) -> None:
        self.row(namespace).steps_to_go = d

    def on_success(self, namespace: str, success: bool) -> None:
        self.row(namespace).success = success

    def on_action(self, namespace: str) -> None:
        self.row(namespace).step += 1

    def render(self) -> Table:
        table = Table(title=f"sefm fleet  (policy version {self.policy_version})")
        for column in ("robot", "episode", "step", "d", "detected", "paused", "done", "detected rate", "last end"):
            table.add_column(column)
        for ns, r in sorted(self.rows.items()):
            rate = f"{r.detections / r.episodes_done:.0%}" if r.episodes_done else "-"
            table.add_row(
                ns,
                "-" if r.episode is None else str(r.episode),
                str(r.step),
                "-" if r.steps_to_go is None else f"{r.steps_to_go:.1f}",
                "-" if r.success is None else ("yes" if r.success else "no"),
                "yes" if r.paused else "no",
                str(r.episodes_done),
                rate,
                r.last_end,
            )
        return table
