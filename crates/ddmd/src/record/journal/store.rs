//! The journal's SQLite file: its schema, and every statement run on it.
//!
//! One table of entries, numbered by `id` (given by the router, so that
//! the order in the file is the order of commits), and one of settings
//! kept between runs (the epoch, the export's position). WAL mode with
//! `synchronous = NORMAL`: a committed transaction survives the process
//! being killed; readers never wait for the writer.

use ddm_proto::message::{ConnectionEvent, EntryKind, GroupSwitch, JournalEntry};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS entry (
    id INTEGER PRIMARY KEY,
    time_ns INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    seq INTEGER,
    handle INTEGER,
    name TEXT,
    from_state INTEGER,
    to_state INTEGER,
    last_error INTEGER,
    reason TEXT,
    count INTEGER,
    rx_bytes INTEGER,
    tx_bytes INTEGER,
    connected_ns INTEGER,
    from_member TEXT,
    to_member TEXT,
    via_trigger INTEGER
);
CREATE INDEX IF NOT EXISTS entry_seq ON entry(seq) WHERE seq IS NOT NULL;
CREATE INDEX IF NOT EXISTS entry_time ON entry(time_ns);
CREATE INDEX IF NOT EXISTS entry_name ON entry(name, id);
CREATE TABLE IF NOT EXISTS setting (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
";

/// The writer's page cache, in KiB (SQLite's negative cache_size).
const WRITER_CACHE_KIB: i64 = -128;

/// How long a statement waits for another connection's lock.
const BUSY: Duration = Duration::from_secs(5);

/// Opens (creating it if need be) the journal at `path` for writing.
pub fn open_writer(path: &Path) -> rusqlite::Result<Connection> {
    let connection = Connection::open(path)?;
    // Set before the first table exists, so that retention can give the
    // space back (incremental_vacuum).
    connection.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    // Appending touches the last pages of the table and its indexes only:
    // a small cache keeps the service's memory flat however much it writes.
    connection.pragma_update(None, "cache_size", WRITER_CACHE_KIB)?;
    configure(&connection)?;
    connection.execute_batch(SCHEMA)?;
    add_switch_columns(&connection)?;
    Ok(connection)
}

/// A journal written before groups existed gets the columns of their
/// switches.
fn add_switch_columns(connection: &Connection) -> rusqlite::Result<()> {
    let present: bool = connection.query_row(
        "SELECT count(*) FROM pragma_table_info('entry') WHERE name = 'from_member'",
        [],
        |row| row.get::<_, i64>(0).map(|n| n > 0),
    )?;
    if !present {
        connection.execute_batch(
            "ALTER TABLE entry ADD COLUMN from_member TEXT;
             ALTER TABLE entry ADD COLUMN to_member TEXT;
             ALTER TABLE entry ADD COLUMN via_trigger INTEGER;",
        )?;
    }
    Ok(())
}

/// Whether SQLite finds the file sound (`PRAGMA quick_check`: every page,
/// of the table and of the indexes, well formed).
pub fn quick_check(connection: &Connection) -> rusqlite::Result<Result<(), String>> {
    let verdict: String = connection.query_row("PRAGMA quick_check(1)", [], |row| row.get(0))?;
    Ok(if verdict == "ok" {
        Ok(())
    } else {
        Err(verdict)
    })
}

/// Opens the journal for reading (and the export's own settings).
pub fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    configure(&connection)?;
    Ok(connection)
}

fn configure(connection: &Connection) -> rusqlite::Result<()> {
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.busy_timeout(BUSY)
}

/// Appends entries in one transaction.
pub fn insert(connection: &mut Connection, entries: &[JournalEntry]) -> rusqlite::Result<()> {
    let transaction = connection.transaction()?;
    {
        let mut statement = transaction.prepare_cached(
            "INSERT INTO entry (id, time_ns, kind, seq, handle, name, from_state, to_state,
                last_error, reason, count, rx_bytes, tx_bytes, connected_ns,
                from_member, to_member, via_trigger)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
        )?;
        for e in entries {
            let event = e.event.as_ref();
            let switch = event.and_then(|ev| ev.group_switch.as_ref());
            let name = event.map_or(e.interface.as_str(), |ev| ev.name.as_str());
            statement.execute(params![
                e.id as i64,
                e.time_unix_ns as i64,
                e.kind,
                Some(event.map_or(e.last_seq, |ev| ev.seq) as i64).filter(|s| *s != 0),
                event.map(|ev| ev.handle),
                (!name.is_empty()).then_some(name),
                event.map(|ev| ev.from),
                event.map(|ev| ev.to),
                event.map(|ev| ev.last_error),
                (!e.reason.is_empty()).then_some(e.reason.as_str()),
                (e.count != 0).then_some(e.count as i64),
                (e.rx_bytes != 0).then_some(e.rx_bytes as i64),
                (e.tx_bytes != 0).then_some(e.tx_bytes as i64),
                (e.connected_ns != 0).then_some(e.connected_ns as i64),
                switch.map(|s| s.from.as_str()),
                switch.map(|s| s.to.as_str()),
                switch.map(|s| s.via_trigger),
            ])?;
        }
    }
    transaction.commit()
}

/// The columns `entry_of` reads, in its order.
pub const COLUMNS: &str = "id, time_ns, kind, seq, handle, name, from_state, to_state,
    last_error, reason, count, rx_bytes, tx_bytes, connected_ns, from_member, to_member,
    via_trigger";

/// SQL for the id of the first entry at or after the time bound to
/// `parameter` (none: past the last). Entries are numbered in commit
/// order, so this bounds a window of time by ids, which the table is
/// stored by: a window is read without scanning the journal before it.
pub fn first_id_at_or_after(parameter: &str) -> String {
    format!(
        "coalesce((SELECT id FROM entry WHERE time_ns >= {parameter} ORDER BY time_ns LIMIT 1), 9223372036854775807)"
    )
}

/// SQL for the id of the last entry at or before the time bound to
/// `parameter` (none: 0).
pub fn last_id_at_or_before(parameter: &str) -> String {
    format!(
        "coalesce((SELECT id FROM entry WHERE time_ns <= {parameter} ORDER BY time_ns DESC LIMIT 1), 0)"
    )
}

/// An entry read back from a row of `COLUMNS`.
pub fn entry_of(row: &Row) -> rusqlite::Result<JournalEntry> {
    let kind: i32 = row.get(2)?;
    let name: Option<String> = row.get(5)?;
    let name = name.unwrap_or_default();
    let number =
        |i| -> rusqlite::Result<u64> { Ok(row.get::<_, Option<i64>>(i)?.unwrap_or(0) as u64) };
    let switch = kind == EntryKind::EntryGroupSwitch as i32;
    let transition = kind == EntryKind::EntryTransition as i32 || switch;
    let reason = row.get::<_, Option<String>>(9)?.unwrap_or_default();
    let group_switch = switch
        .then(|| -> rusqlite::Result<GroupSwitch> {
            Ok(GroupSwitch {
                from: row.get::<_, Option<String>>(14)?.unwrap_or_default(),
                to: row.get::<_, Option<String>>(15)?.unwrap_or_default(),
                via_trigger: row.get::<_, Option<bool>>(16)?.unwrap_or_default(),
                reason: reason.clone(),
            })
        })
        .transpose()?;
    Ok(JournalEntry {
        id: number(0)?,
        time_unix_ns: number(1)?,
        kind,
        event: transition
            .then(|| -> rusqlite::Result<ConnectionEvent> {
                Ok(ConnectionEvent {
                    seq: number(3)?,
                    handle: number(4)? as u32,
                    name: name.clone(),
                    from: number(6)? as u32,
                    to: number(7)? as u32,
                    time_unix_ns: number(1)?,
                    last_error: number(8)? as u32,
                    group_switch,
                })
            })
            .transpose()?,
        reason,
        count: number(10)?,
        interface: if transition { String::new() } else { name },
        rx_bytes: number(11)?,
        tx_bytes: number(12)?,
        connected_ns: number(13)?,
        last_seq: if transition { 0 } else { number(3)? },
    })
}

/// Where the numbering stands: the last id and sequence number used.
pub fn last_numbers(connection: &Connection) -> rusqlite::Result<(u64, u64)> {
    connection.query_row(
        "SELECT coalesce(max(id), 0), coalesce(max(seq), 0) FROM entry",
        [],
        |row| Ok((row.get::<_, i64>(0)? as u64, row.get::<_, i64>(1)? as u64)),
    )
}

/// Every interface's state after its last journaled transition.
pub fn last_states(connection: &Connection) -> rusqlite::Result<HashMap<String, u32>> {
    let mut statement = connection.prepare(
        "SELECT name, to_state FROM entry WHERE id IN
            (SELECT max(id) FROM entry WHERE kind = 0 GROUP BY name)",
    )?;
    let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    rows.collect()
}

pub fn setting(connection: &Connection, key: &str) -> rusqlite::Result<Option<u64>> {
    connection
        .query_row("SELECT value FROM setting WHERE key = ?1", [key], |row| {
            row.get::<_, i64>(0)
        })
        .optional()
        .map(|v| v.map(|v| v as u64))
}

pub fn set_setting(connection: &Connection, key: &str, value: u64) -> rusqlite::Result<()> {
    connection
        .execute(
            "INSERT INTO setting (key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value as i64],
        )
        .map(drop)
}

/// Bytes the entries take (pages in use, not the free ones).
pub fn bytes_used(connection: &Connection) -> rusqlite::Result<u64> {
    let pragma = |name: &str| -> rusqlite::Result<i64> {
        connection.pragma_query_value(None, name, |row| row.get(0))
    };
    Ok(((pragma("page_count")? - pragma("freelist_count")?) * pragma("page_size")?) as u64)
}

/// The oldest entry's time, if any.
pub fn oldest_time(connection: &Connection) -> rusqlite::Result<Option<u64>> {
    connection
        .query_row("SELECT min(time_ns) FROM entry", [], |row| {
            row.get::<_, Option<i64>>(0)
        })
        .map(|t| t.map(|t| t as u64))
}

/// Deletes up to `limit` of the oldest entries older than `before_ns`, or
/// (`before_ns` = None) the oldest `limit`, but never the newest entry (it
/// keeps the numbering). Returns how many went.
pub fn delete_oldest(
    connection: &Connection,
    before_ns: Option<u64>,
    limit: u64,
) -> rusqlite::Result<u64> {
    let deleted = connection.execute(
        "DELETE FROM entry WHERE id IN (
            SELECT id FROM entry
            WHERE time_ns < ?1 AND id < (SELECT max(id) FROM entry)
            ORDER BY id LIMIT ?2)",
        params![before_ns.map_or(i64::MAX, |t| t as i64), limit as i64],
    )?;
    if deleted > 0 {
        connection.execute_batch("PRAGMA incremental_vacuum")?;
    }
    Ok(deleted as u64)
}
