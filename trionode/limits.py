"""Every bound trionode enforces, in one place, with the unit last.

Values here are the defaults; the ones that an operator may tune are exposed as
configuration keys (see ``trionode/config.py`` and ``conf/single.toml``), and the
config loader checks them against the hard ceilings below. Assertions at the
bottom keep the bounds consistent with each other, so a bad edit fails at import.
"""

# --- RESP protocol (per connection) ------------------------------------------
resp_bulk_bytes_max = 512 * 1024 * 1024       # Redis proto-max-bulk-len
resp_args_max = 1024 * 1024                    # elements in one multibulk request
resp_inline_bytes_max = 64 * 1024              # Redis PROTO_INLINE_MAX_SIZE
resp_read_bytes = 64 * 1024                    # one socket receive
resp_pipeline_commands_max = 1024              # commands executed before replies are flushed
resp_reply_bytes_max = 64 * 1024 * 1024        # replies buffered for one connection before flushing
resp_unauthenticated_args_max = 10             # before AUTH (Valkey's bounds): elements in one request...
resp_unauthenticated_bulk_bytes_max = 16 * 1024  # ...and bytes in one of them

# --- Clients and file descriptors ----------------------------------------------
clients_max = 10_000                           # lowered at start if the open-files limit cannot cover it
fds_reserved = 64                              # WAL and snapshot files, listeners, trio's wake-up pipes
accept_backoff_ms = 100                        # a listener whose accept() failed (EMFILE...) retries after this

# --- Data WAL and group commit -------------------------------------------------
wal_batch_records_max = 4096                   # records written by one write()+fsync()
wal_batch_bytes_max = 8 * 1024 * 1024          # bytes written by one write()+fsync()
wal_pending_bytes_max = 64 * 1024 * 1024       # appended but not yet written; appenders wait past it
wal_record_bytes_max = 512 * 1024 * 1024 + 64 * 1024  # one record: a maximal value plus framing
wal_segment_bytes_max = 256 * 1024 * 1024      # a segment past this is rotated
wal_prealloc_bytes = 4 * 1024 * 1024           # a segment's disk space is reserved this much at a time
wal_disk_full_retry_ms = 1_000                 # a WAL that found the disk full tries again this often

# --- Compaction ----------------------------------------------------------------
compact_wal_bytes_min = 64 * 1024 * 1024       # compact once the WAL holds this many bytes...
compact_wal_records_min = 1_000_000            # ...or this many records
compact_wal_percent = 100                      # ...and has grown by this % of the snapshot (Redis's 100% default)
compact_check_interval_ms = 1_000
# A compaction installs its snapshot only once the ISR has acknowledged the cut; it waits this long.
compact_ack_wait_ms = 2_000
snapshot_chunk_keys_max = 1024                 # keys per snapshot record
snapshot_chunk_bytes_max = 1024 * 1024         # ...or key and value bytes per record (a bigger value: one key)
snapshot_write_buffer_bytes = 1024 * 1024      # snapshot records gathered before one write(), bytes

# --- Expiry --------------------------------------------------------------------
expire_cycle_interval_ms = 100                 # active expiry runs ten times a second, as in Redis
expire_sample_keys = 20                        # keys sampled per round (Redis ACTIVE_EXPIRE_CYCLE_KEYS_PER_LOOP)
expire_rounds_max = 16                         # rounds per cycle while >25% of samples were expired

# --- Lazy freeing ------------------------------------------------------------------
lazyfree_members_min = 64                      # an aggregate larger than this is freed in steps (Redis's threshold)
lazyfree_members_per_step = 1024               # members freed between two turns of the event loop (~1-3 ms)
lazyfree_idle_ms = 10                          # how often the freeing task looks for new garbage

# --- Commands ------------------------------------------------------------------
scan_count_max = 100_000                       # upper bound honoured for SCAN COUNT
shutdown_grace_ms = 5_000                      # time given to connections to drain at shutdown

# --- Slots ---------------------------------------------------------------------
slots_count = 16384

assert resp_inline_bytes_max <= resp_read_bytes * 16
assert wal_batch_bytes_max <= wal_pending_bytes_max
assert wal_record_bytes_max > resp_bulk_bytes_max
assert wal_batch_records_max >= 1
assert expire_sample_keys >= 1 and expire_rounds_max >= 1

# --- Cluster bus -----------------------------------------------------------------
bus_frame_bytes_max = 64 * 1024 * 1024         # one bus frame (a Raft snapshot must fit)
bus_send_queue_msgs_max = 1024                 # queued per peer; beyond it messages are dropped (Raft retries)
bus_send_queue_bytes_max = 2 * bus_frame_bytes_max  # encoded bytes queued per peer, likewise
bus_connect_timeout_ms = 2_000
bus_backoff_min_ms = 50                        # reconnect backoff doubles from here...
bus_backoff_max_ms = 2_000                     # ...up to here
bus_handshake_timeout_ms = 2_000
bus_hello_bytes_max = 64 * 1024                # a frame before the handshake completes
bus_inbound_connections_max = 128              # inbound bus connections at once, all peers together
bus_handshakes_max = 16                        # inbound bus connections still proving the secret, at once
bus_inbound_per_peer_max = 4                   # inbound bus connections at once from one node id

# --- Raft driver -----------------------------------------------------------------
raft_tick_ms = 100                             # one Raft tick
raft_election_ticks = 10                       # election timeout: 10-20 ticks (1-2 s)
raft_heartbeat_ticks = 1
raft_inbox_msgs_max = 4096                     # inbound Raft messages queued for the driver
raft_compact_entries_min = 1_000               # snapshot the control plane after this many applied entries
raft_proposal_timeout_ms = 10_000              # an operator command waits this long for its entry to apply
raft_voters_max = 5

assert bus_backoff_min_ms <= bus_backoff_max_ms
assert bus_hello_bytes_max <= bus_frame_bytes_max
assert bus_inbound_per_peer_max <= bus_inbound_connections_max
# One outbound connection per peer that may dial in, plus the inbound ones.
fds_bus_max = 2 * bus_inbound_connections_max + bus_handshakes_max
assert raft_heartbeat_ticks < raft_election_ticks
raft_forwarded_max = 256                       # operator commands forwarded to the leader, in flight
raft_read_indexes_max = 256                    # read-index questions to the leader in flight

# --- Replication -------------------------------------------------------------------
repl_backlog_bytes_max = 64 * 1024 * 1024      # recent effects kept in memory for partial resyncs
repl_records_per_msg_max = 512                 # effects in one replication message
repl_snapshot_chunk_keys_max = 512             # keys in one full-sync chunk
repl_snapshot_chunks_per_round_max = 256       # full-sync chunks sent to one replica per streaming round
replica_lag_timeout_ms = 5_000                 # an ISR member behind for this long is shrunk out
repl_sync_retry_ms = 500                       # a replica re-sends its sync request this often until answered
repl_tick_ms = 100                             # the primary checks ISR health this often
repl_silence_ms = 2_000                        # a replica that hears nothing of its session this long resyncs
assert repl_snapshot_chunks_per_round_max * 4 <= bus_send_queue_msgs_max  # a round leaves room in the queue

# --- Slot migration ------------------------------------------------------------------
migration_pause_ms_max = 1_000                 # a handover's write pause; past it the job aborts (writes resume)
migration_copy_keys_max = 512                  # keys read and sent in one copy chunk (one stream record)
migration_delete_keys_max = 512                # keys deleted in one cleanup chunk
migration_copy_lag_records_max = 64            # the copy waits while this many stream records are unacknowledged
migration_pause_lag_records_max = 16           # writes pause only once the target is this close
migration_lag_records_max = 100_000            # a target further behind than this aborts the job (buffer bound)
migration_ack_timeout_ms = 10_000              # no acknowledgement from the target for this long aborts the job
migration_propose_retry_ms = 1_000             # an abort not yet applied is proposed again this often
migration_start_timeout_ms = 10_000            # a start (or the target's readiness) not seen by then: give up
migration_establish_retry_ms = 200             # the target is asked again this often until it answers
migration_resend_ms = 500                      # no acknowledgement for this long: the stream is sent again from it
migration_records_per_msg_max = 64             # stream records in one bus message
migration_paused_wait_ms_max = 5_000           # a client's write held by a pause waits this long, then TRYAGAIN
# A command for a slot this shard imports waits this long for the configuration to catch up with the
# leader's (the commit may be on its way), then is redirected to the source.
routing_catch_up_ms_max = 1_000
migration_cleanup_idle_ms = 1_000              # with nothing to delete, cleanup looks again this often
migration_log_jobs_max = 32                    # finished jobs CLUSTER GETSLOTMIGRATIONS still lists
migration_loop_share = 0.3                     # of the event loop's time a migration's copy, apply or cleanup takes
migration_slice_ms = 1                         # ... in slices this long (plus one chunk), each followed by a rest
migration_rest_ms_max = 50                     # the longest rest after a slice (a slow chunk does not stall a job)
migration_inbox_msgs_max = 128                 # stream messages a target queues to apply; past it they are dropped

assert migration_pause_lag_records_max <= migration_copy_lag_records_max < migration_lag_records_max
assert migration_copy_keys_max >= 1 and migration_delete_keys_max >= 1
assert max(migration_propose_retry_ms, migration_establish_retry_ms) < migration_start_timeout_ms
assert migration_resend_ms < migration_ack_timeout_ms and migration_pause_ms_max < migration_paused_wait_ms_max
