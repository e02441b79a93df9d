"""Slot migration's decisions, pure and synchronous (DESIGN §6, issue 11).

Theory of operation. Ownership moves only by the cluster entries
``migration_start``, ``migration_commit`` and ``migration_abort``, whose apply
function (:mod:`trionode.core.cluster.commands`) is the authority: a commit
names both shards' epochs as of the start, so a failover on either side is
ordered before it (the commit is refused) or after it (the new primaries see
the slots moved), never interleaved (seed 001). This package holds the
decisions around those entries, as drivers in the Ready style of
:mod:`trionode.core.raft.rawnode`: inputs in, a list of actions out.

- :mod:`.export`: the source primary's job (copy, stream, pause, commit,
  clean up, or abort), :class:`ExportJob`;
- :mod:`.controller`: a node's jobs, MIGRATESLOTS/CANCELSLOTMIGRATIONS,
  orphaned migrations, the bounded log;
- :mod:`.staging`: which keys a node serves, keeps staged or deletes, and the
  target primary's :class:`ImportJob` (clear, receive, acknowledge only what
  its whole ISR holds);
- :mod:`.copy`: reading a slot's keys in bounded chunks from a cut;
- :mod:`.commands`: MIGRATESLOTS parsing and GETSLOTMIGRATIONS replies.

The shells (``io/``, ``sim/``) carry the actions out; none of these modules
reads a clock or touches a socket.
"""
