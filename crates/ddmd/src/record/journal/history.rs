//! Reading the journal back: a page of history, oldest first.
//!
//! A page is bounded twice: by the entries asked for and by the frame
//! that carries it, so any journal can be read with any frame limit.

use super::store::{self, COLUMNS};
use ddm_proto::message::{History, JournalEntry};
use prost::Message;
use rusqlite::{named_params, Connection};

/// What a frame holds besides the entries.
const REPLY_OVERHEAD: usize = 256;

/// One page of entries after `request.after_id`; true when more remain.
pub fn page(
    connection: &Connection,
    request: &History,
    max_frame: usize,
) -> rusqlite::Result<(Vec<JournalEntry>, bool)> {
    let sql = format!(
        "SELECT {COLUMNS} FROM entry
         WHERE id > :after
           AND (:since_seq = 0 OR id >= coalesce(
                (SELECT min(id) FROM entry WHERE seq >= :since_seq), 9223372036854775807))
           AND (:until_seq = 0 OR id <= coalesce(
                (SELECT max(id) FROM entry WHERE seq <= :until_seq), 0))
           AND (:since_ns = 0 OR (time_ns >= :since_ns AND id >= {since_id}))
           AND (:until_ns = 0 OR (time_ns <= :until_ns AND id <= {until_id}))
           AND (:interface = '' OR name = :interface OR name IS NULL)
           AND (:transitions_only = 0 OR kind IN (0, 8))
         ORDER BY id",
        since_id = store::first_id_at_or_after(":since_ns"),
        until_id = store::last_id_at_or_before(":until_ns"),
    );
    let mut statement = connection.prepare(&sql)?;
    let mut rows = statement.query(named_params! {
        ":after": request.after_id as i64,
        ":since_seq": request.since_seq as i64,
        ":until_seq": request.until_seq as i64,
        ":since_ns": request.since_unix_ns as i64,
        ":until_ns": request.until_unix_ns as i64,
        ":interface": request.interface,
        ":transitions_only": request.transitions_only,
    })?;
    let budget = max_frame.saturating_sub(REPLY_OVERHEAD);
    let limit = match request.max_entries {
        0 => usize::MAX,
        n => n as usize,
    };
    let (mut entries, mut used) = (Vec::new(), 0);
    while let Some(row) = rows.next()? {
        let entry = store::entry_of(row)?;
        let size = entry.encoded_len() + 4;
        if entries.len() == limit || (used + size > budget && !entries.is_empty()) {
            return Ok((entries, true));
        }
        used += size;
        entries.push(entry);
    }
    Ok((entries, false))
}
