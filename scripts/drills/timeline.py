"""``timeline.svg``: a drill run at a glance, as Jepsen's latency and rate plots.

Two panels share the time axis (seconds since the workload started):

* latency: one dot per operation at its completion time, its latency on a log
  scale, coloured by outcome (``ok`` / ``fail`` / ``info``, i.e. unknown);
* rate: operations completed per second, one line per outcome.

Fault windows from ``nemesis.jsonl`` are shaded across both panels and
labelled (``kill n1``, ``partition n2,n4``, ``clock-step n3 -1.2s``): a window
opens at an injection and closes at the matching heal on the same node
(:data:`OPENS`, :data:`CLOSES`), or at the end of the run. One-off events
(``promoted``, ``torn-tail``, ``full-sync-crash``, ...) are dashed lines.

Slot migrations (the ``migrate`` drill's ``migrate*`` events) are drawn as a
strip between the panels: a bar from each ``migrate`` to how it ended,
coloured by that end (:data:`MIGRATION_COLOURS`).

The SVG is written by hand (no plotting dependency). ``python -m
scripts.drills.timeline RUN_DIR`` redraws a saved run.
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

WIDTH, LEFT, RIGHT = 1100, 70, 20
LATENCY_TOP, LATENCY_HEIGHT = 46, 260
RATE_TOP, RATE_HEIGHT = 356, 150
HEIGHT = RATE_TOP + RATE_HEIGHT + 45
COLOURS = {"ok": "#3a7bd5", "fail": "#d9534f", "info": "#f0a020"}
FAULT_FILL = "#e8a0a0"
LATENCY_MIN_S, LATENCY_MAX_S = 1e-4, 100.0
DOTS_MAX = 20_000  # beyond this, every k-th operation is drawn (the rate panel still counts all)
OPENS = ("kill", "pause", "partition", "crash", "clock-step")
CLOSES = {"kill": "start", "crash": "start", "pause": "resume", "partition": "heal", "clock-step": "clock-step"}

MIGRATION_TOP, MIGRATION_HEIGHT = LATENCY_TOP + LATENCY_HEIGHT + 10, 10
MIGRATION_COLOURS = {"commit": "#4cae4c", "abort": "#909090", "refused": "#f0a020", "unstarted": "#f0a020",
                     "stuck": "#d9534f"}  # fmt: skip

Record = Mapping[str, Any]


@dataclass(frozen=True)
class Completion:
    time_s: float
    latency_s: float
    outcome: str


@dataclass(frozen=True)
class Window:
    start_s: float
    end_s: float
    label: str


def completions(records: Iterable[Record]) -> list[Completion]:
    """Each operation's completion time, latency and outcome (invokes paired per process)."""
    invoked: dict[int, float] = {}
    done = []
    for rec in records:
        if rec["type"] == "invoke":
            invoked[rec["process"]] = rec["time"]
        elif rec["process"] in invoked:
            start = invoked.pop(rec["process"])
            done.append(Completion(rec["time"], rec["time"] - start, rec["type"]))
    return done


def fault_windows(events: Sequence[Record], end_s: float) -> tuple[list[Window], list[Window]]:
    """(windows, instants): injections paired with their heals, and one-off events as zero-width windows."""
    open_at: dict[tuple[str, str], tuple[float, str]] = {}
    windows, instants = [], []
    for ev in events:
        action, node, t = ev["action"], ev.get("node", "*"), ev["time"]
        closing = [k for k in open_at if k[1] == node and CLOSES[k[0]] == action]
        if action == "clock-step" and ev.get("offset_s"):
            closing = []  # a step to a new offset opens a window; the step back to 0 closes it
        if action.startswith("migrate"):
            continue  # drawn in their own strip (migration_windows)
        for key in closing:
            start, label = open_at.pop(key)
            windows.append(Window(start, t, label))
        if closing:
            continue
        if action in OPENS:
            open_at[(action, node)] = (t, _label(ev))
        elif action not in CLOSES.values():
            instants.append(Window(t, t, _label(ev)))
    windows += [Window(start, end_s, label) for start, label in open_at.values()]
    return sorted(windows, key=lambda w: w.start_s), instants


def migration_windows(events: Sequence[Record], end_s: float) -> list[Window]:
    """One window per ``migrate`` event, to the next ``migrate-<end>`` event (one migration at a time).

    The label is the slots and the end (``5172-8191 commit``); a migration the run left unfinished ends at ``end_s``.
    """
    windows, started = [], None
    for ev in events:
        if ev["action"] == "migrate":
            started = ev
        elif started is not None and ev["action"].removeprefix("migrate-") in MIGRATION_COLOURS:
            windows.append(Window(started["time"], ev["time"], f"{started['slots']} {ev['action'][8:]}"))
            started = None
    if started is not None:
        windows.append(Window(started["time"], end_s, f"{started['slots']} unfinished"))
    return windows


def _label(ev: Record) -> str:
    who = ",".join(ev["minority"]) if ev.get("minority") else ev.get("node", "*")
    offset = f" {ev['offset_s']:+.1f}s" if ev.get("offset_s") else ""
    return f"{ev['action']} {who}{offset}"


class _Axes:
    def __init__(self, end_s: float) -> None:
        self.end_s = max(end_s, 1.0)

    def x(self, t: float) -> float:
        return LEFT + (WIDTH - LEFT - RIGHT) * max(0.0, t) / self.end_s

    @staticmethod
    def y_latency(latency_s: float) -> float:
        low, high = math.log10(LATENCY_MIN_S), math.log10(LATENCY_MAX_S)
        v = min(max(latency_s, LATENCY_MIN_S), LATENCY_MAX_S)
        return LATENCY_TOP + LATENCY_HEIGHT * (high - math.log10(v)) / (high - low)

    @staticmethod
    def y_rate(rate: float, rate_max: float) -> float:
        return RATE_TOP + RATE_HEIGHT * (1 - rate / rate_max)


def render(records: Sequence[Record], events: Sequence[Record], title: str) -> str:
    """The SVG document for one run."""
    ops = completions(records)
    end_s = max([c.time_s for c in ops] + [e["time"] for e in events] + [1.0])
    axes = _Axes(end_s)
    windows, instants = fault_windows(events, end_s)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{LEFT}" y="18" font-size="13">{escape(title)}</text>',
    ]
    parts += _faults(axes, windows, instants)
    parts += _migrations(axes, migration_windows(events, end_s))
    parts += _latency_panel(axes, ops)
    parts += _rate_panel(axes, ops)
    parts += _time_axis(axes)
    parts += _legend()
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _faults(axes: _Axes, windows: list[Window], instants: list[Window]) -> list[str]:
    top, bottom = LATENCY_TOP, RATE_TOP + RATE_HEIGHT
    out = ['<g class="faults">']
    for i, w in enumerate(windows):
        x0, x1 = axes.x(w.start_s), axes.x(w.end_s)
        label = escape(w.label)
        out.append(f'<rect class="fault" x="{x0:.1f}" y="{top}" width="{max(x1 - x0, 1):.1f}" '
                   f'height="{bottom - top}" fill="{FAULT_FILL}" fill-opacity="0.35">'
                   f"<title>{label} [{w.start_s:.2f}s, {w.end_s:.2f}s]</title></rect>")  # fmt: skip
        out.append(f'<text x="{x0 + 2:.1f}" y="{top + 10 + 11 * (i % 4)}" fill="#a03030">{label}</text>')
    base = LATENCY_TOP + LATENCY_HEIGHT - 4
    for w in instants:
        x, label = axes.x(w.start_s), escape(w.label)
        out.append(f'<line class="event" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" stroke="#606060" '
                   f'stroke-dasharray="3,3"><title>{label} at {w.start_s:.2f}s</title></line>'
                   f'<text x="{x - 2:.1f}" y="{base}" transform="rotate(-90 {x - 2:.1f} {base})" '
                   f'fill="#606060" font-size="9">{label}</text>')  # fmt: skip
    out.append("</g>")
    return out


def _migrations(axes: _Axes, windows: list[Window]) -> list[str]:
    if not windows:
        return []
    top = MIGRATION_TOP
    out = ['<g class="migrations">', f'<text x="{LEFT - 5}" y="{top + 9}" text-anchor="end">migrations</text>']
    for w in windows:
        x0, x1 = axes.x(w.start_s), axes.x(w.end_s)
        colour = MIGRATION_COLOURS.get(w.label.rsplit(" ", 1)[1], "#d9534f")
        out.append(f'<rect class="migration" x="{x0:.1f}" y="{top}" width="{max(x1 - x0, 1):.1f}" '
                   f'height="{MIGRATION_HEIGHT}" fill="{colour}" stroke="white" stroke-width="0.5">'
                   f"<title>{escape(w.label)} [{w.start_s:.2f}s, {w.end_s:.2f}s]</title></rect>")  # fmt: skip
    out.append("</g>")
    return out


def _latency_panel(axes: _Axes, ops: list[Completion]) -> list[str]:
    out = [_frame(LATENCY_TOP, LATENCY_HEIGHT, "latency (s, log)")]
    for exponent in range(round(math.log10(LATENCY_MIN_S)), round(math.log10(LATENCY_MAX_S)) + 1):
        y = axes.y_latency(10.0**exponent)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#e0e0e0"/>')
        out.append(f'<text x="{LEFT - 5}" y="{y + 4:.1f}" text-anchor="end">{10.0**exponent:g}</text>')
    step = max(1, math.ceil(len(ops) / DOTS_MAX))
    for outcome in ("ok", "fail", "info"):  # the rarer outcomes drawn last, on top
        dots = [f'<circle cx="{axes.x(c.time_s):.1f}" cy="{axes.y_latency(c.latency_s):.1f}" r="1.6"/>'
                for c in ops[::step] if c.outcome == outcome]  # fmt: skip
        out.append(f'<g class="ops-{outcome}" fill="{COLOURS[outcome]}" fill-opacity="0.6">{"".join(dots)}</g>')
    return out


def _rate_panel(axes: _Axes, ops: list[Completion]) -> list[str]:
    seconds = int(axes.end_s) + 1
    counts = {o: Counter(int(c.time_s) for c in ops if c.outcome == o) for o in COLOURS}
    rate_max = max([n for per in counts.values() for n in per.values()] + [1])
    out = [_frame(RATE_TOP, RATE_HEIGHT, "ops/s")]
    for fraction in (0.0, 0.5, 1.0):
        y = axes.y_rate(rate_max * fraction, rate_max)
        out.append(f'<text x="{LEFT - 5}" y="{y + 4:.1f}" text-anchor="end">{rate_max * fraction:.0f}</text>')
    for outcome, per in counts.items():
        points = " ".join(f"{axes.x(s + 0.5):.1f},{axes.y_rate(per.get(s, 0), rate_max):.1f}" for s in range(seconds))
        out.append(f'<polyline class="rate-{outcome}" points="{points}" fill="none" '
                   f'stroke="{COLOURS[outcome]}" stroke-width="1.5"/>')  # fmt: skip
    return out


def _frame(top: int, height: int, label: str) -> str:
    return (f'<rect x="{LEFT}" y="{top}" width="{WIDTH - LEFT - RIGHT}" height="{height}" fill="none" '
            f'stroke="#808080"/><text x="12" y="{top + height / 2:.0f}" transform="rotate(-90 12 '
            f'{top + height / 2:.0f})" text-anchor="middle">{label}</text>')  # fmt: skip


def _time_axis(axes: _Axes) -> list[str]:
    step = next(s for s in (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1e9) if axes.end_s / s <= 20)
    y = RATE_TOP + RATE_HEIGHT
    out = []
    for i in range(int(axes.end_s // step) + 1):
        x = axes.x(i * step)
        out.append(f'<line x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + 4}" stroke="#808080"/>'
                   f'<text x="{x:.1f}" y="{y + 16}" text-anchor="middle">{i * step:g}</text>')  # fmt: skip
    out.append(f'<text x="{(LEFT + WIDTH - RIGHT) / 2:.0f}" y="{y + 32}" text-anchor="middle">time (s)</text>')
    return out


def _legend() -> list[str]:
    x, y = WIDTH - RIGHT - 330, LATENCY_TOP - 8  # below the title, which may span the width
    out = []
    for i, (outcome, colour) in enumerate(COLOURS.items()):
        out.append(f'<circle cx="{x + 80 * i}" cy="{y - 4}" r="4" fill="{colour}"/>'
                   f'<text x="{x + 80 * i + 8}" y="{y}">{outcome}</text>')  # fmt: skip
    out.append(f'<rect x="{x + 240}" y="{y - 9}" width="12" height="10" fill="{FAULT_FILL}" fill-opacity="0.6"/>'
               f'<text x="{x + 256}" y="{y}">fault</text>')  # fmt: skip
    return out


def write_timeline(path: Path, records: Sequence[Record], events: Sequence[Record], title: str) -> None:
    path.write_text(render(records, events, title), encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    from scripts.checker.history import load_jsonl

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m scripts.drills.timeline RUN_DIR", file=sys.stderr)
        return 2
    run = Path(args[0])
    events = load_jsonl(run / "nemesis.jsonl") if (run / "nemesis.jsonl").exists() else []
    write_timeline(run / "timeline.svg", load_jsonl(run / "history.jsonl"), events, run.name)
    print(run / "timeline.svg")
    return 0


if __name__ == "__main__":
    sys.exit(main())
