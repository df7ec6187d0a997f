"""What one change looks like to the subscribers of this process, worked out once per way of
seeing it (see ``SubscribeModelMixin.get_subscription_key``): one query per change, not one per
subscriber."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Evaluation", "EvaluationCache", "evaluations"]


@dataclass
class Evaluation:
    """What one change looks like to subscribers who share a key: ``{pk: data}`` for the changed
    objects they may see (None where object permissions refuse one), or ``ended``, the error
    reply of a subscriber whose credentials no longer authenticate. ``etags``: ``{pk: tag}`` of
    the data in ``seen`` (``headers.etag`` of its pushes). ``position``: that of its pushes, taken
    when the reads began (None when the history is off)."""

    seen: dict[str, Any] = field(default_factory=dict)
    etags: dict[str, str | None] = field(default_factory=dict)
    ended: dict[str, Any] | None = None
    position: str | None = None


class _Pending:
    """One evaluation, computed once while the others who need it wait."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Evaluation | None = None


class EvaluationCache:
    """The evaluations of recent changes, by change and subscription key, shared by every
    subscriber of this process (and its worker threads). Kept only for the ``size`` most recent."""

    def __init__(self, size: int = 256) -> None:
        self.lock = threading.Lock()
        self.entries: OrderedDict[Hashable, _Pending] = OrderedDict()
        self.size = size

    def get(self, key: Hashable, compute: Callable[[], Evaluation]) -> Evaluation:
        """The evaluation under ``key``, computed by the first who asks; raises when that failed."""
        with self.lock:
            entry = self.entries.get(key)
            first = entry is None
            if entry is None:
                entry = self.entries[key] = _Pending()
                while len(self.entries) > self.size:
                    self.entries.popitem(last=False)
        if first:
            try:
                entry.result = compute()
            finally:
                entry.done.set()
        entry.done.wait()
        if entry.result is None:  # the first evaluation failed (and was logged there)
            raise RuntimeError("the evaluation of this change failed")
        return entry.result


evaluations = EvaluationCache()
