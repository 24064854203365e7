-- Kathikon schema version 2 for PostgreSQL: the claim always reads its partial index.
--
-- With statistics taken before a burst of inserts (say, when every job was completed), the planner believed
-- (queue, state = 'available') matched one row and chose this index plus a sort of that "one row" over
-- kathikon_jobs_claim_idx: every claim then sorted the whole backlog (120-205 ms per claim with 50,000-100,000
-- new jobs, until autovacuum analyzed the table). Without it, the only index matching the claim's predicate is
-- the claim index, which returns rows in claim order with no sort whatever the statistics say.
-- counts() and all() never needed it: they scan the table (or the primary key, in id order) either way.
DROP INDEX IF EXISTS {schema}.kathikon_jobs_queue_state_idx;
