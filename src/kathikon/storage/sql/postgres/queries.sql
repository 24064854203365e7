-- Named statements of the PostgreSQL backend. {schema} is replaced by the quoted schema name at load time.
-- Parameters use psycopg's %(name)s / %s placeholders, so a literal percent sign would be written %%.

-- name: migration_lock
SELECT pg_advisory_xact_lock(hashtext(%(key)s))

-- name: schema_exists
SELECT 1 FROM pg_namespace WHERE nspname = %(schema)s

-- name: create_schema
CREATE SCHEMA IF NOT EXISTS {schema}

-- name: schema_table
SELECT to_regclass(%(table)s) IS NOT NULL AS present

-- name: schema_version
SELECT coalesce(max(version), 0) AS version FROM {schema}.kathikon_schema

-- name: record_version
INSERT INTO {schema}.kathikon_schema (version) VALUES (%(version)s)

-- name: drop_tables
DROP TABLE IF EXISTS {schema}.kathikon_jobs, {schema}.kathikon_nodes, {schema}.kathikon_leases,
    {schema}.kathikon_queues, {schema}.kathikon_schema

-- name: insert_jobs
-- A few jobs in one statement, so the insert is one round trip: the jobs arrive as one JSON array of objects
-- (binding one array per column costs psycopg ~60 µs a row), and the queues that got available jobs are
-- notified in the same transaction.
WITH inserted AS (
    INSERT INTO {schema}.kathikon_jobs (id, queue, worker, args, meta, tags, state, priority, max_attempts,
        attempts, errors, scheduled_at, available_at, inserted_at, started_at, completed_at, cancelled_at,
        attempted_by)
    SELECT id, queue, worker, args, meta, tags, state, priority, max_attempts, attempts, errors, scheduled_at,
        available_at, inserted_at, started_at, completed_at, cancelled_at, attempted_by
    FROM json_to_recordset(%(jobs)s::json) AS r(id text, queue text, worker text, args jsonb, meta jsonb,
        tags jsonb, state text, priority integer, max_attempts integer, attempts integer, errors jsonb,
        scheduled_at timestamptz, available_at timestamptz, inserted_at timestamptz, started_at timestamptz,
        completed_at timestamptz, cancelled_at timestamptz, attempted_by text)
    RETURNING queue, state
)
SELECT pg_notify(%(channel)s, queue)
FROM (SELECT DISTINCT queue FROM inserted WHERE state = 'available') AS woken
WHERE %(notify)s

-- name: copy_jobs
-- Large batches: COPY costs the server a fraction of what json_to_recordset does per row.
COPY {schema}.kathikon_jobs (id, queue, worker, args, meta, tags, state, priority, max_attempts, attempts,
    errors, scheduled_at, available_at, inserted_at, started_at, completed_at, cancelled_at, attempted_by)
FROM STDIN

-- name: notify
SELECT pg_notify(%s, %s)

-- name: fetch
SELECT * FROM {schema}.kathikon_jobs WHERE id = %(id)s

-- name: job_states
SELECT id, state FROM {schema}.kathikon_jobs WHERE id = ANY(%(ids)s)

-- name: all
SELECT * FROM {schema}.kathikon_jobs
WHERE (%(queue)s::text IS NULL OR queue = %(queue)s) AND (%(state)s::text IS NULL OR state = %(state)s)
ORDER BY id
LIMIT %(limit)s

-- name: counts
SELECT queue, state, count(*) AS n FROM {schema}.kathikon_jobs GROUP BY queue, state

-- name: delete
DELETE FROM {schema}.kathikon_jobs WHERE id = %(id)s RETURNING id

-- name: clear_jobs
DELETE FROM {schema}.kathikon_jobs

-- name: lock_job
SELECT state FROM {schema}.kathikon_jobs WHERE id = %(id)s FOR UPDATE

-- name: cancel
UPDATE {schema}.kathikon_jobs SET state = 'cancelled', cancelled_at = %(now)s WHERE id = %(id)s RETURNING *

-- name: claim
-- One statement: lock the next jobs in claim order, skipping rows other claimers hold, and take them.
WITH picked AS (
    SELECT id FROM {schema}.kathikon_jobs
    WHERE queue = %(queue)s AND state = 'available' AND available_at <= %(now)s
    ORDER BY priority DESC, available_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE {schema}.kathikon_jobs AS j
SET state = 'executing', attempts = j.attempts + 1, started_at = %(now)s, attempted_by = %(owner)s
FROM picked
WHERE j.id = picked.id
RETURNING j.*

-- name: ack
-- Every ack of a batch in one statement, each fenced on (id, attempt, owner) and state = 'executing'.
-- DISTINCT ON keeps the first ack of a job that appears twice, as applying them in order would. Queues that
-- got a job back (a release at shutdown) are notified in the same statement: one round trip in all.
WITH acks AS (
    SELECT DISTINCT ON (a.job_id) a.*
    FROM jsonb_to_recordset(%(acks)s) AS a(n integer, job_id text, attempt integer, owner text, state text,
                                           at timestamptz, available_at timestamptz, error jsonb)
    ORDER BY a.job_id, a.n
), applied AS (
    UPDATE {schema}.kathikon_jobs AS j
    SET state = a.state,
        completed_at = CASE WHEN a.state IN ('completed', 'discarded') THEN a.at ELSE j.completed_at END,
        available_at = CASE WHEN a.state IN ('retryable', 'scheduled') THEN a.available_at
                            WHEN a.state = 'available' THEN coalesce(a.available_at, a.at)
                            ELSE j.available_at END,
        scheduled_at = CASE WHEN a.state = 'scheduled' THEN a.available_at ELSE j.scheduled_at END,
        attempts = CASE WHEN a.state IN ('scheduled', 'available') THEN j.attempts - 1 ELSE j.attempts END,
        errors = CASE WHEN a.error IS NULL THEN j.errors ELSE j.errors || jsonb_build_array(a.error) END
    FROM acks AS a
    WHERE j.id = a.job_id AND j.state = 'executing' AND j.attempts = a.attempt AND j.attempted_by = a.owner
    RETURNING a.n, j.queue, j.state
), woken AS (
    SELECT pg_notify(%(channel)s, queue)
    FROM (SELECT DISTINCT queue FROM applied WHERE state = 'available') AS released
    WHERE %(notify)s
)
-- Referencing woken makes it run (a CTE that is never read is never evaluated).
SELECT n FROM applied WHERE (SELECT count(*) FROM woken) >= 0

-- name: stage
WITH due AS (
    SELECT id FROM {schema}.kathikon_jobs
    WHERE state IN ('scheduled', 'retryable') AND available_at <= %(now)s
    ORDER BY available_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), moved AS (
    UPDATE {schema}.kathikon_jobs AS j SET state = 'available' FROM due WHERE j.id = due.id RETURNING j.queue
)
SELECT queue, count(*) AS n FROM moved GROUP BY queue

-- name: prune
WITH old AS (
    SELECT id FROM {schema}.kathikon_jobs
    WHERE (state IN ('completed', 'discarded') AND completed_at < %(before)s)
       OR (state = 'cancelled' AND cancelled_at < %(before)s)
    ORDER BY id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
DELETE FROM {schema}.kathikon_jobs AS j USING old WHERE j.id = old.id RETURNING j.*

-- name: register_node
INSERT INTO {schema}.kathikon_nodes (name, started_at, heartbeat_at, queues, meta)
VALUES (%(name)s, %(started_at)s, %(heartbeat_at)s, %(queues)s, %(meta)s)
ON CONFLICT (name) DO UPDATE
SET started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, queues = excluded.queues,
    meta = excluded.meta

-- name: heartbeat
UPDATE {schema}.kathikon_nodes SET heartbeat_at = %(now)s WHERE name = %(name)s RETURNING name

-- name: remove_node
DELETE FROM {schema}.kathikon_nodes WHERE name = %(name)s

-- name: nodes
SELECT * FROM {schema}.kathikon_nodes ORDER BY name

-- name: prune_nodes
DELETE FROM {schema}.kathikon_nodes AS n
WHERE n.heartbeat_at < %(stale_before)s
  AND NOT EXISTS (SELECT 1 FROM {schema}.kathikon_jobs AS j WHERE j.state = 'executing' AND j.attempted_by = n.name)
RETURNING n.name

-- name: acquire_lease
-- Atomic take-or-renew: the conflicting row is updated only when free to take, else nothing is returned.
INSERT INTO {schema}.kathikon_leases AS l (name, holder, expires_at)
VALUES (%(name)s, %(holder)s, %(until)s)
ON CONFLICT (name) DO UPDATE
SET holder = excluded.holder, expires_at = excluded.expires_at
WHERE l.holder = excluded.holder OR l.expires_at <= %(now)s
RETURNING holder

-- name: release_lease
DELETE FROM {schema}.kathikon_leases WHERE name = %(name)s AND holder = %(holder)s

-- name: rescue
-- Jobs executing on a node without a fresh heartbeat go back to available (or are discarded when out of
-- attempts). Rows locked by a concurrent ack are skipped: that ack is about to finish them.
WITH dead AS (
    SELECT j.id FROM {schema}.kathikon_jobs AS j
    WHERE j.state = 'executing'
      AND NOT EXISTS (SELECT 1 FROM {schema}.kathikon_nodes AS n
                      WHERE n.name = j.attempted_by AND n.heartbeat_at >= %(stale_before)s)
    FOR UPDATE SKIP LOCKED
)
UPDATE {schema}.kathikon_jobs AS j
SET state = CASE WHEN j.attempts >= j.max_attempts THEN 'discarded' ELSE 'available' END,
    completed_at = CASE WHEN j.attempts >= j.max_attempts THEN %(now)s ELSE j.completed_at END,
    available_at = CASE WHEN j.attempts >= j.max_attempts THEN j.available_at ELSE %(now)s END,
    errors = j.errors || jsonb_build_array(jsonb_build_object(
        'attempt', j.attempts, 'at', %(at)s::text, 'kind', 'rescued',
        'error', 'node ' || coalesce(j.attempted_by, 'None') || ' stopped heartbeating while the job was executing'))
FROM dead
WHERE j.id = dead.id
RETURNING j.*
