"""kill -9 at random moments loses no acknowledged write (S1), and damaged files are handled (S6)."""

import random
import threading
import time
from pathlib import Path

import redis

from tests.process.harness import NodeProcess, run_cli

KILL_ROUNDS = 4


class Writers:
    """Client threads that record exactly which writes the node acknowledged."""

    def __init__(self, port: int, round_no: int, threads: int = 4) -> None:
        self.port = port
        self.round_no = round_no
        self.acked_keys: dict[bytes, bytes] = {}
        self.acked_items: list[bytes] = []
        self.acked_incrs = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(t,), daemon=True) for t in range(threads)]

    def _run(self, t: int) -> None:
        r = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)
        n = 0
        try:
            while True:
                n += 1
                key, value = f"r{self.round_no}:t{t}:{n}".encode(), f"v{n}".encode()
                r.set(key, value)
                with self.lock:
                    self.acked_keys[key] = value
                item = f"{self.round_no}.{t}.{n}".encode()
                r.rpush("{l}list", item)
                with self.lock:
                    self.acked_items.append(item)
                r.incr("counter")
                with self.lock:
                    self.acked_incrs += 1
        except (redis.ConnectionError, redis.TimeoutError):
            return  # the node was killed; the write in flight has an unknown outcome

    def start(self) -> None:
        for th in self.threads:
            th.start()

    def join(self) -> None:
        for th in self.threads:
            th.join(timeout=15)
            assert not th.is_alive()


def test_kill_9_under_load_loses_no_acknowledged_write(node_factory) -> None:
    rng = random.Random(20261123)
    node: NodeProcess = node_factory(extra=["--conf", str(_small_compaction_conf(node_factory))]).start()
    all_keys: dict[bytes, bytes] = {}
    all_items: list[bytes] = []
    incrs = 0
    for round_no in range(KILL_ROUNDS):
        writers = Writers(node.port, round_no)
        writers.start()
        time.sleep(rng.uniform(0.2, 1.0))
        node.kill9()
        writers.join()
        all_keys.update(writers.acked_keys)
        all_items += writers.acked_items
        incrs += writers.acked_incrs
        node.start()
        r = node.client()
        pipe = r.pipeline(transaction=False)
        for key in all_keys:
            pipe.get(key)
        got = pipe.execute()
        missing = [k for k, v in zip(all_keys, got, strict=True) if v != all_keys[k]]
        assert not missing, f"round {round_no}: {len(missing)} acknowledged SETs lost, e.g. {missing[:3]}"
        stored = set(r.lrange("{l}list", 0, -1))
        assert not [i for i in all_items if i not in stored], f"round {round_no}: acknowledged RPUSH lost"
        assert int(r.get("counter") or 0) >= incrs
    assert len(all_keys) > 100, "the load was too light to mean anything"


def _small_compaction_conf(node_factory) -> Path:
    # Compact often so that kills also land during and around snapshots.
    probe = node_factory("conf-holder")
    path = probe.data_dir.parent / "compact-often.toml"
    path.write_text("compact_wal_records_min = 2000\n")
    return path


def _wal_segments(data_dir: Path) -> list[Path]:
    return sorted(data_dir.glob("data-*.wal"))


def test_torn_tail_is_cut_off_and_reported(node_factory) -> None:
    node = node_factory().start()
    r = node.client()
    for i in range(50):
        r.set(f"k{i}", i)
    node.kill9()
    with open(_wal_segments(node.data_dir)[-1], "ab") as f:
        f.write(b"\x40\x00\x00\x00garbage-from-a-crash")
    check = run_cli("wal", "check", str(node.data_dir))
    assert check.returncode == 1, check.stdout
    assert "torn" in check.stdout
    node.start()
    assert node.client().get("k49") == b"49"
    assert "torn" in node.log()
    assert run_cli("wal", "check", str(node.data_dir)).returncode == 0


def test_mid_log_corruption_stops_the_node_naming_file_and_offset(node_factory) -> None:
    node = node_factory().start()
    r = node.client()
    for i in range(50):
        r.set(f"k{i}", "x" * 20)
    node.kill9()
    segment = _wal_segments(node.data_dir)[-1]
    data = bytearray(segment.read_bytes())
    used = len(data.rstrip(b"\x00"))  # the segment is preallocated: zeros follow its records
    data[used // 2] ^= 0xFF
    segment.write_bytes(bytes(data))
    check = run_cli("wal", "check", str(node.data_dir))
    assert check.returncode == 2, check.stdout
    node.start(wait=False)
    assert node.proc.wait(timeout=30) == 2
    log = node.log()
    assert segment.name in log and "corrupt record at byte" in log


def test_a_damaged_epoch_history_stops_the_node_naming_it(node_factory) -> None:
    node = node_factory().start()
    node.client().set("k", "v")
    node.kill9()
    history = node.data_dir / "data-history"
    data = bytearray(history.read_bytes())
    data[-1] ^= 0xFF
    history.write_bytes(bytes(data))
    check = run_cli("wal", "check", str(node.data_dir))
    assert check.returncode == 2 and "data-history: corrupt record at byte 0" in check.stdout, check.stdout
    node.start(wait=False)
    assert node.proc.wait(timeout=30) == 2
    assert "data-history: corrupt record at byte 0: checksum mismatch" in node.log()
