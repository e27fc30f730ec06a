"""Splitting a batch the store refused, so that only the calls it refuses are set aside.

A pure function of the events and a ``write`` callable: no store, no journal, no counters, so
it is tested with a fake ``write``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tracking.events import CallEvent
from tracking.health import error_text

REFUSALS_PER_BATCH = 16


class RefusesEveryCall(Exception):
    """The store refused more calls of one batch than bad input would explain."""

    def __init__(self, last: BaseException) -> None:
        super().__init__(
            f"the store refused more than {REFUSALS_PER_BATCH} calls of one batch, the last "
            f"with: {error_text(last)}; they wait in the journal (is its schema up to date?)"
        )


@dataclass
class Apart:
    """What writing a refused batch in parts came to."""

    refused: list[tuple[CallEvent, str]] = field(default_factory=list)  # to set aside, why
    unwritten: list[CallEvent] = field(default_factory=list)  # for the journal, in order
    failure: BaseException | None = None  # the store's own failure that stopped the split

    @property
    def ok(self) -> bool:
        """Every call was stored or set aside."""
        return self.failure is None


def write_apart(
    events: list[CallEvent],
    write: Callable[[list[CallEvent]], object],
    refuses: Callable[[BaseException], bool],
    error: BaseException,
) -> Apart:
    """Write a batch the store refused (``error``) in halves, and the halves that fail in
    halves, until each refused call stands alone: those are to be set aside, the others stored.

    Only a batch with a refused call pays for this: some 2 x log2(size) writes per refused
    call. Should the store fail otherwise meanwhile (unreachable, a timeout), this stops and
    returns the calls not yet written, with that failure, for the journal. So it does when
    more than ``REFUSALS_PER_BATCH`` calls of one batch are refused: then the store refuses
    calls wholesale (a schema older than this tracking, say), and splitting a batch into
    thousands of one-call writes would only fill the queue; the calls wait in the journal,
    none set aside, until the store takes them.
    """
    refused: list[tuple[CallEvent, str]] = []
    parts = [events]  # a stack: the next part to write last
    failed: BaseException | None = error  # the error of the part on top, already tried
    while parts:
        part = parts.pop()
        if failed is None:
            try:
                write(part)
                continue
            except Exception as exc:
                if not refuses(exc):
                    parts.append(part)
                    return Apart(refused, [e for p in reversed(parts) for e in p], exc)
                failed = exc
        if len(part) == 1:
            refused.append((part[0], error_text(failed)))
            if len(refused) > REFUSALS_PER_BATCH:  # not one bad call: every call
                unwritten = [e for e, _ in refused] + [e for p in reversed(parts) for e in p]
                return Apart([], unwritten, RefusesEveryCall(failed))
        else:
            middle = len(part) // 2
            parts += (part[middle:], part[:middle])
        failed = None
    return Apart(refused)
