"""Crash, pause and partition drills against a real local trionode cluster.

``scripts/drill NAME --duration S --seed N`` starts a cluster of real node
processes on 127.0.0.1 (:mod:`.cluster`), puts every cluster-bus link through
a fault proxy (:mod:`.proxy`), drives a recorded redis-py workload
(:mod:`.workload`), injects one kind of fault over and over (:mod:`.nemesis`),
heals, reads everything back, and hands the history to the independent checker
in ``scripts/checker`` (:mod:`.runner`).
"""
