"""An independent checker for crash-restart drill histories (DESIGN §8.3, issue 6).

Imports nothing from ``trionode``. See :mod:`.history` for the record format,
:mod:`.checker` for what each check means, and :mod:`.linearizable` for the
per-key Wing-Gong/Lowe search. ``python -m scripts.checker HISTORY.jsonl``
prints the summary line and exits non-zero on any violation.
"""

from .checker import CheckResult, check_history, check_list_key, check_register_key, main, summary_line
from .finding import Finding
from .history import HistoryRecorder, Op, dump_jsonl, load_jsonl, pair_history
from .linearizable import LinearizabilityResult, check_register

__all__ = [
    "CheckResult",
    "Finding",
    "HistoryRecorder",
    "LinearizabilityResult",
    "Op",
    "check_history",
    "check_list_key",
    "check_register",
    "check_register_key",
    "dump_jsonl",
    "load_jsonl",
    "main",
    "pair_history",
    "summary_line",
]
