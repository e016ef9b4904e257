//! The decision log: one record per decision, appended and synced before the next, rotated by
//! size (and pruned by age), every record chained to the one before by an HMAC
//! ([`crate::terminal::event_chain`]). Each record is `length (u32 LE) | crc32 (u32 LE) | payload`, the
//! payload `postcard((seq, entry))` followed by its 32-byte MAC, so a record torn by a power cut
//! is detected by its length or checksum without the key and skipped; the writer cuts such a
//! tail off before appending again. Each file starts with an anchor record that continues the
//! previous file's chain. Files of the unchained format 1 are still read.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::keys::MasterKey;
use crate::terminal::event_chain::{self, Head, LogKey, MacBytes, MAC_LEN};

const MAGIC: &[u8; 8] = b"FGEVLOG2";
/// The format before the chain: read, never appended to (the writer rotates it away).
const LEGACY_MAGIC: &[u8; 8] = b"FGEVLOG1";
/// No decision record comes near this; a larger length is damage, not data.
const MAX_RECORD: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum EventLogError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a facegate decision log")]
    NotALog { path: PathBuf },
    #[error("encoding a decision record: {0}")]
    Encode(#[from] postcard::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventOutcome {
    Accepted,
    Unknown,
    /// Refused by the liveness check (last, so older logs still read).
    Spoof,
}

/// One decision, as logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Wall-clock time of the decision, milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// Frame time of the decision on the camera's clock, milliseconds.
    pub frame_ms: u64,
    pub track: u64,
    pub outcome: EventOutcome,
    pub person_id: Option<u32>,
    pub name: Option<String>,
    pub similarity: f32,
    pub frames_used: u32,
}

/// One record of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Entry {
    /// The first record of every file: the chain continues from `prev_mac`, the previous
    /// file's last MAC (zeros for the very first file).
    Anchor {
        prev_mac: MacBytes,
        /// The id of the key file the chain is keyed with.
        key_id: [u8; 8],
        door: String,
        unix_ms: u64,
    },
    /// The terminal opened the log (a start or restart), at this door.
    Start {
        door: String,
        unix_ms: u64,
    },
    Decision(Event),
    /// When the terminal reopened the log, records `missing_from..=missing_to` named by the
    /// head file were not there: the evidence is kept in the chain.
    Gap {
        missing_from: u64,
        missing_to: u64,
        unix_ms: u64,
    },
    /// One face-login attempt (pam_facegate, `facegate login-test`), refused ones included.
    /// Last, so files written before it existed still read.
    Login(LoginRecord),
}

/// A face-login attempt, as logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoginRecord {
    pub unix_ms: u64,
    /// The Unix account asked for.
    pub user: String,
    /// The protocol's word: `accepted`, `not_recognised`, `spoof`, `no_face`, `dark`,
    /// `timeout`, or why it was not tried (`rate_limited`, `not_enrolled`, `unavailable`,
    /// `liveness_unavailable`, `forbidden`).
    pub outcome: String,
    /// The best cosine to the account's templates over the attempt (None: no face compared).
    pub score: Option<f32>,
    pub person_id: Option<u32>,
    pub frames: u32,
    pub liveness: bool,
    /// The uid of the process that asked (the login program or screen locker).
    pub peer_uid: u32,
    pub duration_ms: u64,
}

/// One readable record of a file, as stored.
pub struct RawRecord<'a> {
    /// Byte offset of the record in its file.
    pub offset: usize,
    pub seq: u64,
    pub entry: Entry,
    /// The bytes the MAC covers (with the previous MAC): `postcard((seq, entry))`.
    pub body: &'a [u8],
    pub mac: MacBytes,
}

/// The readable records of one file's bytes, and where the readable part ends.
pub struct Parsed<'a> {
    pub records: Vec<RawRecord<'a>>,
    pub valid_end: usize,
    /// The unreadable part (if any) is one record torn at the very end, as a power cut leaves
    /// it, rather than a damaged record with more after it.
    pub tail_only: bool,
}

/// The `[log]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogParams {
    /// The decision log file; rotated files get `.1`, `.2`, ... (newest first).
    pub path: PathBuf,
    /// Size at which the log is rotated.
    pub max_bytes: u64,
    /// Rotated files kept.
    pub keep: u32,
    /// Rotated files whose last record is older than this many days are deleted (unset: kept
    /// until `keep` pushes them out).
    pub keep_days: Option<u32>,
    /// The name of this door or terminal in the log and its CSV export (unset: the host name).
    pub door: Option<String>,
    /// A JPEG of the frame of every unknown or spoof decision goes here (unset: none are kept;
    /// they are pictures of people).
    pub snapshot_dir: Option<PathBuf>,
    /// The most snapshots kept; the oldest are deleted first.
    pub snapshot_keep: usize,
}

impl Default for LogParams {
    fn default() -> Self {
        Self {
            path: PathBuf::from("events.fglog"),
            max_bytes: 1 << 20,
            keep: 4,
            keep_days: None,
            door: None,
            snapshot_dir: None,
            snapshot_keep: 100,
        }
    }
}

impl LogParams {
    /// The configured door name, else the host name.
    pub fn door_name(&self) -> String {
        self.door.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_default()
        })
    }
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> EventLogError + '_ {
    move |source| EventLogError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The log's files that exist, oldest first.
pub fn log_files(params: &LogParams) -> Vec<PathBuf> {
    let path = &params.path;
    let mut files: Vec<PathBuf> = (1..=params.keep.max(1))
        .rev()
        .map(|n| rotated(path, n))
        .filter(|p| p.exists())
        .collect();
    if path.exists() {
        files.push(path.clone());
    }
    files
}

/// A log file's bytes (`None` if it does not exist); an error if it is not a log.
pub fn read_file(path: &Path) -> Result<Option<Vec<u8>>, EventLogError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    if !bytes.starts_with(MAGIC) && !is_legacy(&bytes) {
        return Err(EventLogError::NotALog {
            path: path.to_path_buf(),
        });
    }
    Ok(Some(bytes))
}

/// A file of the unchained format 1.
pub fn is_legacy(bytes: &[u8]) -> bool {
    bytes.starts_with(LEGACY_MAGIC)
}

/// The checksummed payloads of a file (either format), where the readable part ends, and
/// whether the rest is a torn last record.
fn frames(bytes: &[u8]) -> (Vec<(usize, &[u8])>, usize, bool) {
    let mut out = Vec::new();
    let mut at = MAGIC.len().min(bytes.len());
    while at < bytes.len() {
        if at + 8 > bytes.len() {
            return (out, at, true);
        }
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
        let end = at + 8 + len;
        if len == 0 || len > MAX_RECORD {
            return (out, at, false);
        }
        if end > bytes.len() {
            return (out, at, true);
        }
        let payload = &bytes[at + 8..end];
        if crc32fast::hash(payload) != crc {
            return (out, at, end == bytes.len());
        }
        out.push((at, payload));
        at = end;
    }
    (out, at, true)
}

/// The records of a chained file's bytes.
pub fn parse(bytes: &[u8]) -> Parsed<'_> {
    let (frames, mut valid_end, mut tail_only) = frames(bytes);
    let mut records = Vec::with_capacity(frames.len());
    for (offset, payload) in frames {
        let decoded = payload
            .len()
            .checked_sub(MAC_LEN)
            .map(|n| payload.split_at(n))
            .and_then(|(body, mac)| {
                let (seq, entry) = postcard::from_bytes::<(u64, Entry)>(body).ok()?;
                Some(RawRecord {
                    offset,
                    seq,
                    entry,
                    body,
                    mac: mac.try_into().expect("32 bytes"),
                })
            });
        match decoded {
            Some(r) => records.push(r),
            None => {
                // A valid checksum over an undecodable payload: a writer bug or damage.
                valid_end = offset;
                tail_only = false;
                break;
            }
        }
    }
    Parsed {
        records,
        valid_end,
        tail_only,
    }
}

/// The events of a format 1 file and where its readable part ends.
fn parse_legacy(bytes: &[u8]) -> (Vec<Event>, usize) {
    let (frames, mut valid_end, _) = frames(bytes);
    let mut events = Vec::with_capacity(frames.len());
    for (offset, payload) in frames {
        match postcard::from_bytes::<Event>(payload) {
            Ok(e) => events.push(e),
            Err(_) => {
                valid_end = offset;
                break;
            }
        }
    }
    (events, valid_end)
}

/// The last record of a chained file, if any.
fn last_of(path: &Path) -> Result<Option<Head>, EventLogError> {
    Ok(read_file(path)?
        .filter(|b| !is_legacy(b))
        .and_then(|bytes| {
            parse(&bytes).records.last().map(|r| Head {
                seq: r.seq,
                mac: r.mac,
            })
        }))
}

/// Appends decisions to the log.
pub struct EventLog {
    params: LogParams,
    key: LogKey,
    door: String,
    file: File,
    size: u64,
    /// Records in the current file, its anchor included.
    records: usize,
    last: Option<Head>,
}

impl EventLog {
    /// Open (or create) the log for appending, keyed with `master`'s log key; a torn last
    /// record is cut off, an old unchained file is rotated away, and a start record is written.
    pub fn open(params: &LogParams, master: &MasterKey) -> Result<Self, EventLogError> {
        let path = &params.path;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        if read_file(path)?.is_some_and(|b| is_legacy(&b)) {
            shift_rotated(params)?;
        }
        let head = event_chain::read_head(path).unwrap_or_else(|e| {
            log::warn!("{e}: the head file is damaged; it is rewritten");
            None
        });
        let mut log = Self::open_file(params, LogKey::new(master))?;
        // The head names a record the log no longer has: keep that evidence in the chain.
        if let Some(h) = head {
            let found = log.last.map(|l| l.seq);
            if found.is_none_or(|s| s < h.seq) || log.last.is_some_and(|l| l.seq == h.seq && l != h)
            {
                let missing_from = found.map_or(0, |s| (s + 1).min(h.seq));
                log.append_entry(&Entry::Gap {
                    missing_from,
                    missing_to: h.seq,
                    unix_ms: now_ms(),
                })?;
            }
        }
        let door = log.door.clone();
        log.append_entry(&Entry::Start {
            door,
            unix_ms: now_ms(),
        })?;
        prune_by_age(params)?;
        Ok(log)
    }

    /// Open the current file, starting it with an anchor if it is new.
    fn open_file(params: &LogParams, key: LogKey) -> Result<Self, EventLogError> {
        let path = &params.path;
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io_err(path))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_err(path))?;
        let mut log = Self {
            params: params.clone(),
            key,
            door: params.door_name(),
            file,
            size: 0,
            records: 0,
            last: None,
        };
        if bytes.is_empty() {
            // A new file continues the newest rotated one's chain.
            log.last = log_files(params)
                .iter()
                .rev()
                .filter(|f| *f != path)
                .find_map(|f| last_of(f).ok().flatten());
            log.file.write_all(MAGIC).map_err(io_err(path))?;
            log.size = MAGIC.len() as u64;
            let anchor = Entry::Anchor {
                prev_mac: log.last.map_or([0; MAC_LEN], |h| h.mac),
                key_id: log.key.id(),
                door: log.door.clone(),
                unix_ms: now_ms(),
            };
            log.write_record(&anchor)?;
            sync_parent(path)?;
            return Ok(log);
        }
        if !bytes.starts_with(MAGIC) {
            return Err(EventLogError::NotALog { path: path.clone() });
        }
        let parsed = parse(&bytes);
        if parsed.valid_end < bytes.len() {
            log::warn!(
                "{}: cutting off {} unreadable bytes at the end (a record torn by a power cut?)",
                path.display(),
                bytes.len() - parsed.valid_end
            );
            log.file
                .set_len(parsed.valid_end as u64)
                .map_err(io_err(path))?;
            log.file.sync_all().map_err(io_err(path))?;
        }
        log.size = parsed.valid_end as u64;
        log.records = parsed.records.len();
        log.last = parsed.records.last().map(|r| Head {
            seq: r.seq,
            mac: r.mac,
        });
        Ok(log)
    }

    /// Append one decision and sync it to disk before returning.
    pub fn append(&mut self, event: &Event) -> Result<(), EventLogError> {
        self.append_entry(&Entry::Decision(event.clone()))
    }

    /// Append one face-login attempt and sync it to disk before returning.
    pub fn append_login(&mut self, login: &LoginRecord) -> Result<(), EventLogError> {
        self.append_entry(&Entry::Login(login.clone()))
    }

    fn append_entry(&mut self, entry: &Entry) -> Result<(), EventLogError> {
        let len = self.record(entry)?.len() as u64;
        // Rotate before a record that would overflow, but never leave a file with its anchor only.
        if self.size + len > self.params.max_bytes && self.records > 1 {
            self.rotate()?;
        }
        self.write_record(entry)
    }

    /// The framed bytes of `entry` as the next record of the chain.
    fn record(&self, entry: &Entry) -> Result<Vec<u8>, EventLogError> {
        let seq = self.last.map_or(0, |h| h.seq + 1);
        let body = postcard::to_allocvec(&(seq, entry))?;
        let mac = self
            .key
            .mac(&self.last.map_or([0; MAC_LEN], |h| h.mac), &body);
        let len = body.len() + MAC_LEN;
        let mut record = Vec::with_capacity(len + 8);
        record.extend_from_slice(&(len as u32).to_le_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(&body);
        crc.update(&mac);
        record.extend_from_slice(&crc.finalize().to_le_bytes());
        record.extend_from_slice(&body);
        record.extend_from_slice(&mac);
        Ok(record)
    }

    fn write_record(&mut self, entry: &Entry) -> Result<(), EventLogError> {
        let record = self.record(entry)?;
        let path = &self.params.path;
        // One write of the whole record: a cut leaves a short tail, never a gap.
        self.file.write_all(&record).map_err(io_err(path))?;
        self.file.sync_data().map_err(io_err(path))?;
        self.size += record.len() as u64;
        self.records += 1;
        let n = record.len();
        let head = Head {
            seq: self.last.map_or(0, |h| h.seq + 1),
            mac: record[n - MAC_LEN..].try_into().expect("32 bytes"),
        };
        self.last = Some(head);
        event_chain::write_head(path, &head)
    }

    fn rotate(&mut self) -> Result<(), EventLogError> {
        shift_rotated(&self.params)?;
        let key = self.key.clone();
        *self = Self::open_file(&self.params, key)?;
        prune_by_age(&self.params)
    }
}

/// Rename the current file to `.1` (and `.1` to `.2`, ...), dropping the oldest beyond `keep`.
fn shift_rotated(params: &LogParams) -> Result<(), EventLogError> {
    let path = &params.path;
    let keep = params.keep;
    if keep == 0 {
        return std::fs::remove_file(path).map_err(io_err(path));
    }
    for n in (1..keep).rev() {
        let from = rotated(path, n);
        if from.exists() {
            let to = rotated(path, n + 1);
            std::fs::rename(&from, &to).map_err(io_err(&from))?;
        }
    }
    std::fs::rename(path, rotated(path, 1)).map_err(io_err(path))?;
    sync_parent(path)
}

/// Delete rotated files whose last record is older than `keep_days`. The oldest file left
/// still starts with its anchor, so the chain stays verifiable from there.
fn prune_by_age(params: &LogParams) -> Result<(), EventLogError> {
    let Some(days) = params.keep_days else {
        return Ok(());
    };
    let cutoff = now_ms().saturating_sub(u64::from(days) * 86_400_000);
    for n in 1..=params.keep {
        let file = rotated(&params.path, n);
        let Some(bytes) = read_file(&file)? else {
            continue;
        };
        let newest = if is_legacy(&bytes) {
            parse_legacy(&bytes).0.last().map(|e| e.unix_ms)
        } else {
            parse(&bytes).records.last().map(|r| entry_time(&r.entry))
        };
        if newest.is_none_or(|t| t < cutoff) {
            std::fs::remove_file(&file).map_err(io_err(&file))?;
        }
    }
    Ok(())
}

fn entry_time(e: &Entry) -> u64 {
    match e {
        Entry::Anchor { unix_ms, .. }
        | Entry::Start { unix_ms, .. }
        | Entry::Gap { unix_ms, .. } => *unix_ms,
        Entry::Decision(ev) => ev.unix_ms,
        Entry::Login(l) => l.unix_ms,
    }
}

pub(crate) fn sync_parent(path: &Path) -> Result<(), EventLogError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Everything readable in a log and its rotated files, oldest first.
#[derive(Debug, Default)]
pub struct LogContents {
    pub events: Vec<Event>,
    /// The door each event was decided at (parallel to `events`; empty for format 1 files).
    pub doors: Vec<String>,
    /// Face-login attempts, oldest first.
    pub logins: Vec<LoginRecord>,
    /// Files with unreadable bytes at their end: (file, bytes skipped).
    pub damaged: Vec<(PathBuf, u64)>,
}

/// Read the decisions (no key needed; [`crate::terminal::event_chain::verify`] checks the chain).
pub fn read_log(params: &LogParams) -> Result<LogContents, EventLogError> {
    let mut out = LogContents::default();
    for file in log_files(params) {
        let Some(bytes) = read_file(&file)? else {
            continue;
        };
        let valid = if is_legacy(&bytes) {
            let (events, valid) = parse_legacy(&bytes);
            out.doors
                .extend(std::iter::repeat_n(String::new(), events.len()));
            out.events.extend(events);
            valid
        } else {
            let parsed = parse(&bytes);
            let mut door = String::new();
            for r in parsed.records {
                match r.entry {
                    Entry::Anchor { door: d, .. } | Entry::Start { door: d, .. } => door = d,
                    Entry::Decision(e) => {
                        out.events.push(e);
                        out.doors.push(door.clone());
                    }
                    Entry::Login(l) => out.logins.push(l),
                    Entry::Gap { .. } => {}
                }
            }
            parsed.valid_end
        };
        if valid < bytes.len() {
            out.damaged.push((file, (bytes.len() - valid) as u64));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(i: u64) -> Event {
        Event {
            unix_ms: 1_700_000_000_000 + i,
            frame_ms: i * 100,
            track: i,
            outcome: if i.is_multiple_of(2) {
                EventOutcome::Accepted
            } else {
                EventOutcome::Unknown
            },
            person_id: i.is_multiple_of(2).then_some(7),
            name: i.is_multiple_of(2).then(|| "Ada Lovelace".to_string()),
            similarity: 0.5 + i as f32 / 100.0,
            frames_used: 5,
        }
    }

    fn params(dir: &Path) -> LogParams {
        LogParams {
            path: dir.join("sub/events.fglog"),
            door: Some("front".into()),
            ..LogParams::default()
        }
    }

    fn key() -> MasterKey {
        MasterKey::from_bytes([5; 32])
    }

    fn verify(p: &LogParams) -> event_chain::Verified {
        event_chain::verify(p, &LogKey::new(&key())).unwrap()
    }

    #[test]
    fn records_survive_reopening_and_the_chain_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let p = params(dir.path());
        let mut log = EventLog::open(&p, &key()).unwrap();
        log.append(&event(0)).unwrap();
        log.append(&event(1)).unwrap();
        drop(log);
        let mut log = EventLog::open(&p, &key()).unwrap();
        log.append(&event(2)).unwrap();
        let read = read_log(&p).unwrap();
        assert_eq!(read.events, [event(0), event(1), event(2)]);
        assert_eq!(read.doors, ["front"; 3]);
        assert!(read.damaged.is_empty());
        let v = verify(&p);
        assert_eq!(v.first_problem, None);
        // anchor, start, 2 decisions, start, 1 decision
        assert_eq!((v.records, v.decisions), (6, 3));
        // Another key does not verify it.
        let other = event_chain::verify(&p, &LogKey::new(&MasterKey::from_bytes([6; 32])));
        assert!(matches!(
            other.unwrap().first_problem,
            Some(event_chain::Problem::WrongKey { .. })
        ));
    }

    #[test]
    fn a_torn_tail_is_skipped_when_reading_and_cut_before_appending() {
        let dir = tempfile::tempdir().unwrap();
        let p = params(dir.path());
        let mut log = EventLog::open(&p, &key()).unwrap();
        for i in 0..2 {
            log.append(&event(i)).unwrap();
        }
        drop(log);
        let mut log = EventLog::open(&p, &key()).unwrap();
        log.append(&event(2)).unwrap();
        drop(log);
        let full = std::fs::read(&p.path).unwrap();
        // Every cut inside the last record.
        let (_, two_end, _) = frames(&full[..full.len() - 1]);
        for cut in two_end + 1..full.len() {
            std::fs::write(&p.path, &full[..cut]).unwrap();
            let read = read_log(&p).unwrap();
            assert_eq!(read.events, [event(0), event(1)], "cut at {cut}");
            assert_eq!(read.damaged, [(p.path.clone(), (cut - two_end) as u64)]);
            // The head names the torn record: verify calls it cut off, naming it.
            let problem = verify(&p).first_problem.unwrap().to_string();
            assert!(problem.starts_with("record 5 is missing"), "{problem}");
        }
        // The writer cuts the damage off, so new records are readable after the good ones.
        let mut log = EventLog::open(&p, &key()).unwrap();
        log.append(&event(3)).unwrap();
        let read = read_log(&p).unwrap();
        assert_eq!(read.events, [event(0), event(1), event(3)]);
        assert!(read.damaged.is_empty());
    }

    #[test]
    fn the_log_rotates_by_size_keeps_the_newest_files_and_stays_verifiable() {
        let dir = tempfile::tempdir().unwrap();
        let p = LogParams {
            max_bytes: 600,
            keep: 2,
            ..params(dir.path())
        };
        let mut log = EventLog::open(&p, &key()).unwrap();
        for i in 0..40 {
            log.append(&event(i)).unwrap();
        }
        for f in [&p.path, &rotated(&p.path, 1), &rotated(&p.path, 2)] {
            assert!(
                std::fs::metadata(f).unwrap().len() <= 600,
                "{}",
                f.display()
            );
        }
        assert!(!rotated(&p.path, 3).exists());
        let events = read_log(&p).unwrap().events;
        // The oldest were dropped; what is left is the newest, in order.
        assert!(events.len() < 40 && events.len() >= 6, "{}", events.len());
        let tracks: Vec<u64> = events.iter().map(|e| e.track).collect();
        let expected: Vec<u64> = (40 - events.len() as u64..40).collect();
        assert_eq!(tracks, expected);
        let v = verify(&p);
        assert_eq!(v.first_problem, None);
        assert_eq!(v.files.len(), 3);
        // Removing the middle file breaks the chain at the next file's anchor.
        std::fs::remove_file(rotated(&p.path, 1)).unwrap();
        assert!(matches!(
            verify(&p).first_problem,
            Some(event_chain::Problem::SeqBreak { .. })
        ));
    }

    #[test]
    fn old_files_are_pruned_by_age() {
        let dir = tempfile::tempdir().unwrap();
        let p = LogParams {
            max_bytes: 400,
            keep: 5,
            keep_days: Some(30),
            ..params(dir.path())
        };
        let mut log = EventLog::open(&p, &key()).unwrap();
        // Decisions from 2023: every rotated file is older than 30 days and goes.
        for i in 0..20 {
            log.append(&event(i)).unwrap();
        }
        drop(log);
        assert!(!rotated(&p.path, 2).exists());
        assert_eq!(verify(&p).first_problem, None);
    }

    #[test]
    fn a_file_that_is_not_a_log_is_refused_and_a_legacy_file_is_read_and_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let p = params(dir.path());
        std::fs::create_dir_all(p.path.parent().unwrap()).unwrap();
        std::fs::write(&p.path, "gallery or something").unwrap();
        assert!(matches!(
            EventLog::open(&p, &key()),
            Err(EventLogError::NotALog { .. })
        ));
        assert!(matches!(read_log(&p), Err(EventLogError::NotALog { .. })));
        // A format 1 file: its records are read, and the writer starts a chained file.
        let mut legacy = LEGACY_MAGIC.to_vec();
        let payload = postcard::to_allocvec(&event(9)).unwrap();
        legacy.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        legacy.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        legacy.extend_from_slice(&payload);
        std::fs::write(&p.path, &legacy).unwrap();
        assert_eq!(read_log(&p).unwrap().events, [event(9)]);
        let mut log = EventLog::open(&p, &key()).unwrap();
        log.append(&event(10)).unwrap();
        assert_eq!(read_log(&p).unwrap().events, [event(9), event(10)]);
        let v = verify(&p);
        assert_eq!(v.first_problem, None);
        assert_eq!(v.legacy_files, [rotated(&p.path, 1)]);
    }
}
