"""What the migration simulation may do (faults), what it did (coverage), and how a run ended."""

from dataclasses import dataclass, field

from trionode.sim.data_config import CommitFaults


@dataclass(frozen=True, slots=True)
class MigrationFaults:
    write_probability: float = 0.6
    read_probability: float = 0.4
    stale_route_probability: float = 0.3  # a client routes by some node's view, not the committed one
    learn_probability: float = 0.35
    pull_probability: float = 0.5  # a replica copies from its primary this step
    crash_probability: float = 0.006
    job_crash_probability: float = 0.01  # a crash aimed at a running job's source or target primary...
    handover_crash_probability: float = 0.08  # ...while it is paused, committing or cleaning (short phases)
    restart_probability: float = 0.05
    cut_probability: float = 0.004
    heal_probability: float = 0.05
    manual_failover_probability: float = 0.002
    wal_full_probability: float = 0.05
    msg_loss_probability: float = 0.05
    msg_delay_ms_max: int = 40
    migrate_probability: float = 0.05  # the operator starts the next job when none runs
    commit: CommitFaults = field(default_factory=lambda: CommitFaults(delay_ms_max=100))


@dataclass(slots=True)
class MigrationCoverage:
    writes: int = 0
    writes_acked: int = 0
    reads_checked: int = 0
    refused: int = 0
    jobs_started: int = 0
    commits: int = 0
    aborts: int = 0
    starts_refused: int = 0
    copy_chunks: int = 0
    stream_records: int = 0
    pauses: int = 0
    orphans_held: int = 0
    cleanup_deletes: int = 0
    crashes: int = 0
    crashes_in_job: int = 0
    # A crash, cut or failover on the job's source or target shard, by the job's phase then.
    source_snapshotting: int = 0
    source_streaming: int = 0
    source_paused: int = 0
    source_committing: int = 0
    source_cleaning: int = 0
    target_snapshotting: int = 0
    target_streaming: int = 0
    target_paused: int = 0
    target_committing: int = 0
    target_cleaning: int = 0
    cuts: int = 0
    failovers: int = 0
    manual_failovers: int = 0
    msgs_lost: int = 0

    def items(self) -> list[tuple[str, int]]:
        return [(name, getattr(self, name)) for name in self.__slots__]

    def add(self, other: "MigrationCoverage") -> None:
        for name, value in other.items():
            setattr(self, name, getattr(self, name) + value)

    def format(self) -> str:
        return " ".join(f"{name}={value}" for name, value in self.items())


@dataclass(slots=True)
class MigrationResult:
    seed: int
    steps: int
    failure: str = ""
    failed_at: int = -1
    coverage: MigrationCoverage = field(default_factory=MigrationCoverage)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failure


def report(result: MigrationResult, notes_max: int = 30) -> list[str]:
    if result.ok:
        return [f"seed {result.seed}: ok"]
    return [f"seed {result.seed}: FAILED at {result.failed_at} ms: {result.failure}",
            *result.notes[-notes_max:]]  # fmt: skip
