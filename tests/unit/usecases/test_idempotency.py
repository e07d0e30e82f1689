"""run_once: the stored first answer, payload mismatches, and failures that store nothing."""

from __future__ import annotations

import pytest

from billing.domain.errors import FailedPrecondition, InvalidArgument, NotFound
from rating.usecases.idempotency import RequestKey, run_once
from tests.unit.usecases.fakes import FakeState, FakeUnitOfWork


def _run(state: FakeState, key: RequestKey, answer: str, calls: list[str]):  # type: ignore[no-untyped-def]
    async def mutation(uow: FakeUnitOfWork) -> str:
        calls.append(answer)
        return answer

    return run_once(lambda: FakeUnitOfWork(state), key, mutation, str.encode, bytes.decode)


async def test_a_repeated_key_returns_the_stored_answer_without_running_again() -> None:
    state, calls = FakeState(), []
    key = RequestKey("r1", "CreateThing", b"payload")
    assert await _run(state, key, "first", calls) == "first"
    assert await _run(state, key, "second", calls) == "first"
    assert calls == ["first"]


async def test_a_repeated_key_with_another_payload_or_method_is_refused() -> None:
    state, calls = FakeState(), []
    await _run(state, RequestKey("r1", "CreateThing", b"a"), "first", calls)
    with pytest.raises(FailedPrecondition):
        await _run(state, RequestKey("r1", "CreateThing", b"b"), "x", calls)
    with pytest.raises(FailedPrecondition):
        await _run(state, RequestKey("r1", "DeleteThing", b"a"), "x", calls)
    assert calls == ["first"]


async def test_a_failed_mutation_commits_nothing_and_leaves_the_key_free() -> None:
    state = FakeState()

    async def failing(uow: FakeUnitOfWork) -> str:
        raise NotFound("missing")

    key = RequestKey("r2", "CreateThing", b"p")
    with pytest.raises(NotFound):
        await run_once(lambda: FakeUnitOfWork(state), key, failing, str.encode, bytes.decode)
    assert state.commits == 0
    assert await _run(state, key, "ok", []) == "ok"


@pytest.mark.parametrize("request_id", ["", "   ", "x" * 129])
async def test_a_missing_or_oversized_request_id_is_invalid(request_id: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await _run(FakeState(), RequestKey(request_id, "CreateThing", b""), "x", [])
    assert [v.field for v in caught.value.violations] == ["request_id"]
