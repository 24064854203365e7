"""What only the SQLite backend does: the file, its safety checks, its options, processes sharing it.

The behaviour every backend shares is in test_conformance.py.
"""

from __future__ import annotations

import hashlib
import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from kathikon.exceptions import (
    ConfigError,
    DatabaseUnavailableError,
    NotADatabaseError,
    SchemaVersionError,
    StorageError,
)
from kathikon.job import Job, JobState
from kathikon.storage import open_storage
from kathikon.storage._sql import migrations, queries
from kathikon.storage._sqlite_watch import ChangeWatcher
from kathikon.storage.sqlite import SQLiteStorage

T0 = datetime(2020, 3, 1, 12, 0, tzinfo=UTC)  # in the past, so the jobs are due for the claimers
WORKER = "tests.workers:Echo"

KATHIKON_OBJECTS = {
    ("table", "kathikon_schema"), ("table", "kathikon_jobs"), ("table", "kathikon_nodes"),
    ("table", "kathikon_leases"), ("table", "kathikon_queues"),
    ("index", "kathikon_jobs_claim_idx"), ("index", "kathikon_jobs_stage_idx"),
    ("index", "kathikon_jobs_prune_completed_idx"), ("index", "kathikon_jobs_prune_cancelled_idx"),
    ("index", "kathikon_jobs_executing_idx"),
}
JOB_COLUMNS = [
    "id", "queue", "worker", "args", "meta", "tags", "state", "priority", "max_attempts", "attempts", "errors",
    "result", "unique_key", "scheduled_at", "available_at", "inserted_at", "started_at", "completed_at",
    "cancelled_at", "attempted_by",
]


def build(**options: Any) -> Job:
    return Job.build(WORKER, options.pop("args", {"n": 1}), now=options.pop("now", T0), **options)


def checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "jobs.db"


@pytest.fixture
def storage(db_path: Path) -> Iterator[SQLiteStorage]:
    store = SQLiteStorage(db_path)
    store.setup()
    yield store
    store.close()


def pragma(storage: SQLiteStorage, name: str) -> Any:
    with storage._read() as conn:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]


def run_python(script: str, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120,
                          check=False, **kwargs)


# -- the file and its options


def test_the_file_is_in_wal_mode(storage: SQLiteStorage, db_path: Path) -> None:
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_a_relative_url_names_a_file_in_the_working_directory(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    storage = open_storage("sqlite:///relative.db")
    storage.setup()
    storage.close()

    assert isinstance(storage, SQLiteStorage)
    assert storage.url == "sqlite:///relative.db"
    assert (tmp_path / "relative.db").exists()


def test_an_absolute_url_names_that_file(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path}/absolute.db")
    storage.setup()
    storage.close()

    assert (tmp_path / "absolute.db").exists()


@pytest.mark.parametrize(("level", "value"), [("off", 0), ("normal", 1), ("full", 2), ("extra", 3)])
def test_the_synchronous_level_comes_from_the_url(db_path: Path, level: str, value: int) -> None:
    storage = SQLiteStorage.from_url(f"sqlite:///{db_path}?synchronous={level}")

    assert pragma(storage, "synchronous") == value
    storage.close()


def test_synchronous_is_normal_and_busy_timeout_five_seconds_by_default(storage: SQLiteStorage) -> None:
    assert pragma(storage, "synchronous") == 1
    assert storage.busy_timeout == 5.0


def test_the_busy_timeout_comes_from_the_url_in_seconds(db_path: Path) -> None:
    storage = SQLiteStorage.from_url(f"sqlite:///{db_path}?busy_timeout=2.5&synchronous=FULL")

    assert storage.busy_timeout == 2.5
    assert pragma(storage, "synchronous") == 2
    storage.close()


@pytest.mark.parametrize(("query", "named"), [
    ("synchronous=fast", "'fast'"),
    ("synchronous=", "''"),
    ("busy_timeout=soon", "'soon'"),
    ("busy_timeout=-1", "-1"),
    ("busy_timeout=nan", "nan"),
    ("journal=delete", "'journal'"),
    ("cache=shared", "'shared'"),
])
def test_a_bad_url_parameter_is_refused_naming_it(db_path: Path, query: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        SQLiteStorage.from_url(f"sqlite:///{db_path}?{query}")

    assert not db_path.exists()


@pytest.mark.parametrize(("option", "value"), [("synchronous", "sometimes"), ("busy_timeout", "5"),
                                               ("busy_timeout", float("inf")), ("change_poll_interval", -0.1),
                                               ("change_poll_interval", 0)])
def test_a_bad_constructor_option_is_refused_naming_it(db_path: Path, option: str, value: object) -> None:
    with pytest.raises(ConfigError, match=option):
        SQLiteStorage(db_path, **{option: value})  # type: ignore[arg-type]


def test_an_old_sqlite_library_is_refused_clearly(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 31, 1))

    with pytest.raises(StorageError, match=r"3\.35"):
        SQLiteStorage(db_path)


def test_times_in_other_zones_are_stored_and_returned_as_utc(storage: SQLiteStorage) -> None:
    plus_two = timezone(timedelta(hours=2))
    job = build(schedule_at=(T0 + timedelta(hours=1)).astimezone(plus_two))

    storage.insert([job])
    fetched = storage.fetch(job.id)

    assert fetched is not None
    assert fetched.scheduled_at == T0 + timedelta(hours=1)
    assert fetched.scheduled_at is not None
    assert fetched.scheduled_at.tzinfo == UTC


def test_a_job_without_available_at_is_due_from_its_insertion(storage: SQLiteStorage) -> None:
    job = build().with_changes(available_at=None)

    [stored] = storage.insert([job])

    assert stored.available_at == stored.inserted_at == T0
    assert [j.id for j in storage.claim("default", 1, T0, "node-a")] == [job.id]


def test_a_naive_time_is_refused_naming_the_field(storage: SQLiteStorage) -> None:
    with pytest.raises(ValueError, match="now"):
        storage.claim("default", 1, datetime(2026, 1, 1), "node-a")


def test_a_negative_limit_is_refused(storage: SQLiteStorage) -> None:
    with pytest.raises(ValueError, match="-1"):
        storage.claim("default", -1, T0, "node-a")


def test_data_is_stored_as_json_text(storage: SQLiteStorage, db_path: Path) -> None:
    job = build(args={"to": "a@b.com"}, meta={"m": 1}, tags=["t"])
    storage.insert([job])

    with sqlite3.connect(db_path) as conn:
        row = conn.execute("SELECT args, meta, tags, errors, inserted_at FROM kathikon_jobs").fetchone()
    conn.close()

    assert [json.loads(text) for text in row[:4]] == [{"to": "a@b.com"}, {"m": 1}, ["t"], []]
    assert row[4] == "2020-03-01T12:00:00.000000Z"


def test_a_locked_database_is_reported_as_unavailable(storage: SQLiteStorage, db_path: Path) -> None:
    quick = SQLiteStorage(db_path, busy_timeout=0)
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(DatabaseUnavailableError, match="locked"):
            quick.insert([build()])
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        quick.close()
    assert storage.all() == []


def test_a_write_waits_for_another_writer_and_goes_ahead_once_it_commits(storage: SQLiteStorage,
                                                                         db_path: Path) -> None:
    blocker = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.05, blocker.execute, ("COMMIT",))
    release.start()
    try:
        started = time.monotonic()
        [job] = storage.insert([build()])
        waited = time.monotonic() - started
    finally:
        release.join()
        blocker.close()
    assert storage.fetch(job.id) == job
    assert 0.04 <= waited < storage.busy_timeout


def test_a_write_gives_up_after_busy_timeout(db_path: Path) -> None:
    patient = SQLiteStorage(db_path, busy_timeout=0.2)
    patient.setup()
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    try:
        with pytest.raises(DatabaseUnavailableError, match="locked"):
            patient.insert([build()])
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert time.monotonic() - started >= 0.2
    assert patient.all() == []
    patient.close()


def test_close_is_idempotent_and_the_storage_reopens_on_use(storage: SQLiteStorage) -> None:
    job = storage.insert([build()])[0]

    storage.close()
    storage.close()

    assert storage.fetch(job.id) == job


# -- sharing the file, and refusing files that are not ours


def test_reset_and_setup_leave_the_applications_tables_alone(db_path: Path) -> None:
    app = sqlite3.connect(db_path)
    app.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, total REAL)")
    app.execute("CREATE TABLE kathikonish (x)")
    app.execute("INSERT INTO orders (total) VALUES (9.5), (12.0)")
    app.execute("PRAGMA user_version = 7")
    app.commit()

    storage = SQLiteStorage(db_path)
    storage.setup()
    storage.insert([build()])
    storage.reset()
    storage.setup()
    storage.close()

    assert app.execute("SELECT id, total FROM orders").fetchall() == [(1, 9.5), (2, 12.0)]
    assert app.execute("SELECT count(*) FROM kathikonish").fetchone() == (0,)
    assert app.execute("PRAGMA user_version").fetchone() == (7,)
    app.close()


def test_a_file_that_is_not_a_database_is_refused_and_left_untouched(db_path: Path) -> None:
    db_path.write_bytes(b"my precious notes, not a database\n" * 200)
    before = checksum(db_path)
    storage = SQLiteStorage(db_path)

    with pytest.raises(NotADatabaseError, match="not a SQLite database"):
        storage.setup()
    with pytest.raises(NotADatabaseError):
        storage.fetch("0" * 32)

    assert checksum(db_path) == before
    assert sorted(p.name for p in db_path.parent.iterdir()) == [db_path.name]


def test_a_corrupt_database_is_refused_and_left_untouched(db_path: Path) -> None:
    db_path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4080)
    before = checksum(db_path)

    with pytest.raises(NotADatabaseError):
        SQLiteStorage(db_path).setup()

    assert checksum(db_path) == before


def test_an_empty_file_becomes_a_database(db_path: Path) -> None:
    db_path.touch()
    storage = SQLiteStorage(db_path)
    storage.setup()

    assert storage.insert([build()])
    storage.close()


def test_a_newer_schema_is_refused_and_the_file_left_untouched(db_path: Path) -> None:
    app = sqlite3.connect(db_path)
    app.execute("CREATE TABLE kathikon_schema (version INTEGER PRIMARY KEY, name TEXT, applied_at TEXT)")
    app.execute("INSERT INTO kathikon_schema VALUES (1, 'initial', 'x'), (99, 'from_the_future', 'y')")
    app.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    app.commit()
    app.close()
    before = checksum(db_path)
    storage = SQLiteStorage(db_path)

    with pytest.raises(SchemaVersionError, match="99"):
        storage.setup()
    with pytest.raises(SchemaVersionError):
        storage.all()

    assert checksum(db_path) == before
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()


def test_setup_reaches_the_schema_the_migrations_describe(storage: SQLiteStorage, tmp_path: Path) -> None:
    reference = sqlite3.connect(tmp_path / "reference.db")
    for migration in migrations("sqlite"):
        reference.executescript(migration.sql)
    with storage._read() as conn:
        stored = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name").fetchall()
        columns = [row["name"] for row in conn.execute("PRAGMA table_info(kathikon_jobs)")]
        versions = conn.execute("SELECT version, name FROM kathikon_schema").fetchall()
    expected = reference.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name").fetchall()
    reference.close()

    assert [tuple(row) for row in stored] == expected
    assert {(row[0], row[1]) for row in expected if not row[1].startswith("sqlite_")} == KATHIKON_OBJECTS
    assert columns == JOB_COLUMNS
    assert [tuple(row) for row in versions] == [(m.version, m.name) for m in migrations("sqlite")]


def test_the_jobs_table_accepts_a_future_state_without_a_rebuild(storage: SQLiteStorage) -> None:
    with storage._write() as conn:
        conn.execute("INSERT INTO kathikon_jobs (id, queue, worker, state, available_at, inserted_at) "
                     "VALUES ('x', 'q', 'a:B', 'suspended', 'now', 'now')")
        stored = conn.execute("SELECT state FROM kathikon_jobs WHERE id = 'x'").fetchone()

    assert stored["state"] == "suspended"


# -- transactional insert on the application's connection


def test_a_job_inserted_on_the_apps_connection_commits_with_its_data(storage: SQLiteStorage,
                                                                      db_path: Path) -> None:
    app = sqlite3.connect(db_path)
    app.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    app.commit()

    app.execute("INSERT INTO orders (id) VALUES (1)")
    [job] = storage.insert([build()], conn=app)
    assert app.in_transaction
    assert storage.fetch(job.id) is None  # not committed yet
    app.commit()

    assert storage.fetch(job.id) == job
    app.close()


def test_a_job_inserted_on_the_apps_connection_rolls_back_with_its_data(storage: SQLiteStorage,
                                                                         db_path: Path) -> None:
    app = sqlite3.connect(db_path)
    app.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    app.commit()

    def place_order() -> None:
        with app:
            app.execute("INSERT INTO orders (id) VALUES (1)")
            storage.insert([build()], conn=app)
            raise RuntimeError("the order failed")

    with pytest.raises(RuntimeError):
        place_order()

    assert storage.all() == []
    assert app.execute("SELECT count(*) FROM orders").fetchone() == (0,)
    app.close()


def test_a_job_inserted_first_on_a_fresh_app_connection_still_waits_for_its_commit(
        storage: SQLiteStorage, db_path: Path) -> None:
    app = sqlite3.connect(db_path)

    storage.insert([build()], conn=app)
    app.rollback()

    assert storage.all() == []
    app.close()


def test_an_autocommit_app_connection_joins_its_explicit_transaction(storage: SQLiteStorage,
                                                                    db_path: Path) -> None:
    app = sqlite3.connect(db_path, isolation_level=None)
    app.execute("BEGIN")
    [job] = storage.insert([build()], conn=app)
    app.execute("ROLLBACK")
    assert storage.all() == []

    [job] = storage.insert([build()], conn=app)  # no transaction open: durable on return
    assert storage.fetch(job.id) == job
    app.close()


def test_a_failed_batch_on_the_apps_connection_leaves_its_transaction_intact(storage: SQLiteStorage,
                                                                            db_path: Path) -> None:
    app = sqlite3.connect(db_path)
    app.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    app.execute("INSERT INTO orders (id) VALUES (1)")
    job = build()

    with pytest.raises(ValueError, match=job.id):
        storage.insert([build(), job, job], conn=app)
    app.commit()

    assert storage.all() == []
    assert app.execute("SELECT count(*) FROM orders").fetchone() == (1,)
    app.close()


def test_a_connection_that_is_not_sqlite3_is_refused(storage: SQLiteStorage) -> None:
    with pytest.raises(TypeError, match="conn"):
        storage.insert([build()], conn=object())
    assert storage.all() == []


# -- RAM mode


def test_memory_mode_is_one_database_shared_by_every_thread() -> None:
    storage = SQLiteStorage.from_url("sqlite:///:memory:")
    storage.setup()

    def insert_some() -> None:
        storage.insert([build() for _ in range(25)])

    threads = [threading.Thread(target=insert_some) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    claimed: list[Job] = []
    claimer = threading.Thread(target=lambda: claimed.extend(storage.claim("default", 500, T0, "node-a")))
    claimer.start()
    claimer.join()

    assert len(claimed) == 100
    assert storage.counts() == {("default", JobState.EXECUTING): 100}
    assert storage.subscribe(lambda queue: None) is None
    storage.close()


# -- changes from other processes


def test_subscribe_sees_a_commit_from_another_connection(storage: SQLiteStorage, db_path: Path) -> None:
    changed = threading.Event()
    subscription = storage.subscribe(lambda queue: changed.set())
    assert subscription is not None
    other = SQLiteStorage(db_path)
    try:
        other.insert([build()])
        assert changed.wait(timeout=10)
    finally:
        subscription.close()
        subscription.close()
        other.close()


def test_subscribe_ignores_this_instances_own_commits(storage: SQLiteStorage, db_path: Path) -> None:
    changes: list[str | None] = []
    subscription = storage.subscribe(changes.append)
    assert subscription is not None
    other = SQLiteStorage(db_path)
    try:
        for _ in range(20):  # claims, acks and inserts of this instance: the busy worker's own writes
            storage.insert([build()])
            storage.claim("default", 5, T0, "node-a")
        time.sleep(0.1)  # several polls: none may report this instance's own commits
        assert changes == []
        other.insert([build()])
        deadline = time.monotonic() + 10
        while not changes and time.monotonic() < deadline:
            time.sleep(0.005)
        assert changes == [None]
    finally:
        subscription.close()
        other.close()


def test_a_raising_change_callback_does_not_stop_the_subscription(storage: SQLiteStorage,
                                                                  db_path: Path) -> None:
    calls: list[str | None] = []
    second = threading.Event()

    def on_change(queue: str | None) -> None:
        calls.append(queue)
        if len(calls) == 1:
            raise RuntimeError("handler bug")
        second.set()

    subscription = storage.subscribe(on_change)
    assert subscription is not None
    other = SQLiteStorage(db_path)
    try:
        other.insert([build()])
        deadline = time.monotonic() + 10
        while not calls and time.monotonic() < deadline:
            time.sleep(0.005)
        assert calls, "the first commit was not seen"
        other.insert([build()])
        assert second.wait(timeout=10)
    finally:
        subscription.close()
        other.close()


def test_close_stops_the_subscriptions(db_path: Path) -> None:
    storage = SQLiteStorage(db_path)
    storage.setup()
    subscription = storage.subscribe(lambda queue: None)
    assert isinstance(subscription, ChangeWatcher)

    storage.close()

    assert not subscription._thread.is_alive()


# -- processes sharing the file

KILLED_AFTER_INSERT = """
import os, signal, sys
from kathikon.job import Job
from kathikon.storage.sqlite import SQLiteStorage

storage = SQLiteStorage(sys.argv[1])
storage.setup()
[job] = storage.insert([Job.build("tests.workers:Echo", {"n": 1})])
print(job.id, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""

CLAIMER = """
import json, sys
from kathikon._clock import utcnow
from kathikon.storage.sqlite import SQLiteStorage

storage = SQLiteStorage(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
claimed = []
while batch := storage.claim("default", 5, utcnow(), sys.argv[2]):
    claimed.extend(job.id for job in batch)
print(json.dumps(claimed), flush=True)
"""


@pytest.mark.slow
def test_an_inserted_job_survives_a_kill_of_the_process(db_path: Path) -> None:
    result = run_python(KILLED_AFTER_INSERT, str(db_path))

    assert result.returncode == -signal.SIGKILL, result.stderr
    job_id = result.stdout.strip()
    storage = SQLiteStorage(db_path)
    job = storage.fetch(job_id)
    storage.close()
    assert job is not None
    assert job.state == JobState.AVAILABLE


@pytest.mark.slow
def test_four_processes_claiming_from_one_file_never_claim_a_job_twice(storage: SQLiteStorage,
                                                                        db_path: Path) -> None:
    jobs = storage.insert([build() for _ in range(2000)])
    procs = [subprocess.Popen([sys.executable, "-c", CLAIMER, str(db_path), f"node-{n}"], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for n in range(4)]
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outputs = [proc.communicate(timeout=120) for proc in procs]

    claimed = [job_id for out, err in outputs for job_id in json.loads(out or "null") or pytest.fail(err)]
    assert len(claimed) == len(set(claimed))
    assert sorted(claimed) == sorted(job.id for job in jobs)
    assert storage.counts() == {("default", JobState.EXECUTING): 2000}


def test_the_claim_walks_the_claim_index_in_order(storage: SQLiteStorage) -> None:
    params = {"queue": "default", "limit": 10, "now": "2026-03-01T12:00:00.000000Z", "owner": "node-a"}
    with storage._read() as conn:
        plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + queries("sqlite")["claim_jobs"], params)]

    assert any("kathikon_jobs_claim_idx" in step for step in plan), plan
    assert not any("TEMP B-TREE" in step for step in plan), plan
    assert not any(step.startswith("SCAN kathikon_jobs") for step in plan), plan


@pytest.mark.parametrize(("query", "index"), [("stage_jobs", "kathikon_jobs_stage_idx"),
                                              ("prune_jobs", "kathikon_jobs_prune_completed_idx"),
                                              ("prune_jobs", "kathikon_jobs_prune_cancelled_idx"),
                                              ("rescue_jobs", "kathikon_jobs_executing_idx")])
def test_the_loops_use_their_indexes(storage: SQLiteStorage, query: str, index: str) -> None:
    params = {"now": "x", "at": "x", "before": "x", "stale_before": "x", "limit": 10}
    with storage._read() as conn:
        plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + queries("sqlite")[query], params)]

    assert any(index in step for step in plan), plan
    assert not any("TEMP B-TREE" in step for step in plan), plan


# -- the insert and read paths


def test_new_jobs_leave_their_run_columns_to_the_defaults(storage: SQLiteStorage, db_path: Path) -> None:
    storage.insert([build(), build(schedule_in=60, meta={"m": 1}, tags=["t"])])

    with sqlite3.connect(db_path) as conn:
        rows = conn.execute("SELECT attempts, errors, started_at, completed_at, cancelled_at, attempted_by "
                            "FROM kathikon_jobs").fetchall()
    conn.close()

    assert rows == [(0, "[]", None, None, None, None)] * 2


def test_a_batch_with_one_job_that_already_ran_stores_every_column_of_each(storage: SQLiteStorage) -> None:
    ran = build().with_changes(state=JobState.COMPLETED, attempts=2, errors=[{"at": "x", "error": "boom"}],
                               started_at=T0, completed_at=T0 + timedelta(seconds=1), attempted_by="node-1")
    fresh = build(args={"n": 2})

    stored = storage.insert([fresh, ran])

    assert [storage.fetch(job.id) for job in stored] == stored == [fresh, ran]


def test_jobs_are_read_by_column_name_whatever_the_column_order(storage: SQLiteStorage) -> None:
    from kathikon.storage._sqlite_rows import decode_job, decode_jobs

    job = build(meta={"m": [1]}, tags=["a"])
    storage.insert([job])
    columns = ", ".join(reversed(JOB_COLUMNS))

    rows = storage._select(f"SELECT {columns} FROM kathikon_jobs")

    assert decode_jobs(rows) == [job] == [decode_job(rows[0])]
    assert decode_jobs([]) == []


def test_a_failed_batch_of_new_jobs_stores_none_of_them(storage: SQLiteStorage) -> None:
    first = build()
    storage.insert([first])

    with pytest.raises(ValueError, match=f"a job with id '{first.id}' is already stored; nothing was stored"):
        storage.insert([build(), build(), first.with_changes(args={"n": 9})])

    assert storage.all() == [first]


@pytest.mark.parametrize("at", [
    datetime(1, 1, 1, tzinfo=UTC), datetime(2024, 2, 3, 4, 5, 6, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(2024, 2, 3, 4, 5, 6, 7, tzinfo=timezone(timedelta(hours=-3))),
])
def test_times_are_written_as_fixed_width_utc_text(at: datetime) -> None:
    from kathikon.storage._sqlite_rows import decode_time, encode_time

    text = encode_time(at, "at")

    assert text == at.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    assert len(text) == 27
    assert decode_time(text) == at


@pytest.mark.parametrize("count", [1, 99, 100, 101, 250])
def test_a_batch_of_any_size_is_stored_whole_by_statements_of_many_rows(storage: SQLiteStorage, count: int) -> None:
    jobs = [build(args={"n": n}) for n in range(count)]

    stored = storage.insert(jobs)

    assert stored == jobs
    assert storage.all() == jobs


def test_a_duplicate_in_a_later_statement_of_a_batch_stores_none_of_it(storage: SQLiteStorage) -> None:
    jobs = [build(args={"n": n}) for n in range(150)]
    jobs.append(jobs[120])

    with pytest.raises(ValueError, match=f"job id '{jobs[120].id}' appears twice in one insert"):
        storage.insert(jobs)

    assert storage.all() == []


@pytest.mark.parametrize("limit", [12, 30, 999])
def test_a_connection_allowing_few_parameters_gets_fewer_rows_per_statement(storage: SQLiteStorage,
                                                                           limit: int) -> None:
    jobs = [build(args={"n": n}) for n in range(205)]
    with storage._read() as conn:
        conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, limit)

    storage.insert(jobs)

    assert storage.all() == jobs
