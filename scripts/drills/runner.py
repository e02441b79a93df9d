"""``scripts/drill NAME --duration S --seed N``: run one drill and judge it.

A run:

1. starts a :class:`~.cluster.LocalCluster` (five nodes, two shards, a spare);
2. starts the recorded workload against it;
3. for ``--duration`` seconds, runs nemesis cycles, waiting between cycles
   until the cluster is settled again (bounded: a cluster that does not
   recover fails the drill, since "nothing hung" is part of the promise);
4. heals everything, lets the workload run on the healed cluster briefly,
   stops it, and reads every key once more (the final reads);
5. kills the cluster, writes ``history.jsonl``, ``nemesis.jsonl``,
   ``summary.txt`` and ``timeline.svg`` (operations and latency over time, fault
   windows shaded: :mod:`.timeline`) next to the node logs in the run
   directory, and checks the history with ``scripts/checker``.

A node that exits although the drill did not kill it has crashed: the drill
notes it (``crash`` in ``nemesis.jsonl``), starts it again and goes on, and the
crash counts as a violation.

It prints one line, ``drill=… seed=… faults=… ops=… acked=… lost=… phantoms=…
linearizable=… violations=…`` (and ``crashes=…`` if any), and exits 0 if the
history is valid and no node crashed, 1 on any violation (or a
non-linearizable or undecided register), 2 if the drill itself
could not run to the end (the cluster did not form or recover; the reason is
printed and the logs are kept).
"""

from __future__ import annotations

import argparse
import random
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.checker.checker import CheckResult, check_history, summary_line
from scripts.checker.history import dump_jsonl

from .cluster import HOST, ClusterError, LocalCluster, Node
from .nemesis import NEMESES, event
from .operations import MIX
from .timeline import write_timeline
from .workload import Workload

SETTLE_TIMEOUT_S = 60.0
AFTER_HEAL_S = 2.0
FINAL_READS_TIMEOUT_S = 60.0
EXIT_VIOLATION, EXIT_BROKEN = 1, 2


@dataclass
class DrillOptions:
    name: str
    duration_s: float
    seed: int
    out_dir: Path
    clients: int = 4
    node_timeout_ms: int = 2000
    op_timeout_s: float = 5.0
    without: tuple[str, ...] = ()  # workload operations left out (to tell one bug from another)


@dataclass
class DrillResult:
    options: DrillOptions
    faults: int
    check: CheckResult | None
    unread: int = 0
    error: str = ""
    crashes: tuple[str, ...] = ()
    notes: str = ""  # the nemesis' own counts (the migrate drill's migrations)

    @property
    def exit_code(self) -> int:
        if self.error or self.check is None:
            return EXIT_BROKEN
        return 0 if self.check.valid and not self.unread and not self.crashes else EXIT_VIOLATION

    def line(self) -> str:
        head = f"drill={self.options.name} seed={self.options.seed} faults={self.faults}"
        if self.check is None:
            return f"{head} error={self.error!r}"
        tail = f" unread={self.unread}" if self.unread else ""
        tail += f" crashes={len(self.crashes)}" if self.crashes else ""
        tail += f" error={self.error!r}" if self.error else ""
        tail += f" ({self.notes})" if self.notes else ""
        return f"{head} {summary_line(self.check)}{tail}"


def run(options: DrillOptions) -> DrillResult:
    """Run one drill end to end (see the module docstring); never leaves a process behind."""
    if options.out_dir.exists():
        shutil.rmtree(options.out_dir)
    options.out_dir.mkdir(parents=True)
    rng = random.Random(options.seed)
    events: list[dict[str, Any]] = []
    kind = NEMESES[options.name]
    cluster = LocalCluster(options.out_dir, options.node_timeout_ms, kind.extra_conf, kind.clock_shim)
    workload: Workload | None = None
    nemesis = None
    error = ""
    unread = 0
    try:
        cluster.start()
        workload = Workload([(HOST, n.port) for n in cluster.nodes], options.clients, options.seed,
                            options.op_timeout_s, options.without)  # fmt: skip

        def log(action: str, node: Node | None, **detail: Any) -> None:
            events.append(event(action, node, workload.recorder.now(), **detail))

        nemesis = kind(cluster, rng, log, options.node_timeout_ms)
        workload.start()
        nemesis.start()
        _run_cycles(options, cluster, nemesis, rng)
        nemesis.heal_all()
        cluster.wait_settled(SETTLE_TIMEOUT_S)
        time.sleep(AFTER_HEAL_S)
        workload.stop()
        if workload.crashes:
            raise RuntimeError("workload client crashed: " + "; ".join(workload.crashes))
        unread = workload.final_reads(time.monotonic() + FINAL_READS_TIMEOUT_S)
        nemesis.restart_crashed(restart=False)  # a crash after the heal counts too
    except ClusterError as exc:
        error = str(exc)
    except Exception as exc:  # a drill that breaks must still kill its cluster and say why
        error = f"{type(exc).__name__}: {exc}"
    finally:
        if nemesis is not None:
            nemesis.close()
        if workload is not None:
            workload.stop()
        cluster.close()
    crashes = tuple(nemesis.crashes) if nemesis else ()
    faults = nemesis.faults if nemesis else 0
    notes = nemesis.summary() if nemesis else ""
    return _finish(options, workload, faults, events, unread, error, crashes, kind.clock_margin_s, notes)


def _run_cycles(options: DrillOptions, cluster: LocalCluster, nemesis: Any, rng: random.Random) -> None:
    deadline = time.monotonic() + options.duration_s
    while time.monotonic() < deadline:
        time.sleep(rng.uniform(0.5, 2.0))  # some undisturbed load between faults
        nemesis.cycle()
        nemesis.restart_crashed()
        cluster.wait_settled(SETTLE_TIMEOUT_S)


def _finish(options: DrillOptions, workload: Workload | None, faults: int, events: list[dict[str, Any]],
            unread: int, error: str, crashes: tuple[str, ...], clock_margin_s: float,
            notes: str = "") -> DrillResult:  # fmt: skip
    out = options.out_dir
    dump_jsonl(events, out / "nemesis.jsonl")
    check = None
    if workload is not None and workload.recorder.records:
        dump_jsonl(workload.recorder.records, out / "history.jsonl")
        check = check_history(workload.recorder.records, clock_margin_s=clock_margin_s)
        with open(out / "findings.txt", "w", encoding="utf-8") as fh:
            for finding in check.findings:
                fh.write(f"{finding.kind} {finding.key}: {finding.message}\n")
            for crash in crashes:
                fh.write(f"crash {crash}\n")
    result = DrillResult(options, faults, check, unread, error, crashes, notes)
    (out / "summary.txt").write_text(result.line() + "\n")
    if workload is not None:
        write_timeline(out / "timeline.svg", workload.recorder.records, events, result.line())
    return result


def _exit_on_signal(signum: int, frame: object) -> None:
    """SIGTERM or SIGHUP: unwind through run()'s cleanup, which kills the nodes, instead of dying
    on the spot and leaving them running. A second signal must not cut that cleanup short."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/drill", description="Run a fault drill against a local cluster.")
    parser.add_argument("name", choices=sorted(NEMESES), help="which fault to inject")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of faults (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault schedule and the workload")
    parser.add_argument("--out", type=Path, help="run directory (default ./drill-runs/NAME-seed-N)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (default 4)")
    parser.add_argument("--node-timeout-ms", type=int, default=2000, help="the nodes' node_timeout_ms (default 2000)")
    parser.add_argument("--without", default="", metavar="OP,OP",
                        help=f"leave these workload operations out ({', '.join(op for op, _ in MIX)})")  # fmt: skip
    args = parser.parse_args(argv)
    without = tuple(op for op in args.without.split(",") if op)
    if args.duration <= 0 or args.clients < 1:
        parser.error("--duration must be > 0 and --clients >= 1")
    if set(without) - {op for op, _ in MIX}:
        parser.error(f"--without: unknown operation in {args.without!r}")
    out = args.out or Path("drill-runs") / f"{args.name}-seed-{args.seed}"
    options = DrillOptions(args.name, args.duration, args.seed, out.resolve(), args.clients, args.node_timeout_ms,
                           without=without)  # fmt: skip
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    result = run(options)
    print(result.line())
    if result.exit_code:
        print(f"see {out}/ (findings.txt, history.jsonl, nemesis.jsonl, logs/)", file=sys.stderr)
        if result.error:
            print(f"drill error: {result.error}", file=sys.stderr)
    return result.exit_code
