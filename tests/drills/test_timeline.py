"""The run picture: valid SVG, every operation drawn by outcome, every fault window shaded."""

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from scripts.drills.timeline import fault_windows, render, write_timeline

pytestmark = pytest.mark.timeout(30)
SVG = "{http://www.w3.org/2000/svg}"


def history() -> list[dict]:
    records = []
    for i in range(30):
        outcome = "ok" if i % 3 else ("fail" if i % 2 else "info")
        common = {"process": i, "f": "set", "key": "r1", "value": f"v{i}"}
        records.append({**common, "type": "invoke", "time": i * 0.5})
        records.append({**common, "type": outcome, "time": i * 0.5 + 0.1})
    return records


EVENTS = [
    {"time": 1.0, "action": "kill", "node": "n1"},
    {"time": 2.5, "action": "promoted", "node": "n3"},
    {"time": 4.0, "action": "start", "node": "n1"},
    {"time": 6.0, "action": "partition", "node": "*", "minority": ["n2", "n4"]},
    {"time": 8.0, "action": "heal", "node": "*"},
    {"time": 9.0, "action": "clock-step", "node": "n5", "offset_s": -1.5},
    {"time": 11.0, "action": "clock-step", "node": "n5", "offset_s": 0.0},
    {"time": 12.0, "action": "pause", "node": "n2"},  # never resumed: the window runs to the end
]


def test_fault_windows_pair_injections_with_their_heals() -> None:
    windows, instants = fault_windows(EVENTS, 15.0)
    assert [(w.start_s, w.end_s, w.label) for w in windows] == [
        (1.0, 4.0, "kill n1"),
        (6.0, 8.0, "partition n2,n4"),
        (9.0, 11.0, "clock-step n5 -1.5s"),
        (12.0, 15.0, "pause n2"),
    ]
    assert [(w.start_s, w.label) for w in instants] == [(2.5, "promoted n3")]


def test_the_svg_parses_and_holds_the_operations_and_the_fault_windows(tmp_path: Path) -> None:
    path = tmp_path / "timeline.svg"
    write_timeline(path, history(), EVENTS, "drill=kill-primary seed=1 <&>")
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    faults = root.findall(f".//{SVG}rect[@class='fault']")
    assert len(faults) == 4
    assert [r.find(f"{SVG}title").text.split(" [")[0] for r in faults] == [
        "kill n1", "partition n2,n4", "clock-step n5 -1.5s", "pause n2"
    ]  # fmt: skip
    widths = [float(r.get("width")) for r in faults]
    assert widths[0] == pytest.approx(widths[1] * 1.5, rel=0.01)  # 3 s against 2 s, on one time axis
    dots = {o: len(root.findall(f".//{SVG}g[@class='ops-{o}']/{SVG}circle")) for o in ("ok", "fail", "info")}
    assert dots == {"ok": 20, "fail": 5, "info": 5}
    assert root.findall(f".//{SVG}line[@class='event']")
    for outcome in ("ok", "fail", "info"):
        assert root.find(f".//{SVG}polyline[@class='rate-{outcome}']") is not None


def test_an_empty_run_still_draws() -> None:
    root = ET.fromstring(render([], [], "nothing"))
    assert root.findall(f".//{SVG}rect[@class='fault']") == []


MIGRATIONS = [
    {"time": 0.5, "action": "migrate", "node": "n1", "slots": "0-99", "to": "n2"},
    {"time": 0.7, "action": "migrate-start", "node": "n1", "slots": "0-99", "id": "ab"},
    {"time": 1.5, "action": "kill", "node": "n2"},
    {"time": 2.0, "action": "migrate-abort", "node": "n1", "slots": "0-99", "id": "ab"},
    {"time": 3.0, "action": "start", "node": "n2"},
    {"time": 4.0, "action": "migrate", "node": "n1", "slots": "0-99", "to": "n2"},
    {"time": 5.0, "action": "migrate-commit", "node": "n1", "slots": "0-99", "id": "cd"},
    {"time": 6.0, "action": "migrate", "node": "n2", "slots": "0-99", "to": "n1"},
]


def test_migrations_are_bars_of_their_own_not_faults_or_event_lines() -> None:
    windows, instants = fault_windows(MIGRATIONS, 8.0)
    assert [(w.start_s, w.end_s, w.label) for w in windows] == [(1.5, 3.0, "kill n2")]
    assert instants == []
    root = ET.fromstring(render(history(), MIGRATIONS, "migrate"))
    bars = root.findall(f".//{SVG}rect[@class='migration']")
    assert [(r.find(f"{SVG}title").text, r.get("fill")) for r in bars] == [
        ("0-99 abort [0.50s, 2.00s]", "#909090"),
        ("0-99 commit [4.00s, 5.00s]", "#4cae4c"),
        ("0-99 unfinished [6.00s, 14.60s]", "#d9534f"),  # to the history's last completion
    ]
