"""Deterministic simulation of the Raft control plane (DESIGN §8.2).

Theory of operation
-------------------
``trionode sim --seed N --steps M`` runs K Raft cores and their cluster state
machines in one process, in a plain loop (not trio: trio's scheduler is
randomised on purpose). Everything the cores touch is simulated here:

* ``clock``      -- simulated time (one step = one tick) and seeded per-subsystem randomness;
* ``network``    -- delay, loss, reordering, duplication, symmetric and one-way partitions;
* ``disk``       -- per-node files with unsynced bytes, torn tails at a crash, injected corruption;
* ``backend``    -- the Raft core and cluster state machine under test, swappable for planted bugs;
* ``node``       -- one node: RawNode + state machine + disk, following persist -> send -> apply -> advance;
* ``workload``   -- client proposals: valid and deliberately stale cluster commands;
* ``nemesis``    -- the faults: crashes, restarts, partitions, membership changes, transfers, drift;
* ``mirror``     -- entry digests and chain-hashed copies of each node's log, for O(1) comparisons;
* ``invariants`` -- incremental safety checks over everything every node has ever done;
* ``trace``      -- coverage counters and the bounded event trace;
* ``runner``     -- the step loop and the report;
* ``command``    -- ``trionode sim``: seeds, ranges, steps per second on stderr.

Every random choice comes from ``random.Random`` instances derived from the
seed by name, nothing iterates a set or dict in hash order, and no string is
hashed with ``hash()``; so one seed prints byte-identical output on every run,
whatever ``PYTHONHASHSEED`` is. Wall-clock time is read only by the CLI, to
print steps per second on stderr.
"""
