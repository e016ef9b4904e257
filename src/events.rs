//! The decision log: one record per decision, appended and synced before the next, rotated by
//! size. Each record is `length (u32 LE) | crc32 (u32 LE) | postcard payload`, so a record torn
//! by a power cut is detected by its length or checksum and skipped; the writer cuts such a tail
//! off before appending again.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 8] = b"FGEVLOG1";
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
    /// A JPEG of the frame of every unknown decision goes here (unset: none are kept; they are
    /// pictures of people).
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
            snapshot_dir: None,
            snapshot_keep: 100,
        }
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

/// The records of one file's bytes, and where the readable part ends.
fn parse(bytes: &[u8]) -> (Vec<Event>, usize) {
    let mut events = Vec::new();
    let mut at = MAGIC.len();
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
        let end = at + 8 + len;
        if len == 0 || len > MAX_RECORD || end > bytes.len() {
            break;
        }
        let payload = &bytes[at + 8..end];
        if crc32fast::hash(payload) != crc {
            break;
        }
        match postcard::from_bytes::<Event>(payload) {
            Ok(e) => events.push(e),
            Err(_) => break,
        }
        at = end;
    }
    (events, at.min(bytes.len()))
}

/// Appends decisions to the log.
pub struct EventLog {
    params: LogParams,
    file: File,
    size: u64,
}

impl EventLog {
    /// Open (or create) the log for appending; a torn last record is cut off.
    pub fn open(params: &LogParams) -> Result<Self, EventLogError> {
        let path = &params.path;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io_err(path))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_err(path))?;
        let size = if bytes.is_empty() {
            file.write_all(MAGIC).map_err(io_err(path))?;
            file.sync_all().map_err(io_err(path))?;
            sync_parent(path)?;
            MAGIC.len() as u64
        } else {
            if !bytes.starts_with(MAGIC) {
                return Err(EventLogError::NotALog { path: path.clone() });
            }
            let (_, valid) = parse(&bytes);
            if valid < bytes.len() {
                log::warn!(
                    "{}: cutting off {} unreadable bytes at the end (a record torn by a power cut?)",
                    path.display(),
                    bytes.len() - valid
                );
                file.set_len(valid as u64).map_err(io_err(path))?;
                file.sync_all().map_err(io_err(path))?;
            }
            valid as u64
        };
        Ok(Self {
            params: params.clone(),
            file,
            size,
        })
    }

    /// Append one record and sync it to disk before returning.
    pub fn append(&mut self, event: &Event) -> Result<(), EventLogError> {
        let payload = postcard::to_allocvec(event)?;
        let mut record = Vec::with_capacity(payload.len() + 8);
        record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        record.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        record.extend_from_slice(&payload);
        if self.size + record.len() as u64 > self.params.max_bytes && self.size > MAGIC.len() as u64
        {
            self.rotate()?;
        }
        let path = &self.params.path;
        // One write of the whole record: a cut leaves a short tail, never a gap.
        self.file.write_all(&record).map_err(io_err(path))?;
        self.file.sync_data().map_err(io_err(path))?;
        self.size += record.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), EventLogError> {
        let path = self.params.path.clone();
        let keep = self.params.keep;
        if keep == 0 {
            std::fs::remove_file(&path).map_err(io_err(&path))?;
        } else {
            for n in (1..keep).rev() {
                let from = rotated(&path, n);
                if from.exists() {
                    let to = rotated(&path, n + 1);
                    std::fs::rename(&from, &to).map_err(io_err(&from))?;
                }
            }
            std::fs::rename(&path, rotated(&path, 1)).map_err(io_err(&path))?;
        }
        *self = Self::open(&self.params)?;
        Ok(())
    }
}

fn sync_parent(path: &Path) -> Result<(), EventLogError> {
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
    /// Files with unreadable bytes at their end: (file, bytes skipped).
    pub damaged: Vec<(PathBuf, u64)>,
}

pub fn read_log(params: &LogParams) -> Result<LogContents, EventLogError> {
    let path = &params.path;
    let mut files: Vec<PathBuf> = (1..=params.keep.max(1))
        .rev()
        .map(|n| rotated(path, n))
        .filter(|p| p.exists())
        .collect();
    files.push(path.clone());
    let mut out = LogContents::default();
    for file in files {
        let bytes = match std::fs::read(&file) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(&file)(e)),
        };
        if !bytes.starts_with(MAGIC) {
            return Err(EventLogError::NotALog { path: file });
        }
        let (events, valid) = parse(&bytes);
        out.events.extend(events);
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
            ..LogParams::default()
        }
    }

    #[test]
    fn records_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let p = params(dir.path());
        let mut log = EventLog::open(&p).unwrap();
        log.append(&event(0)).unwrap();
        log.append(&event(1)).unwrap();
        drop(log);
        let mut log = EventLog::open(&p).unwrap();
        log.append(&event(2)).unwrap();
        let read = read_log(&p).unwrap();
        assert_eq!(read.events, [event(0), event(1), event(2)]);
        assert!(read.damaged.is_empty());
    }

    #[test]
    fn a_torn_tail_is_skipped_when_reading_and_cut_before_appending() {
        let dir = tempfile::tempdir().unwrap();
        let p = params(dir.path());
        let mut log = EventLog::open(&p).unwrap();
        for i in 0..3 {
            log.append(&event(i)).unwrap();
        }
        drop(log);
        let full = std::fs::read(&p.path).unwrap();
        // Every possible cut inside the last record, and a flipped bit in it.
        let (_, two_end) = parse(&full[..full.len() - 1]);
        for cut in two_end + 1..full.len() {
            std::fs::write(&p.path, &full[..cut]).unwrap();
            let read = read_log(&p).unwrap();
            assert_eq!(read.events, [event(0), event(1)], "cut at {cut}");
            assert_eq!(read.damaged, [(p.path.clone(), (cut - two_end) as u64)]);
        }
        let mut flipped = full.clone();
        *flipped.last_mut().unwrap() ^= 0x10;
        std::fs::write(&p.path, &flipped).unwrap();
        assert_eq!(read_log(&p).unwrap().events.len(), 2);
        // The writer cuts the damage off, so new records are readable after the good ones.
        let mut log = EventLog::open(&p).unwrap();
        log.append(&event(3)).unwrap();
        let read = read_log(&p).unwrap();
        assert_eq!(read.events, [event(0), event(1), event(3)]);
        assert!(read.damaged.is_empty());
    }

    #[test]
    fn the_log_rotates_by_size_and_keeps_the_newest_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = LogParams {
            max_bytes: 200,
            keep: 2,
            ..params(dir.path())
        };
        let mut log = EventLog::open(&p).unwrap();
        for i in 0..40 {
            log.append(&event(i)).unwrap();
        }
        for f in [&p.path, &rotated(&p.path, 1), &rotated(&p.path, 2)] {
            assert!(
                std::fs::metadata(f).unwrap().len() <= 200,
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
    }

    #[test]
    fn a_file_that_is_not_a_log_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = params(dir.path());
        std::fs::create_dir_all(p.path.parent().unwrap()).unwrap();
        std::fs::write(&p.path, "gallery or something").unwrap();
        assert!(matches!(
            EventLog::open(&p),
            Err(EventLogError::NotALog { .. })
        ));
        assert!(matches!(read_log(&p), Err(EventLogError::NotALog { .. })));
    }
}
