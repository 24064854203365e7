"""PostgreSQL: a burst of inserts refreshes the planner's statistics, so the claim keeps using its index."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kathikon.job import Job
from tests.conftest import postgres_url
from tests.workers import NoopWorker

psycopg = pytest.importorskip("psycopg")

from kathikon.storage import postgres  # noqa: E402
from kathikon.storage.postgres import PostgresStorage  # noqa: E402

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg(monkeypatch: pytest.MonkeyPatch) -> Iterator[PostgresStorage]:
    monkeypatch.setattr(postgres, "ANALYZE_AFTER", 20)
    store = PostgresStorage.from_url(postgres_url("_analyze"))
    store.reset()
    yield store
    store.close()


def jobs(n: int) -> list[Job]:
    return [Job.build(NoopWorker, {"n": i}) for i in range(n)]


def estimated_rows(store: PostgresStorage) -> float:
    with store._cursor("test") as cur:
        cur.execute(store._q["jobs_estimate"], {"schema": store.schema})
        return float(cur.fetchone()["n"])


def test_the_jobs_table_is_analyzed_once_a_burst_of_inserts_reaches_the_threshold(pg: PostgresStorage) -> None:
    pg.insert(jobs(10))
    assert estimated_rows(pg) <= 0  # never analyzed yet (-1), or analyzed empty (0)
    pg.insert(jobs(15))
    assert estimated_rows(pg) == 25


def test_the_next_analyze_waits_until_the_table_may_have_doubled(pg: PostgresStorage) -> None:
    pg.insert(jobs(40))
    assert estimated_rows(pg) == 40
    pg.insert(jobs(30))
    assert estimated_rows(pg) == 40  # 30 new rows < the 40 the planner knows of
    pg.insert(jobs(10))
    assert estimated_rows(pg) == 80


def test_a_failing_analyze_never_fails_the_insert_that_triggered_it(pg: PostgresStorage) -> None:
    pg._q["analyze_jobs"] = "ANALYZE kathikon_no_such_table"
    stored = pg.insert(jobs(25))
    assert len(pg.all()) == len(stored) == 25
