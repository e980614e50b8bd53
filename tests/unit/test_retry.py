"""`Retry`: the attempt count of a retry loop; delays come from its Backoff, never a clock.
`BoundedTasks`: short jobs, at most so many at once."""

import asyncio

from runtime.backoff import Backoff, Retry
from runtime.supervise import BoundedTasks

BACKOFF = Backoff(initial_s=1.0, max_s=8.0)


def ceilings(retry: Retry) -> float:
    """The delay at full jitter: the ceiling for the current attempt."""
    return retry.backoff.delay(retry.attempt, lambda: 1.0)


def test_failures_grow_the_delay_up_to_the_cap() -> None:
    retry = Retry(BACKOFF, rand=lambda: 1.0)
    assert retry.delay() == 1.0
    seen = []
    for _ in range(5):
        retry.failed()
        seen.append(retry.delay())
    assert seen == [2.0, 4.0, 8.0, 8.0, 8.0]


def test_reset_starts_over() -> None:
    retry = Retry(BACKOFF, rand=lambda: 1.0)
    retry.failed()
    retry.failed()
    retry.reset()
    assert retry.attempt == 0
    assert retry.delay() == 1.0


def test_a_run_that_lasted_is_healthy_a_short_one_failed() -> None:
    retry = Retry(BACKOFF, healthy_after_s=60.0, rand=lambda: 1.0)
    retry.ended(lasted_s=1.0)
    retry.ended(lasted_s=59.9)
    assert retry.attempt == 2
    assert ceilings(retry) == 4.0
    retry.ended(lasted_s=60.0)
    assert retry.attempt == 0


def test_without_a_healthy_time_every_end_is_a_failure() -> None:
    retry = Retry(BACKOFF)
    retry.ended(lasted_s=1e9)
    assert retry.attempt == 1


def test_delay_is_jittered_by_the_injected_random() -> None:
    values = iter([0.0, 0.5, 0.25])
    retry = Retry(BACKOFF, rand=lambda: next(values))
    retry.failed()
    assert [retry.delay(), retry.delay(), retry.delay()] == [0.0, 1.0, 0.5]


async def test_bounded_tasks_refuse_past_their_limit_and_close_awaited() -> None:
    tasks = BoundedTasks("jobs", limit=2)
    release = asyncio.Event()
    finished: list[int] = []

    async def job(n: int) -> None:
        await release.wait()
        finished.append(n)

    assert tasks.spawn(job(1)) and tasks.spawn(job(2))
    assert not tasks.spawn(job(3))  # refused, closed: no "never awaited" warning
    await tasks.close()  # cancels the two, awaited
    assert finished == []
    release.set()
    assert tasks.spawn(job(4))
    await tasks.close()
    assert finished in ([], [4])
