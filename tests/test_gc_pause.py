"""The collector pause around the margins report: off inside, back as it was after."""

from __future__ import annotations

import gc
import threading

from dashboard.gc_pause import collections_paused


def test_the_collector_is_off_inside_and_back_after() -> None:
    assert gc.isenabled()
    with collections_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_it_stays_off_when_it_was_off_before() -> None:
    gc.disable()
    try:
        with collections_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_overlapping_blocks_on_two_threads_resume_it_when_the_last_ends() -> None:
    inside, release = threading.Event(), threading.Event()

    def other() -> None:
        with collections_paused():
            inside.set()
            release.wait(5)

    thread = threading.Thread(target=other)
    with collections_paused():
        thread.start()
        assert inside.wait(5)
    assert not gc.isenabled()  # the other thread's report still runs
    release.set()
    thread.join(5)
    assert gc.isenabled()


def test_an_error_inside_still_resumes_it() -> None:
    try:
        with collections_paused():
            raise ValueError("boom")
    except ValueError:
        pass
    assert gc.isenabled()
