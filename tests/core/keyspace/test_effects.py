"""The durability/replication contract: replaying a primary's effects, with no
clock, rebuilds exactly the primary's keyspace (values and deadlines), after
every single command. Also: a failing command changes nothing and logs nothing."""

import contextlib
import copy
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from trionode.core.errors import CommandError
from trionode.core.keyspace import Keyspace, execute
from trionode.core.keyspace.table import KEYSPACE_COMMANDS

from .helpers import START_MS

KEYS = ["a", "{a}b", "c"]
VALUES = ["1", "x", "-5", "9223372036854775807", "", "7"]
FIELDS = ["f", "g", "h"]
INTS = ["-1", "0", "1", "3", "100", "x"]
SECONDS = ["-1", "0", "1", "2", "30"]
MILLIS = ["-5", "0", "1", "20", "150", "4000"]

key = st.sampled_from(KEYS)
value = st.sampled_from(VALUES)
keys = st.lists(key, min_size=1, max_size=4)
field = st.sampled_from(FIELDS)
n = st.sampled_from(INTS)
abs_ms = st.integers(-50, 500).map(lambda d: str(START_MS + d))
abs_s = st.integers(-2, 3).map(lambda d: str(START_MS // 1000 + d))
expire_opts = st.lists(st.sampled_from(["NX", "XX", "GT", "LT"]), max_size=2)

set_expiry = st.one_of(
    st.just([]),
    st.just(["KEEPTTL"]),
    st.tuples(st.just("EX"), st.sampled_from(SECONDS)).map(list),
    st.tuples(st.just("PX"), st.sampled_from(MILLIS)).map(list),
    st.tuples(st.just("PXAT"), abs_ms).map(list),
    st.tuples(st.just("EXAT"), abs_s).map(list),
)
set_cond = st.sampled_from([[], ["NX"], ["XX"], ["GET"], ["NX", "GET"], ["XX", "GET"]])


def cmd(name, *parts):
    return st.tuples(*parts).map(lambda t: [name, *[x for p in t for x in (p if isinstance(p, list) else [p])]])


COMMANDS = st.one_of(
    cmd("SET", key, value, set_cond, set_expiry),
    cmd("SET", key, value),
    cmd("GET", key),
    cmd("SETNX", key, value),
    cmd("GETSET", key, value),
    cmd("GETDEL", key),
    cmd("MGET", keys),
    cmd("MSET", key, value, key, value),
    cmd("INCR", key),
    cmd("DECR", key),
    cmd("INCRBY", key, n),
    cmd("DECRBY", key, n),
    cmd("APPEND", key, value),
    cmd("DEL", keys),
    cmd("UNLINK", keys),
    cmd("EXISTS", keys),
    cmd("TYPE", key),
    cmd("EXPIRE", key, st.sampled_from(SECONDS), expire_opts),
    cmd("PEXPIRE", key, st.sampled_from(MILLIS), expire_opts),
    cmd("EXPIREAT", key, abs_s, expire_opts),
    cmd("PEXPIREAT", key, abs_ms, expire_opts),
    cmd("TTL", key),
    cmd("PTTL", key),
    cmd("PERSIST", key),
    cmd("SCAN", st.just("0")),
    cmd("KEYS", st.just("*")),
    cmd("LPUSH", key, value, value),
    cmd("RPUSH", key, value),
    cmd("LPOP", key),
    cmd("RPOP", key, n),
    cmd("LRANGE", key, n, n),
    cmd("LINDEX", key, n),
    cmd("HSET", key, field, value),
    cmd("HDEL", key, field, field),
    cmd("HINCRBY", key, field, n),
    cmd("HGETALL", key),
    cmd("SADD", key, value, value),
    cmd("SREM", key, value),
    cmd("SMEMBERS", key),
    cmd("SCARD", key),
    cmd("FLUSHALL"),
    st.just(["ACTIVE-EXPIRE"]),
)
DELTAS = st.one_of(st.just(0), st.integers(0, 40), st.integers(0, 3000))
STEPS = st.lists(st.tuples(DELTAS, COMMANDS), min_size=20, max_size=80)


def assert_same(primary: Keyspace, replica: Keyspace) -> None:
    assert primary.data == replica.data
    assert primary.expires == replica.expires


@settings(max_examples=200, deadline=None)
@given(STEPS, st.integers(0, 2**32))
def test_replaying_effects_rebuilds_the_primary(steps, seed):
    rng = random.Random(seed)
    primary, replica = Keyspace(), Keyspace()
    now = START_MS
    for delta, argv in steps:
        now += delta
        primary.now_ms = now
        raw = [a.encode() for a in argv]
        if argv[0] == "ACTIVE-EXPIRE":
            primary.active_expire(now, rng, 3, 4)
        else:
            before = copy.deepcopy(primary.data), dict(primary.expires)
            try:
                execute(primary, raw)
            except CommandError:
                assert (primary.data, primary.expires) == before, "a failed command mutated"
                assert primary.effects == [], "a failed command logged effects"
        effects, primary.effects = primary.effects, []
        for effect in effects:
            assert effect[0].decode().lower() in KEYSPACE_COMMANDS
            execute(replica, effect)  # replica.now_ms stays None: replay mode
        replica.effects.clear()
        assert_same(primary, replica)
    primary.check_invariants()
    replica.check_invariants()


def test_read_only_commands_log_nothing_when_nothing_expired():
    ks = Keyspace()
    ks.now_ms = START_MS
    execute(ks, [b"SET", b"k", b"v", b"EX", b"100"])
    ks.effects.clear()
    special = {"scan": [b"0"], "keys": [b"*"]}
    readonly = [name for name, spec in KEYSPACE_COMMANDS.items() if "readonly" in spec.flags]
    assert len(readonly) >= 20
    for name in readonly:
        arity = abs(KEYSPACE_COMMANDS[name].arity)
        try:
            execute(ks, [name.encode(), *special.get(name, [b"k", b"0", b"-1"][: arity - 1])])
        except CommandError as err:
            assert str(err).startswith("WRONGTYPE")
    assert ks.effects == []


def random_command(rng: random.Random, now: int) -> list[str]:
    """One command from the same vocabulary, drawn with a plain seeded Random."""
    k, v, i = rng.choice(KEYS), rng.choice(VALUES), rng.choice(INTS)
    at_ms, at_s = str(now + rng.randint(-50, 3000)), str(now // 1000 + rng.randint(-1, 3))
    opts = rng.sample(["NX", "XX", "GT", "LT"], rng.randint(0, 1))
    set_opts = rng.choice([[], ["NX"], ["XX"], ["GET"], ["KEEPTTL"]]) + rng.choice(
        [[], ["EX", rng.choice(SECONDS)], ["PX", rng.choice(MILLIS)], ["PXAT", at_ms], ["EXAT", at_s]]
    )
    return rng.choice(
        [
            ["SET", k, v, *set_opts],
            ["SET", k, v],
            ["GET", k],
            ["SETNX", k, v],
            ["GETSET", k, v],
            ["GETDEL", k],
            ["MSET", k, v, rng.choice(KEYS), v],
            ["INCR", k],
            ["DECRBY", k, i],
            ["APPEND", k, v],
            ["DEL", k, rng.choice(KEYS)],
            ["EXISTS", k, k],
            ["EXPIRE", k, rng.choice(SECONDS), *opts],
            ["PEXPIRE", k, rng.choice(MILLIS), *opts],
            ["PEXPIREAT", k, at_ms, *opts],
            ["EXPIREAT", k, at_s],
            ["PTTL", k],
            ["PERSIST", k],
            ["LPUSH", k, v, v],
            ["RPUSH", k, v],
            ["LPOP", k],
            ["RPOP", k, i],
            ["HSET", k, rng.choice(FIELDS), v],
            ["HDEL", k, rng.choice(FIELDS)],
            ["HINCRBY", k, rng.choice(FIELDS), i],
            ["SADD", k, v, rng.choice(VALUES)],
            ["SREM", k, v],
            ["SCAN", "0"],
            ["FLUSHALL"] if rng.random() < 0.1 else ["TYPE", k],
        ]
    )


def test_replay_random_walk():
    """Many more steps per second than Hypothesis; a failure names its seed."""
    for seed in range(30):
        rng = random.Random(seed)
        primary, replica = Keyspace(), Keyspace()
        now = START_MS
        for step in range(400):
            now += rng.choice([0, 1, rng.randint(0, 50), rng.randint(0, 3000)])
            primary.now_ms = now
            argv = random_command(rng, now)
            if rng.random() < 0.05:
                primary.active_expire(now, rng, 3, 4)
            with contextlib.suppress(CommandError):
                execute(primary, [a.encode() for a in argv])
            for effect in primary.effects:
                execute(replica, effect)
            primary.effects.clear()
            assert primary.data == replica.data, f"seed={seed} step={step} {argv}"
            assert primary.expires == replica.expires, f"seed={seed} step={step} {argv}"
        primary.check_invariants()
        replica.check_invariants()
