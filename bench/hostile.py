"""What the frames built to cost the server CPU cost it, next to an ordinary frame of the same size.

    .venv/bin/python bench/hostile.py [--rounds 5]

Every check ``decode_frame`` runs before a route is linear in the frame's size, so a hostile
frame should cost about what parsing an honest one costs, not more. This prints, for each shape
of the hostile corpus the tests send (``tests/test_hostile_frames.py``, each near the 1 MiB
limit) and for two normal frames (a list of objects, one long text), the CPU time
(``time.process_time``, best of ``--rounds``) per MiB of ``decode_frame`` and of a plain
``json.loads`` of the same frame, and how it compares to ``json.loads`` of the normal
list-of-objects frame. The goal is no hostile shape above 3x that. It asserts only that every
frame gets the answer the tests expect, never a speed.
"""

import argparse
import gc
import json
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "testproject")]

# Neither import touches Django's settings, so no django.setup() is needed.
from django_channels_router.protocol import FrameError, decode_frame  # noqa: E402
from tests.test_hostile_frames import HOSTILE, LIMIT, VALUES  # noqa: E402

MIB = 1_048_576
GOAL = 3.0
SENTENCE = "The quick brown fox jumps over the lazy dog, and then writes a short note about it."


def envelope(payload: object) -> str:
    """A request frame as a browser's ``JSON.stringify`` writes it (no spaces)."""
    frame = {"uuid": str(uuid.uuid4()), "route": "create", "headers": {}, "payload": payload}
    return json.dumps(frame, separators=(",", ":"))


def list_of_objects(size: int = LIMIT - 64) -> str:
    """Articles, as many as fit in ``size`` bytes."""
    def article(i: int) -> dict[str, object]:
        return {"id": i, "title": f"Article {i}", "body": SENTENCE, "tags": ["a", "b"], "published": True,
                "score": 1.5}

    count = size // len(json.dumps(article(99_999), separators=(",", ":")))
    while len((frame := envelope([article(i) for i in range(count)])).encode()) > size:
        count -= 100
    return frame


def long_text(size: int = LIMIT - 64) -> str:
    """One article body of paragraphs (newlines and a few quotes to escape) filling ``size`` bytes."""
    paragraph = (SENTENCE + ' She said "yes". ') * 6 + "\n\n"
    body = paragraph * (size // len(json.dumps(paragraph)))
    while len((frame := envelope({"title": "A long article", "body": body})).encode()) > size:
        body = body[:-len(paragraph)]
    return frame


def best_ms(call: Callable[[], object], rounds: int) -> float:
    """The least CPU time of ``rounds`` calls, in milliseconds (freeing the result not counted)."""
    best = float("inf")
    for _ in range(rounds):
        gc.collect()
        started = time.process_time()
        result = call()
        best = min(best, time.process_time() - started)
        del result
    return best * 1000


def decode(frame: str) -> object:
    try:
        return decode_frame(frame, None, LIMIT, VALUES)
    except FrameError as exc:
        return exc


def outcome(frame: str) -> tuple[int | None, str]:
    """``(status, code)`` of a rejected frame; ``(None, "accepted")`` when decode_frame returns."""
    result = decode(frame)
    return (result.status, result.code) if isinstance(result, FrameError) else (None, "accepted")


def json_ms(frame: str, rounds: int) -> float | None:
    """Plain ``json.loads`` of ``frame``, or None if it raises."""
    try:
        json.loads(frame)
    except (ValueError, RecursionError):
        return None
    return best_ms(lambda: json.loads(frame), rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="best of this many calls per frame (default 5)")
    args = parser.parse_args()

    normal = list_of_objects()
    frames: dict[str, tuple[str, str]] = {  # name -> (frame, what decode_frame should say)
        "normal: list of objects": (normal, "accepted"),
        "normal: one long text": (long_text(), "accepted"),
    }
    for name, (frame, status, code) in HOSTILE.items():
        # A 404 is the consumer's answer to an unknown route: decode_frame itself accepts the frame.
        frames[name] = (frame, "accepted" if status == 404 else f"{status} {code}")

    rows: list[tuple[str, int, str, float, float | None]] = []  # name, bytes, gives, decode and loads ms/MiB
    for name, (frame, expected) in frames.items():
        status, code = outcome(frame)
        gives = code if status is None else f"{status} {code}"
        assert gives == expected, (name, gives, expected)
        mib = len(frame.encode()) / MIB
        loads = json_ms(frame, args.rounds)
        rows.append((name, len(frame.encode()), gives, best_ms(lambda f=frame: decode(f), args.rounds) / mib,
                     None if loads is None else loads / mib))
    baseline = rows[0][4]  # json.loads of the normal list-of-objects frame, ms per MiB
    assert baseline is not None

    print(f"Python {sys.version.split()[0]}, CPU time (process_time), best of {args.rounds} rounds")
    print(f"{'shape':<38} {'bytes':>8}  {'decode_frame gives':<20} {'decode ms/MiB':>13} "
          f"{'json.loads ms/MiB':>17} {'vs normal loads':>15}")
    above = []
    for name, size, gives, decode_per_mib, loads_per_mib in rows:
        ratio = decode_per_mib / baseline
        if name in HOSTILE and ratio > GOAL:
            above.append(f"{name} ({ratio:.2f}x)")
        loads = "rejected" if loads_per_mib is None else f"{loads_per_mib:.2f}"
        print(f"{name:<38} {size:>8}  {gives:<20} {decode_per_mib:>13.2f} {loads:>17} {ratio:>14.2f}x")
    print(f"\ngoal: no hostile shape above {GOAL:g}x json.loads of a normal frame ({baseline:.2f} ms/MiB): "
          + (f"met by all {len(HOSTILE)} shapes" if not above
             else f"met by {len(HOSTILE) - len(above)} of {len(HOSTILE)}; above: {', '.join(above)}"))


if __name__ == "__main__":
    main()
