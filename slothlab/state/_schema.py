"""The SQLite schema of the state store and the SQL of its hot paths (prepared once, cached).

A key is live while ``exp IS NULL OR exp > now``; every read filters on that, so an expired key is
absent at once, and a sweep deletes expired rows in batches later. Times are epoch seconds (REAL).
Fencing counters live in their own table, which nothing but acquire ever writes.
"""

from __future__ import annotations

__all__ = ["SCHEMA", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key TEXT NOT NULL PRIMARY KEY,
    t   TEXT NOT NULL,
    v,
    exp REAL
);
CREATE INDEX IF NOT EXISTS kv_exp ON kv (exp) WHERE exp IS NOT NULL;
CREATE TABLE IF NOT EXISTS locks (
    name     TEXT NOT NULL PRIMARY KEY,
    owner    TEXT NOT NULL,
    fence    INTEGER NOT NULL,
    exp      REAL NOT NULL,
    acquired REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS fences (
    name  TEXT NOT NULL PRIMARY KEY,
    fence INTEGER NOT NULL
) WITHOUT ROWID;
"""

LIVE = "(exp IS NULL OR exp > ?)"

GET = f"SELECT t, v FROM kv WHERE key = ? AND {LIVE}"
GET_FULL = f"SELECT t, v, exp FROM kv WHERE key = ? AND {LIVE}"
GET_EXP = f"SELECT exp FROM kv WHERE key = ? AND {LIVE}"
EXISTS = f"SELECT 1 FROM kv WHERE key = ? AND {LIVE}"
SET = (
    "INSERT INTO kv (key, t, v, exp) VALUES (?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
    "t = excluded.t, v = excluded.v, exp = excluded.exp"
)
DELETE = "DELETE FROM kv WHERE key = ?"
KEYS = f"SELECT key FROM kv WHERE key GLOB ? AND {LIVE} ORDER BY key"
CLEAR = "DELETE FROM kv WHERE key GLOB ? RETURNING exp"
SET_TTL = f"UPDATE kv SET exp = ? WHERE key = ? AND {LIVE}"
PERSIST = "UPDATE kv SET exp = NULL WHERE key = ? AND exp > ?"

# A missing or expired key counts as 0 (and loses its old TTL); a float on either side makes a
# float; an integer sum that would overflow 64 bits (SQLite turns it into a float) is refused.
# No row back means a refusal: the slow path then says why.
INCREMENT = """
INSERT INTO kv (key, t, v, exp) VALUES (?1, ?2, ?3, NULL)
ON CONFLICT (key) DO UPDATE SET
    v = CASE WHEN kv.exp <= ?4 THEN excluded.v ELSE kv.v + excluded.v END,
    t = CASE WHEN kv.exp <= ?4 THEN excluded.t
             WHEN kv.t = 'f' OR excluded.t = 'f' THEN 'f' ELSE 'i' END,
    exp = CASE WHEN kv.exp <= ?4 THEN NULL ELSE kv.exp END
WHERE kv.exp <= ?4 OR kv.t = 'f'
   OR (kv.t = 'i' AND (excluded.t = 'f' OR typeof(kv.v + excluded.v) = 'integer'))
RETURNING v
"""

APPEND = """
INSERT INTO kv (key, t, v, exp) VALUES (?1, 's', ?2, NULL)
ON CONFLICT (key) DO UPDATE SET
    v = CASE WHEN kv.exp <= ?3 THEN excluded.v ELSE kv.v || excluded.v END,
    exp = CASE WHEN kv.exp <= ?3 THEN NULL ELSE kv.exp END
WHERE kv.exp <= ?3 OR kv.t = 's'
RETURNING length(v)
"""

# Compare-and-swap in one statement: numbers compare by value (1 == 1.0, as in Lua), everything
# else by type tag and value (tables by their canonical JSON). The TTL is kept.
CAS_NUMBER = f"UPDATE kv SET t = ?, v = ? WHERE key = ? AND t IN ('i', 'f') AND v = ? AND {LIVE}"
CAS_TYPED = f"UPDATE kv SET t = ?, v = ? WHERE key = ? AND t = ? AND v = ? AND {LIVE}"
# Insert, or overwrite a row that is expired (set_if_absent) or expired or nil (CAS from nil).
SET_IF_ABSENT = (
    "INSERT INTO kv (key, t, v, exp) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (key) DO UPDATE SET "
    "t = excluded.t, v = excluded.v, exp = excluded.exp WHERE kv.exp <= ?5 RETURNING 1"
)
CAS_FROM_NIL = (
    "INSERT INTO kv (key, t, v, exp) VALUES (?1, ?2, ?3, NULL) ON CONFLICT (key) DO UPDATE SET "
    "t = excluded.t, v = excluded.v, "
    "exp = CASE WHEN kv.exp <= ?4 THEN NULL ELSE kv.exp END "
    "WHERE kv.exp <= ?4 OR kv.t = 'z' RETURNING 1"
)
WRITE_KEEP_TTL = "UPDATE kv SET t = ?, v = ? WHERE key = ?"

SWEEP = "DELETE FROM kv WHERE key IN (SELECT key FROM kv WHERE exp <= ? LIMIT ?)"
SWEEP_LOCKS = "DELETE FROM locks WHERE exp <= ?"

# Locks. Acquire runs in BEGIN IMMEDIATE: take the next fence only when no other owner holds an
# unexpired lease, then upsert the lease. Renew and release match owner AND fence.
NEXT_FENCE = """
INSERT INTO fences (name, fence)
SELECT ?1, 1 WHERE NOT EXISTS (
    SELECT 1 FROM locks WHERE name = ?1 AND owner <> ?2 AND exp > ?3
)
ON CONFLICT (name) DO UPDATE SET fence = fence + 1
RETURNING fence
"""
GRANT = (
    "INSERT INTO locks (name, owner, fence, exp, acquired) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, fence = excluded.fence, "
    "exp = excluded.exp, acquired = excluded.acquired"
)
RELEASE = "DELETE FROM locks WHERE name = ? AND owner = ? AND fence = ?"
RENEW = "UPDATE locks SET exp = ? WHERE name = ? AND owner = ? AND fence = ? AND exp > ?"
LOCK_INFO = "SELECT name, owner, fence, exp FROM locks WHERE name = ? AND exp > ?"
LOCKS = "SELECT name, owner, fence, exp FROM locks WHERE exp > ? ORDER BY name"

COUNT_LIVE = f"SELECT count(*) FROM kv WHERE {LIVE}"
COUNT_EXPIRED = "SELECT count(*) FROM kv WHERE exp <= ?"
COUNT_LOCKS = "SELECT count(*) FROM locks WHERE exp > ?"
