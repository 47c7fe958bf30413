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

pub(crate) fn sql_err(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(format!("sqlite: {e}"))
}

/// Creates the schema if needed and refuses databases written by a newer schema.
pub(crate) fn migrate(conn: &Connection) -> Result<()> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sql_err)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Backend(format!(
            "database schema version {version} is newer than the supported {SCHEMA_VERSION}"
        )));
    }
    conn.execute_batch(SCHEMA).map_err(sql_err)?;
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(sql_err)
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
        .map_err(|e| StoreError::Backend(format!("stored key is not utf-8: {e}")))
}

/// The newest revision ever assigned (survives compaction of the newest rows).
pub(crate) fn current_revision(conn: &Connection) -> Result<i64> {
    conn.query_row(
        "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'log'), 0)",
        [],
        |r| r.get(0),
    )
    .map_err(sql_err)
}

pub(crate) fn compact_revision(conn: &Connection) -> Result<i64> {
    conn.query_row(
        "SELECT COALESCE((SELECT value FROM meta WHERE name = 'compact_revision'), 0)",
        [],
        |r| r.get(0),
    )
    .map_err(sql_err)
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
    let mut stmt = conn.prepare_cached(&sql).map_err(sql_err)?;
    stmt.query_row([key.as_bytes()], Row::from_sql)
        .optional()
        .map_err(sql_err)?
        .map(Row::with_name)
        .transpose()
}

/// The live value of `key`.
pub(crate) fn get(conn: &Connection, key: &str) -> Result<Option<KeyValue>> {
    Ok(latest(conn, key)?.filter(|r| !r.deleted).map(|r| r.kv()))
}

/// Appends `row` (whose `id` is the next revision) to the log.
pub(crate) fn append(conn: &Connection, row: &Row) -> Result<()> {
    let sql = format!("INSERT INTO log ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
    let mut stmt = conn.prepare_cached(&sql).map_err(sql_err)?;
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
    .map_err(sql_err)?;
    Ok(())
}

/// A `name` range condition for `prefix`, appending its parameters to `params`.
fn prefix_clause(prefix: &str, params: &mut Vec<Value>) -> String {
    params.push(Value::Blob(prefix.as_bytes().to_vec()));
    let mut clause = format!("name >= ?{}", params.len());
    if let Some(end) = prefix_end(prefix.as_bytes()) {
        params.push(Value::Blob(end));
        clause.push_str(&format!(" AND name < ?{}", params.len()));
    }
    clause
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
    let mut params = Vec::new();
    let mut filter = prefix_clause(prefix, &mut params);
    if let Some(after) = start_after {
        params.push(Value::Blob(after.as_bytes().to_vec()));
        filter.push_str(&format!(" AND name > ?{}", params.len()));
    }
    params.push(Value::Integer(revision));
    filter.push_str(&format!(" AND id <= ?{}", params.len()));
    let fetch = if limit == 0 {
        -1
    } else {
        i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1
    };
    params.push(Value::Integer(fetch));
    let sql = format!(
        "SELECT {cols} FROM log AS l \
         JOIN (SELECT MAX(id) AS top FROM log WHERE {filter} GROUP BY name) AS m ON l.id = m.top \
         WHERE l.deleted = 0 ORDER BY l.name LIMIT ?{n}",
        cols = COLUMNS
            .split(", ")
            .map(|c| format!("l.{c}"))
            .collect::<Vec<_>>()
            .join(", "),
        n = params.len(),
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(sql_err)?;
    let mut items = stmt
        .query_map(params_from_iter(params), Row::from_sql)
        .map_err(sql_err)?
        .map(|r| Row::with_name(r.map_err(sql_err)?).map(|row| row.kv()))
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
    let filter = prefix_clause(prefix, &mut params);
    params.push(Value::Integer(i64::try_from(page).unwrap_or(i64::MAX)));
    let sql = format!(
        "SELECT {COLUMNS} FROM log WHERE id > ?1 AND {filter} ORDER BY id LIMIT ?{}",
        params.len()
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(sql_err)?;
    let rows = stmt
        .query_map(params_from_iter(params), Row::from_sql)
        .map_err(sql_err)?
        .map(|r| Row::with_name(r.map_err(sql_err)?).map(Row::into_event))
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
    .map_err(sql_err)?;
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
    .map_err(sql_err)
}
