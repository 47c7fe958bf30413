//! The SQL of the SQLite engine: schema, the append-only log, and reads at a revision.
//!
//! Every function here is synchronous and runs inside a transaction the caller opened (the
//! `Connection` it gets is that transaction or a savepoint of it), on a
//! blocking thread; nothing here knows about tokio, locking or broadcasting.

use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

use crate::{prefix_end, Event, EventType, KeyValue, Result, StoreError};

/// Schema version stored in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

/// The whole schema. `log` mirrors kine's `kine` table (see the module docs of `sqlite`).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS log (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            BLOB    NOT NULL,
    created         INTEGER NOT NULL,
    deleted         INTEGER NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision   INTEGER NOT NULL,
    value           BLOB    NOT NULL,
    old_value       BLOB
);
CREATE INDEX IF NOT EXISTS log_name_id ON log (name, id);
CREATE UNIQUE INDEX IF NOT EXISTS log_name_prev_revision ON log (name, prev_revision);
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
";

const COLUMNS: &str =
    "id, name, created, deleted, create_revision, prev_revision, value, old_value";

/// Attaches the operation to a SQLite error.
pub(crate) fn sqlite_err(op: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| StoreError::Sqlite {
        op,
        source: std::sync::Arc::new(e),
    }
}

/// Creates the schema if needed and refuses databases written by a newer schema.
pub(crate) fn migrate(conn: &Connection) -> Result<()> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sqlite_err("read the schema version"))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Corrupt(format!(
            "database schema version {version} is newer than the supported {SCHEMA_VERSION}"
        )));
    }
    conn.execute_batch(SCHEMA)
        .map_err(sqlite_err("create the schema"))?;
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(sqlite_err("record the schema version"))
}

/// One row of the log: one write.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub id: i64,
    pub name: String,
    /// This write started a new incarnation of the key (no predecessor value).
    pub created: bool,
    /// This write deleted the key; `value` then holds the value that was deleted.
    pub deleted: bool,
    pub create_revision: i64,
    /// The id of the previous row of this key (0 if none): the predecessor's mod revision.
    pub prev_revision: i64,
    pub value: Vec<u8>,
    /// For updates, the value this write replaced (so watches can report `prev_kv` even after
    /// the predecessor row is compacted away).
    pub old_value: Option<Vec<u8>>,
}

impl Row {
    fn from_sql(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Row, Vec<u8>)> {
        let name: Vec<u8> = r.get(1)?;
        Ok((
            Row {
                id: r.get(0)?,
                name: String::new(),
                created: r.get(2)?,
                deleted: r.get(3)?,
                create_revision: r.get(4)?,
                prev_revision: r.get(5)?,
                value: r.get(6)?,
                old_value: r.get(7)?,
            },
            name,
        ))
    }

    fn with_name((mut row, name): (Row, Vec<u8>)) -> Result<Row> {
        row.name = key_from_bytes(name)?;
        Ok(row)
    }

    /// The key-value this row leaves behind (for a deletion: the value that was deleted).
    pub fn kv(&self) -> KeyValue {
        KeyValue {
            key: self.name.clone(),
            value: self.value.clone(),
            create_revision: self.create_revision,
            mod_revision: if self.deleted {
                self.prev_revision
            } else {
                self.id
            },
        }
    }

    /// The watch event this row stands for.
    pub fn into_event(self) -> Event {
        let kv = self.kv();
        if self.deleted {
            return Event {
                event_type: EventType::Delete,
                revision: self.id,
                prev_kv: Some(kv.clone()),
                kv,
            };
        }
        let prev_kv = match (self.created, self.old_value) {
            (false, Some(old)) => Some(KeyValue {
                key: self.name,
                value: old,
                create_revision: self.create_revision,
                mod_revision: self.prev_revision,
            }),
            _ => None,
        };
        Event {
            event_type: EventType::Put,
            revision: self.id,
            kv,
            prev_kv,
        }
    }
}

fn key_from_bytes(name: Vec<u8>) -> Result<String> {
    String::from_utf8(name)
        .map_err(|e| StoreError::Corrupt(format!("stored key is not utf-8: {e}")))
}

/// The newest revision ever assigned (survives compaction of the newest rows).
pub(crate) fn current_revision(conn: &Connection) -> Result<i64> {
    conn.query_row(
        "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'log'), 0)",
        [],
        |r| r.get(0),
    )
    .map_err(sqlite_err("read the current revision"))
}

pub(crate) fn compact_revision(conn: &Connection) -> Result<i64> {
    conn.query_row(
        "SELECT COALESCE((SELECT value FROM meta WHERE name = 'compact_revision'), 0)",
        [],
        |r| r.get(0),
    )
    .map_err(sqlite_err("read the compaction point"))
}

/// Checks that `revision` can still be read: not compacted, not in the future. Returns the
/// current revision of the snapshot.
pub(crate) fn check_revision(conn: &Connection, revision: i64) -> Result<i64> {
    let current = current_revision(conn)?;
    if revision > current {
        return Err(StoreError::FutureRevision {
            requested: revision,
            current,
        });
    }
    let compacted = compact_revision(conn)?;
    if revision < compacted {
        return Err(StoreError::Compacted {
            requested: revision,
            compacted,
        });
    }
    Ok(current)
}

/// The newest row of `key`, live or deleted.
pub(crate) fn latest(conn: &Connection, key: &str) -> Result<Option<Row>> {
    let sql = format!("SELECT {COLUMNS} FROM log WHERE name = ?1 ORDER BY id DESC LIMIT 1");
    let mut stmt = conn
        .prepare_cached(&sql)
        .map_err(sqlite_err("read a key"))?;
    stmt.query_row([key.as_bytes()], Row::from_sql)
        .optional()
        .map_err(sqlite_err("read a key"))?
        .map(Row::with_name)
        .transpose()
}

/// The live value of `key` (reads only what a [`KeyValue`] holds, not `old_value`).
pub(crate) fn get(conn: &Connection, key: &str) -> Result<Option<KeyValue>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT deleted, value, create_revision, id FROM log WHERE name = ?1 \
             ORDER BY id DESC LIMIT 1",
        )
        .map_err(sqlite_err("read a key"))?;
    let newest = stmt
        .query_row([key.as_bytes()], |r| {
            Ok((r.get::<_, bool>(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()
        .map_err(sqlite_err("read a key"))?;
    Ok(
        newest.and_then(|(deleted, value, create_revision, mod_revision)| {
            (!deleted).then(|| KeyValue {
                key: key.to_owned(),
                value,
                create_revision,
                mod_revision,
            })
        }),
    )
}

/// Appends `row` (whose `id` is the next revision) to the log.
pub(crate) fn append(conn: &Connection, row: &Row) -> Result<()> {
    let sql = format!("INSERT INTO log ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
    let mut stmt = conn
        .prepare_cached(&sql)
        .map_err(sqlite_err("append to the log"))?;
    stmt.execute(params![
        row.id,
        row.name.as_bytes(),
        row.created,
        row.deleted,
        row.create_revision,
        row.prev_revision,
        row.value,
        row.old_value,
    ])
    .map_err(sqlite_err("append to the log"))?;
    Ok(())
}

/// A range condition on the key column `column` for `prefix`, appending its parameters to
/// `params`.
fn prefix_clause(column: &str, prefix: &str, params: &mut Vec<Value>) -> String {
    params.push(Value::Blob(prefix.as_bytes().to_vec()));
    let mut clause = format!("{column} >= ?{}", params.len());
    if let Some(end) = prefix_end(prefix.as_bytes()) {
        params.push(Value::Blob(end));
        clause.push_str(&format!(" AND {column} < ?{}", params.len()));
    }
    clause
}

/// The query behind [`list`] and its parameters.
///
/// It walks the `(name, id)` index in key order and keeps, per key, only the row
/// that is the key's newest at `revision` (a lookup in the `(name, id)` index), so the rows
/// come out already sorted and the `LIMIT` stops the walk after the page: a page costs what
/// it returns, not what the prefix holds. (Grouping all keys first and sorting the result
/// would read and sort every value under the prefix for each page.) Only the columns a
/// [`KeyValue`] needs are read; `old_value` never is.
fn list_query(
    prefix: &str,
    start_after: Option<&str>,
    limit: usize,
    revision: i64,
) -> (String, Vec<Value>) {
    let mut params = vec![Value::Integer(revision)];
    let mut filter = prefix_clause("l.name", prefix, &mut params);
    if let Some(after) = start_after {
        params.push(Value::Blob(after.as_bytes().to_vec()));
        filter.push_str(&format!(" AND l.name > ?{}", params.len()));
    }
    let fetch = if limit == 0 {
        -1
    } else {
        i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1
    };
    params.push(Value::Integer(fetch));
    let sql = format!(
        "SELECT l.name, l.value, l.create_revision, l.id FROM log AS l INDEXED BY log_name_id \
         WHERE {filter} AND l.id <= ?1 AND l.deleted = 0 \
         AND l.id = (SELECT MAX(n.id) FROM log AS n WHERE n.name = l.name AND n.id <= ?1) \
         ORDER BY l.name LIMIT ?{n}",
        n = params.len(),
    );
    (sql, params)
}

/// Live keys under `prefix` (after `start_after`) as of `revision`, at most `limit` (0 = all)
/// plus whether more matched.
pub(crate) fn list(
    conn: &Connection,
    prefix: &str,
    start_after: Option<&str>,
    limit: usize,
    revision: i64,
) -> Result<(Vec<KeyValue>, bool)> {
    let (sql, params) = list_query(prefix, start_after, limit, revision);
    let mut stmt = conn.prepare_cached(&sql).map_err(sqlite_err("list keys"))?;
    let mut items = stmt
        .query_map(params_from_iter(params), |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .map_err(sqlite_err("list keys"))?
        .map(|r| {
            let (name, value, create_revision, mod_revision) =
                r.map_err(sqlite_err("list keys"))?;
            Ok(KeyValue {
                key: key_from_bytes(name)?,
                value,
                create_revision,
                mod_revision,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let more = limit != 0 && items.len() > limit;
    items.truncate(if limit == 0 { items.len() } else { limit });
    Ok((items, more))
}

/// Up to `page` events under `prefix` with revision greater than `after`, oldest first.
pub(crate) fn events_after(
    conn: &Connection,
    prefix: &str,
    after: i64,
    page: usize,
) -> Result<Vec<Event>> {
    let mut params = vec![Value::Integer(after)];
    let filter = prefix_clause("name", prefix, &mut params);
    params.push(Value::Integer(i64::try_from(page).unwrap_or(i64::MAX)));
    let sql = format!(
        "SELECT {COLUMNS} FROM log WHERE id > ?1 AND {filter} ORDER BY id LIMIT ?{}",
        params.len()
    );
    let mut stmt = conn
        .prepare_cached(&sql)
        .map_err(sqlite_err("read the log"))?;
    let rows = stmt
        .query_map(params_from_iter(params), Row::from_sql)
        .map_err(sqlite_err("read the log"))?
        .map(|r| Row::with_name(r.map_err(sqlite_err("read the log"))?).map(Row::into_event))
        .collect();
    rows
}

/// Records `revision` as the compaction point (reads below it now fail).
pub(crate) fn set_compact_revision(conn: &Connection, revision: i64) -> Result<()> {
    conn.execute(
        "INSERT INTO meta (name, value) VALUES ('compact_revision', ?1) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        [revision],
    )
    .map_err(sqlite_err("record the compaction point"))?;
    Ok(())
}

/// Deletes the rows with id in `(from, to]` that no read at or after `revision` can see:
/// rows superseded by a newer row of the same key at or before `revision`, and deletions at
/// or before it. Returns how many rows went.
pub(crate) fn purge(conn: &Connection, revision: i64, from: i64, to: i64) -> Result<usize> {
    conn.execute(
        "DELETE FROM log WHERE id > ?2 AND id <= ?3 AND (deleted = 1 OR id < \
           (SELECT MAX(newer.id) FROM log AS newer WHERE newer.name = log.name AND newer.id <= ?1))",
        params![revision, from, to],
    )
    .map_err(sqlite_err("compact the log"))
}

#[cfg(test)]
mod tests {
    use rusqlite::{params_from_iter, Connection, StatementStatus};

    use super::{append, list, list_query, migrate, Row};

    /// A database holding `keys` live keys under `/p/` (every tenth updated once, so that
    /// some keys have an older row to skip) and one key under another prefix.
    fn log_with(keys: usize) -> (Connection, i64) {
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        let mut id = 0;
        let mut put = |name: String, prev: i64| {
            id += 1;
            append(
                &conn,
                &Row {
                    id,
                    name,
                    created: prev == 0,
                    deleted: false,
                    create_revision: if prev == 0 { id } else { prev },
                    prev_revision: prev,
                    value: vec![b'v'; 2048],
                    old_value: None,
                },
            )
            .unwrap();
            id
        };
        for k in 0..keys {
            let first = put(format!("/p/{k:06}"), 0);
            if k % 10 == 0 {
                put(format!("/p/{k:06}"), first);
            }
        }
        put("/q/other".into(), 0);
        (conn, id)
    }

    /// SQLite's own counters for one run of the page query: (VM steps, sorts, full scans).
    fn page_cost(conn: &Connection, start_after: Option<&str>, revision: i64) -> (i32, i32, i32) {
        let (sql, params) = list_query("/p/", start_after, 10, revision);
        let mut stmt = conn.prepare(&sql).unwrap();
        let rows = stmt
            .query_map(params_from_iter(params), |_| Ok(()))
            .unwrap()
            .count();
        assert_eq!(
            rows, 11,
            "a page of 10 fetches one more to know if there is more"
        );
        (
            stmt.get_status(StatementStatus::VmStep),
            stmt.get_status(StatementStatus::Sort),
            stmt.get_status(StatementStatus::FullscanStep),
        )
    }

    #[test]
    fn paged_list_reads_only_the_page_not_the_whole_prefix() {
        let (small, small_rev) = log_with(100);
        let (big, big_rev) = log_with(5000);
        for start_after in [None, Some("/p/000042")] {
            let (small_steps, _, _) = page_cost(&small, start_after, small_rev);
            let (big_steps, sorts, scans) = page_cost(&big, start_after, big_rev);
            assert_eq!(
                (sorts, scans),
                (0, 0),
                "a page must come from the index in order"
            );
            assert!(
                big_steps <= small_steps + small_steps / 10,
                "a page of 10 took {big_steps} steps over 5000 keys and {small_steps} over 100: \
                 the query reads more than the page"
            );
        }
        let (items, more) = list(&big, "/p/", Some("/p/000009"), 3, big_rev).unwrap();
        let keys: Vec<_> = items.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, ["/p/000010", "/p/000011", "/p/000012"]);
        assert!(more);
        // The updated key shows its newest row.
        assert_eq!(items[0].mod_revision, items[0].create_revision + 1);
    }
}
