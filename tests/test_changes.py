"""The receiving half of the change-event protocol: which of a sender's numbered events were lost."""

from drf_bridge.changes import MAX_GAP, Gap, GapTracker


def test_numbers_in_order_leave_no_gap():
    tracker = GapTracker()
    assert [tracker.note("a", "demo.article", number) for number in (1, 2, 3)] == [None, None, None]


def test_the_first_number_seen_is_no_gap_whatever_it_is():
    # A subscriber joins while a sender is at 41: what went before was not meant for it.
    assert GapTracker().note("a", "demo.article", 41) is None


def test_a_skipped_number_is_a_gap_that_a_late_event_fills():
    tracker = GapTracker()
    tracker.note("a", "demo.article", 1)
    gap = tracker.note("a", "demo.article", 4)
    assert gap == Gap("a", "demo.article", range(2, 4))
    assert not gap.lost
    assert tracker.note("a", "demo.article", 3) is None  # late, not lost
    assert tracker.note("a", "demo.article", 2) is None
    assert not tracker.lost(gap)


def test_a_number_still_missing_when_checked_is_lost_once():
    tracker = GapTracker()
    tracker.note("a", "demo.article", 1)
    gap = tracker.note("a", "demo.article", 4)
    tracker.note("a", "demo.article", 2)  # 3 never comes
    assert tracker.lost(gap)
    assert not tracker.lost(gap)  # one resync per gap


def test_a_marker_repeating_the_last_number_reveals_a_lost_tail():
    # The marker carries the number of the sender's last event: 3 and 4 were lost.
    tracker = GapTracker()
    tracker.note("a", "demo.article", 2)
    gap = tracker.note("a", "demo.article", 5)
    assert gap is not None and list(gap.numbers) == [3, 4]
    assert tracker.note("a", "demo.article", 5) is None  # the second marker: nothing new
    assert tracker.lost(gap)


def test_a_gap_wider_than_max_gap_is_lost_at_once():
    tracker = GapTracker()
    tracker.note("a", "demo.article", 1)
    gap = tracker.note("a", "demo.article", MAX_GAP + 2)
    assert gap is not None and gap.lost and gap.label == "demo.article"
    assert tracker.note("a", "demo.article", MAX_GAP + 3) is None  # numbering goes on from there


def test_senders_and_models_are_numbered_apart():
    tracker = GapTracker()
    for sender, label in (("a", "demo.article"), ("b", "demo.article"), ("a", "tests.note")):
        assert tracker.note(sender, label, 7) is None
    gap = tracker.note("b", "demo.article", 9)
    assert gap == Gap("b", "demo.article", range(8, 9))
    assert tracker.note("a", "demo.article", 8) is None and tracker.lost(gap)


def test_only_the_most_recent_senders_are_remembered():
    tracker = GapTracker(senders=2)
    tracker.note("old", "demo.article", 1)
    gap = tracker.note("old", "demo.article", 3)
    tracker.note("b", "demo.article", 1)
    tracker.note("c", "demo.article", 1)  # "old" is forgotten, and its gap with it
    assert not tracker.lost(gap)
    assert tracker.note("old", "demo.article", 9) is None  # as if seen first


def test_cleared_gaps_are_not_lost():
    tracker = GapTracker()
    tracker.note("a", "demo.article", 1)
    gap = tracker.note("a", "demo.article", 3)
    tracker.clear()  # the subscriber went away: checks still scheduled find nothing
    assert gap is not None and not tracker.lost(gap)
