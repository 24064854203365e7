"""PostgreSQL-only behaviour: transactional insert, LISTEN/NOTIFY, schemas, migrations, errors, concurrency.

What every backend shares is in test_conformance.py. These tests need a real server
(``KATHIKON_TEST_DATABASE_URL``); each uses a schema private to this test run, dropped when the session ends
(``drop_postgres_test_schemas`` in conftest.py).
"""

from __future__ import annotations

import asyncio
import importlib
import multiprocessing
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from kathikon import Kathikon
from kathikon.exceptions import ConfigError, DatabaseUnavailableError, SchemaVersionError, StorageError
from kathikon.job import Job, JobState
from kathikon.storage import Ack, open_storage
from kathikon.transfer import move_jobs
from tests.conftest import postgres_url
from tests.workers import NoopWorker

psycopg = pytest.importorskip("psycopg")

from kathikon.storage._postgres_config import parse_postgres_url  # noqa: E402
from kathikon.storage._postgres_notifier import Listener  # noqa: E402
from kathikon.storage.postgres import ONE_STATEMENT_MAX, PostgresStorage  # noqa: E402

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WORKER = "tests.workers:Echo"


def pg_url(suffix: str = "", **params: str) -> str:
    """The test URL for the schema ``kathikon_test_<run><suffix>``, with extra query parameters."""
    url = postgres_url(suffix)
    return url + ("&" + urlencode(params) if params else "")


def admin_url() -> str:
    """The server URL without Kathikon's parameters, for a plain psycopg connection."""
    return parse_postgres_url(postgres_url()).conninfo


def build(n: int = 0, **options: Any) -> Job:
    return Job.build(WORKER, {"n": n}, now=T0, **options)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.02)


def _open(url: str) -> PostgresStorage:
    store = open_storage(url)
    assert isinstance(store, PostgresStorage)
    store.setup()
    return store


@pytest.fixture
def pg() -> Iterator[PostgresStorage]:
    store = _open(pg_url("_pg"))
    store.clear_jobs()
    yield store
    store.close()


# -- transactional insert


def test_a_job_inserted_on_the_callers_connection_is_stored_when_the_caller_commits(pg: PostgresStorage) -> None:
    with psycopg.connect(admin_url()) as conn:
        [job] = pg.insert([build()], conn=conn)
        assert pg.fetch(job.id) is None  # not visible outside the open transaction
        conn.commit()
    assert pg.fetch(job.id) == job


def test_a_job_inserted_on_the_callers_connection_vanishes_when_the_caller_rolls_back(pg: PostgresStorage) -> None:
    with psycopg.connect(admin_url()) as conn:
        [job] = pg.insert([build()], conn=conn)
        conn.rollback()
    assert pg.fetch(job.id) is None


def test_an_insert_on_an_autocommit_connection_is_durable_at_once(pg: PostgresStorage) -> None:
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        jobs = pg.insert([build(1), build(2)], conn=conn)
    assert [pg.fetch(job.id) for job in jobs] == jobs


def test_an_async_insert_commits_and_rolls_back_with_the_callers_transaction(pg: PostgresStorage) -> None:
    async def scenario() -> tuple[Job, Job]:
        async with await psycopg.AsyncConnection.connect(admin_url()) as conn:
            [kept] = await pg.insert_async([build(1)], conn=conn)
            await conn.commit()
            [dropped] = await pg.insert_async([build(2)], conn=conn)
            await conn.rollback()
        return kept, dropped

    kept, dropped = asyncio.run(scenario())
    assert pg.fetch(kept.id) == kept
    assert pg.fetch(dropped.id) is None


def test_the_facade_joins_the_callers_sync_and_async_transactions() -> None:
    with Kathikon(database=pg_url("_pg")) as k:
        k.storage.clear_jobs()
        with psycopg.connect(admin_url()) as conn:
            kept = k.insert(NoopWorker, {"n": 1}, conn=conn)
        with psycopg.connect(admin_url()) as conn:
            dropped = k.insert_all([NoopWorker.new({"n": 2})], conn=conn)[0]
            conn.rollback()

        async def scenario() -> Job:
            async with await psycopg.AsyncConnection.connect(admin_url()) as conn, conn.transaction():
                return await k.ainsert(NoopWorker, {"n": 3}, conn=conn)

        async_kept = asyncio.run(scenario())
        assert {job.id for job in k.all()} == {kept.id, async_kept.id}
        assert dropped.id not in {job.id for job in k.all()}


def test_a_connection_of_the_wrong_kind_is_refused_with_a_type_error(pg: PostgresStorage) -> None:
    with pytest.raises(TypeError, match=r"psycopg\.Connection"):
        pg.insert([build()], conn=object())
    with psycopg.connect(admin_url()) as conn, pytest.raises(TypeError, match="AsyncConnection"):
        asyncio.run(pg.insert_async([build()], conn=conn))


def test_a_duplicate_id_is_a_value_error_naming_the_id(pg: PostgresStorage) -> None:
    [job] = pg.insert([build()])
    with pytest.raises(ValueError, match=job.id):
        pg.insert([build(1), job])
    assert pg.counts() == {("default", JobState.AVAILABLE): 1}


# -- LISTEN/NOTIFY


class Heard:
    """Collects the queues a subscription reports, thread-safely."""

    def __init__(self) -> None:
        self.queues: list[str | None] = []
        self._lock = threading.Lock()

    def __call__(self, queue: str | None) -> None:
        with self._lock:
            self.queues.append(queue)

    def has(self, queue: str | None) -> bool:
        with self._lock:
            return queue in self.queues


def test_an_insert_in_another_process_wakes_a_subscriber_with_the_queue(pg: PostgresStorage) -> None:
    heard = Heard()
    subscription = pg.subscribe(heard)
    assert subscription is not None
    other = _open(pg_url("_pg"))
    try:
        other.insert([build(queue="emails")])
        wait_for(lambda: heard.has("emails"))
    finally:
        other.close()
        subscription.close()


@pytest.mark.parametrize("size", [1, ONE_STATEMENT_MAX + 1])
def test_a_small_insert_and_a_copied_batch_both_store_every_job_and_wake_their_queues(pg: PostgresStorage,
                                                                                      size: int) -> None:
    heard = Heard()
    subscription = pg.subscribe(heard)
    assert subscription is not None
    jobs = [build(n, queue=f"q{n % 2}").with_changes(args={"pair": (n, n)}) for n in range(size)]
    try:
        stored = pg.insert(jobs)
        assert stored == [pg.fetch(job.id) for job in jobs]
        assert stored[0].args == {"pair": [0, 0]}
        wait_for(lambda: all(heard.has(job.queue) for job in jobs))
        with pytest.raises(ValueError, match=jobs[-1].id):
            pg.insert([build(size + 1), jobs[-1]] * size)
    finally:
        subscription.close()


def test_a_scheduled_job_wakes_nobody_until_it_is_staged(pg: PostgresStorage) -> None:
    heard = Heard()
    subscription = pg.subscribe(heard)
    assert subscription is not None
    try:
        pg.insert([build(queue="later", schedule_in=60), build(queue="marker")])
        wait_for(lambda: heard.has("marker"))
        assert not heard.has("later")
        assert pg.stage(T0 + timedelta(seconds=61), 10) == {"later": 1}
        wait_for(lambda: heard.has("later"))
    finally:
        subscription.close()


def test_a_rolled_back_insert_wakes_nobody(pg: PostgresStorage) -> None:
    heard = Heard()
    subscription = pg.subscribe(heard)
    assert subscription is not None
    try:
        with psycopg.connect(admin_url()) as conn:
            pg.insert([build(queue="ghost")], conn=conn)
            conn.rollback()
        pg.insert([build(queue="marker")])
        wait_for(lambda: heard.has("marker"))  # delivered in commit order: a ghost wake-up would come first
        assert not heard.has("ghost")
    finally:
        subscription.close()


def test_jobs_released_by_a_stopping_node_wake_the_others(pg: PostgresStorage) -> None:
    pg.insert([build(queue="handover")])
    [job] = pg.claim("handover", 1, datetime.now(UTC), "node-a")
    heard = Heard()
    subscription = pg.subscribe(heard)
    assert subscription is not None
    try:
        assert pg.ack([Ack(job.id, 1, "node-a", JobState.AVAILABLE, datetime.now(UTC))]) == [True]
        wait_for(lambda: heard.has("handover"))
    finally:
        subscription.close()


def test_subscribe_returns_none_when_notify_is_off() -> None:
    store = _open(pg_url("_pg", notify="false"))
    try:
        assert store.subscribe(Heard()) is None
    finally:
        store.close()


def test_a_listener_reconnects_after_its_connection_is_killed(pg: PostgresStorage) -> None:
    heard = Heard()
    subscription = pg.subscribe(heard)
    assert subscription is not None
    try:
        with psycopg.connect(admin_url(), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE query ILIKE %s AND pid <> pg_backend_pid()", [f'LISTEN "{pg.channel}"'])
        wait_for(lambda: heard.has(None))  # reconnected: every queue may have missed a wake-up
        pg.insert([build(queue="after")])
        wait_for(lambda: heard.has("after"))
    finally:
        subscription.close()


def test_a_listener_whose_probe_never_arrives_reports_notifications_unavailable(pg: PostgresStorage) -> None:
    # What a transaction-mode pooler does: LISTEN is accepted, nothing is ever delivered.
    listener = Listener(pg.settings.conninfo, pg.settings.connect_kwargs, pg.channel, Heard())
    assert listener.start(lambda payload: None) is False
    assert not listener.alive


def test_statements_still_work_with_prepared_statements_off() -> None:
    store = _open(pg_url("_pg", prepare="false"))
    try:
        assert store.settings.connect_kwargs["prepare_threshold"] is None
        for _ in range(8):  # past psycopg's default threshold of 5
            assert store.fetch("missing") is None
    finally:
        store.close()


def test_close_stops_the_listener_thread() -> None:
    store = _open(pg_url("_pg"))
    subscription = store.subscribe(Heard())
    assert subscription is not None
    store.close()
    assert not subscription.alive  # type: ignore[attr-defined]


# -- schemas and migrations


def test_two_schemas_in_one_database_never_see_each_others_jobs_or_wake_ups() -> None:
    first, second = _open(pg_url("_app1")), _open(pg_url("_app2"))
    heard = Heard()
    subscription = second.subscribe(heard)
    assert subscription is not None
    try:
        first.clear_jobs()
        second.clear_jobs()
        first.insert([build(queue="q1")])
        second.insert([build(queue="q2")])
        assert [job.queue for job in first.all()] == ["q1"]
        assert [job.queue for job in second.all()] == ["q2"]
        wait_for(lambda: heard.has("q2"))
        assert not heard.has("q1")
        assert first.channel != second.channel
    finally:
        subscription.close()
        first.close()
        second.close()


def test_setup_called_by_many_threads_at_once_migrates_exactly_once() -> None:
    url = pg_url(f"_fresh{uuid.uuid4().hex[:6]}")
    stores = [PostgresStorage.from_url(url) for _ in range(4)]
    errors: list[BaseException] = []

    def run(store: Any) -> None:
        try:
            store.setup()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert _versions(stores[0]) == [1, 2]
    finally:
        for store in stores:
            store.close()


def test_a_newer_schema_version_is_refused_and_left_untouched(pg: PostgresStorage) -> None:
    table = f'"{pg.schema}".kathikon_schema'
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f"INSERT INTO {table} (version) VALUES (99)")
    try:
        with pytest.raises(SchemaVersionError, match="99"):
            pg.setup()
        assert _versions(pg) == [1, 2, 99]
    finally:
        with psycopg.connect(admin_url(), autocommit=True) as conn:
            conn.execute(f"DELETE FROM {table} WHERE version = 99")


def _versions(store: PostgresStorage) -> list[int]:
    with psycopg.connect(admin_url()) as conn:
        rows = conn.execute(f'SELECT version FROM "{store.schema}".kathikon_schema ORDER BY version').fetchall()
    return [row[0] for row in rows]


# -- URLs, the missing extra, and errors


def test_kathikon_parameters_are_stripped_and_libpq_ones_passed_through() -> None:
    settings = parse_postgres_url("postgres://u:secret@db:5433/app?schema=jobs&pool_max=3&sslmode=disable&notify=no")
    assert (settings.schema, settings.pool_max, settings.notify) == ("jobs", 3, False)
    assert "schema" not in settings.conninfo
    assert "sslmode=disable" in settings.conninfo
    assert "secret" not in settings.masked_url
    assert "u:***@db:5433" in settings.masked_url


@pytest.mark.parametrize(("query", "named"), [
    ("colour=blue", "colour"), ("pool_max=0", "pool_max"), ("pool_min=5&pool_max=2", "pool_min"),
    ("notify=maybe", "notify"), ("prepare=2", "prepare"), ("schema=bad-name", "schema"),
    ("pool_timeout=never", "pool_timeout"), ("schema=a&schema=b", "schema"),
])
def test_a_bad_url_parameter_is_a_config_error_naming_it(query: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        PostgresStorage.from_url(f"postgresql://u:secret@localhost/app?{query}")


def test_the_storage_url_never_shows_the_password() -> None:
    store = PostgresStorage.from_url("postgresql://u:secret@localhost/app?password=also")
    assert "secret" not in store.url
    assert "also" not in store.url
    assert "secret" not in repr(store)


def test_a_missing_postgres_extra_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in sys.modules if n.startswith("kathikon.storage.postgres")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(ImportError, match=r"pip install 'kathikon\[postgres\]'"):
        importlib.import_module("kathikon.storage.postgres")


def test_an_unreachable_server_is_database_unavailable() -> None:
    store = PostgresStorage.from_url("postgresql://postgres@127.0.0.1:1/test?pool_timeout=0.5&pool_min=0")
    try:
        with pytest.raises(DatabaseUnavailableError) as setup_error:
            store.setup()
        assert isinstance(setup_error.value.__cause__, psycopg.OperationalError)
        with pytest.raises(DatabaseUnavailableError):
            store.fetch("x")
    finally:
        store.close()


def test_a_refused_statement_is_a_storage_error_from_the_driver_error(pg: PostgresStorage) -> None:
    with pytest.raises(StorageError) as refused:
        pg.claim("default", 1, T0, "node-a\x00")  # PostgreSQL text cannot hold NUL
    assert not isinstance(refused.value, DatabaseUnavailableError)
    assert isinstance(refused.value.__cause__, psycopg.Error)


def test_connections_killed_in_the_pool_are_replaced_on_the_next_call() -> None:
    name = f"kathikon_kill_{uuid.uuid4().hex[:6]}"
    store = _open(pg_url("_pg", application_name=name, pool_min="2"))
    try:
        store.fetch("warm-up")
        with psycopg.connect(admin_url(), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                          [name])
        assert store.fetch("missing") is None
        assert store.insert([build()])
    finally:
        store.close()


def test_after_close_a_call_is_a_storage_error() -> None:
    store = _open(pg_url("_pg"))
    store.close()
    store.close()
    with pytest.raises(StorageError, match="closed"):
        store.fetch("x")


# -- many claimers in several processes


def _claim_until_empty(url: str, owner: str, barrier: Any, results: Any) -> None:
    store = open_storage(url)
    claimed: list[str] = []
    barrier.wait()
    misses = 0
    while misses < 3:
        jobs = store.claim("race", 5, datetime.now(UTC), owner)
        misses = 0 if jobs else misses + 1
        claimed.extend(job.id for job in jobs)
    store.close()
    results.put(claimed)


@pytest.fixture
def race() -> Iterator[PostgresStorage]:
    store = _open(pg_url("_race"))
    store.clear_jobs()
    yield store
    store.close()


@pytest.mark.slow
def test_four_processes_claiming_at_once_never_claim_the_same_job_twice(race: PostgresStorage) -> None:
    url, store = pg_url("_race"), race
    inserted = store.insert([build(n, queue="race") for n in range(2000)])
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    processes = [ctx.Process(target=_claim_until_empty, args=(url, f"node-{i}", barrier, results)) for i in range(4)]
    for process in processes:
        process.start()
    try:
        claimed = [job_id for _ in processes for job_id in results.get(timeout=60)]
    finally:
        for process in processes:
            process.join(timeout=30)
    assert len(claimed) == len(set(claimed)) == 2000
    assert set(claimed) == {job.id for job in inserted}
    assert store.counts() == {("race", JobState.EXECUTING): 2000}


# -- moving jobs across


def test_jobs_move_from_sqlite_to_postgresql_unchanged(tmp_path: Path) -> None:
    source, target = f"sqlite:///{tmp_path / 'jobs.db'}", pg_url("_moved")
    jobs = [build(n, priority=n % 3, queue=f"q{n % 2}") for n in range(30)]
    jobs[0] = jobs[0].with_changes(state=JobState.EXECUTING, attempts=1, attempted_by="node-a", started_at=T0)
    jobs[1] = jobs[1].with_changes(state=JobState.DISCARDED, attempts=3, completed_at=T0,
                                   errors=[{"attempt": 3, "error": "boom"}])
    sqlite = open_storage(source)
    sqlite.setup()
    sqlite.insert(jobs)
    sqlite.close()
    emptied = _open(target)
    emptied.clear_jobs()
    emptied.close()

    assert move_jobs(source, target, batch=8, delete_source=True) == 30

    moved = _open(target)
    try:
        assert moved.all() == jobs
    finally:
        moved.close()
