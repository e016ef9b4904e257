//! The decision log's hash chain: every record carries an HMAC-SHA256 over the previous
//! record's MAC and its own bytes, keyed with a key derived from the key file, so a record
//! cannot be changed, removed, reordered or inserted without the key going unnoticed by
//! [`verify`]. Rotation keeps the chain: each file opens with an anchor record that carries the
//! previous file's last MAC. A small head file (`<log>.head`) holds the last record's sequence
//! number and MAC, so records cut off the end are noticed too (docs/security.md says what this
//! does not catch: a rollback of log and head together to an earlier state).

use std::fmt;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::keys::MasterKey;
use crate::terminal::events::{self, Entry, EventLogError, LogParams, RawRecord};

pub const MAC_LEN: usize = 32;
pub type MacBytes = [u8; MAC_LEN];
const LOG_KEY_LABEL: &str = "facegate decision log hmac-sha256 v1";
const HEAD_MAGIC: &[u8; 8] = b"FGEVHEAD";

/// The log's MAC key and the public id of its key file.
#[derive(Clone)]
pub struct LogKey {
    key: Zeroizing<[u8; 32]>,
    id: [u8; 8],
}

impl LogKey {
    pub fn new(master: &MasterKey) -> Self {
        Self {
            key: master.derive(LOG_KEY_LABEL),
            id: master.key_id(),
        }
    }

    pub fn id(&self) -> [u8; 8] {
        self.id
    }

    /// The MAC of a record whose body (sequence number and entry, as stored) is `body`.
    pub fn mac(&self, prev: &MacBytes, body: &[u8]) -> MacBytes {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(self.key.as_ref())
            .expect("HMAC takes any key length");
        m.update(prev);
        m.update(body);
        m.finalize().into_bytes().into()
    }
}

/// `<log>.head`.
pub fn head_path(log: &Path) -> PathBuf {
    let mut s = log.as_os_str().to_owned();
    s.push(".head");
    PathBuf::from(s)
}

/// The last record written: its sequence number and MAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    pub mac: MacBytes,
}

/// The head file, if it exists and is well-formed (`None` if missing, an error if damaged).
pub fn read_head(log: &Path) -> Result<Option<Head>, EventLogError> {
    let path = head_path(log);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(EventLogError::Io { path, source }),
    };
    if bytes.len() != HEAD_MAGIC.len() + 8 + MAC_LEN || !bytes.starts_with(HEAD_MAGIC) {
        return Err(EventLogError::NotALog { path });
    }
    let seq = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    let mac = bytes[16..].try_into().expect("32 bytes");
    Ok(Some(Head { seq, mac }))
}

/// Replace the head file atomically and durably.
pub fn write_head(log: &Path, head: &Head) -> Result<(), EventLogError> {
    let path = head_path(log);
    let mut bytes = Vec::with_capacity(48);
    bytes.extend_from_slice(HEAD_MAGIC);
    bytes.extend_from_slice(&head.seq.to_le_bytes());
    bytes.extend_from_slice(&head.mac);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let io = |source| EventLogError::Io {
        path: path.clone(),
        source,
    };
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_data().map_err(io)?;
    }
    std::fs::rename(&tmp, &path).map_err(io)?;
    events::sync_parent(&path)
}

/// Where in the log a problem is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    pub file: PathBuf,
    /// Byte offset of the record in that file.
    pub offset: usize,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.file.display(), self.offset)
    }
}

/// The first thing wrong with a log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A record's bytes do not match its checksum (edited without recomputing it), or its
    /// length runs past the end of a file that is not the newest.
    Damaged { after_seq: Option<u64>, at: Place },
    /// The MAC does not match: the record was changed, or is not from this chain.
    BadMac { seq: u64, at: Place },
    /// Sequence numbers jump: records were removed, or moved.
    SeqBreak {
        expected: u64,
        found: u64,
        at: Place,
    },
    /// A file does not start with an anchor, or its anchor does not continue the previous file.
    BadAnchor { seq: u64, at: Place },
    /// The log was sealed with another key file.
    WrongKey { at: Place },
    /// The log ends before the head file's last record: records were cut off the end.
    Truncated {
        last_seq: Option<u64>,
        head_seq: u64,
    },
    /// The last record is not the one the head file names.
    HeadMismatch {
        last_seq: Option<u64>,
        head_seq: u64,
    },
    /// The log has records but no head file.
    NoHead,
    /// The writer found records missing when it reopened the log (recorded by a gap record).
    Gap {
        seq: u64,
        missing_from: u64,
        missing_to: u64,
        at: Place,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Damaged {
                after_seq: Some(s),
                at,
            } => write!(
                f,
                "record {} ({at}) is damaged: its checksum does not match (edited, or torn)",
                s + 1
            ),
            Problem::Damaged {
                after_seq: None,
                at,
            } => write!(
                f,
                "the first record ({at}) is damaged: its checksum does not match"
            ),
            Problem::BadMac { seq, at } => write!(
                f,
                "record {seq} ({at}) fails its MAC: it was changed, or does not follow the record \
                 before it"
            ),
            Problem::SeqBreak {
                expected,
                found,
                at,
            } => write!(
                f,
                "record {found} ({at}) comes where record {expected} should: record {expected} \
                 is missing or out of order"
            ),
            Problem::BadAnchor { seq, at } => write!(
                f,
                "record {seq} ({at}): the file does not start with an anchor that continues the \
                 previous file (a file was removed, replaced or reordered)"
            ),
            Problem::WrongKey { at } => write!(
                f,
                "{at}: the log was written with another key file than the configured one"
            ),
            Problem::Truncated { last_seq, head_seq } => {
                write!(
                f,
                "record {} is missing: the log ends {} but its head file names record {head_seq} \
                 (records were cut off the end)",
                last_seq.map_or(0, |s| s + 1),
                last_seq.map_or("before any record".to_string(), |s| format!("at record {s}"))
            )
            }
            Problem::HeadMismatch { last_seq, head_seq } => write!(
                f,
                "record {} is not the last record the head file names (record {head_seq}): the \
                 end of the log was replaced",
                last_seq.map_or(0, |s| s)
            ),
            Problem::NoHead => write!(
                f,
                "the head file is missing: cannot tell whether records were cut off the end"
            ),
            Problem::Gap {
                seq,
                missing_from,
                missing_to,
                at,
            } => write!(
                f,
                "record {seq} ({at}) notes that records {missing_from} to {missing_to} were \
                 missing when the terminal reopened the log"
            ),
        }
    }
}

/// What [`verify`] found.
#[derive(Debug, Default)]
pub struct Verified {
    /// Records checked (all kinds), across all files.
    pub records: u64,
    pub decisions: u64,
    pub files: Vec<PathBuf>,
    /// Old unchained files (written before the chain existed): read but not verifiable.
    pub legacy_files: Vec<PathBuf>,
    /// A torn last record in the newest file, not yet named by the head (a power cut).
    pub torn_tail_bytes: u64,
    pub first_problem: Option<Problem>,
}

/// Check the whole chain, oldest file first; stops at the first problem.
pub fn verify(params: &LogParams, key: &LogKey) -> Result<Verified, EventLogError> {
    let mut out = Verified::default();
    let files = events::log_files(params);
    let newest = files.last().cloned();
    let mut prev: Option<Head> = None;
    for file in files {
        let Some(bytes) = events::read_file(&file)? else {
            continue;
        };
        if events::is_legacy(&bytes) {
            out.legacy_files.push(file);
            continue;
        }
        out.files.push(file.clone());
        let parsed = events::parse(&bytes);
        if let Some(p) = check_file(&file, &parsed.records, key, &mut prev, &mut out) {
            out.first_problem = Some(p);
            return Ok(out);
        }
        if parsed.valid_end < bytes.len() {
            let at = Place {
                file: file.clone(),
                offset: parsed.valid_end,
            };
            // A tear can only be at the end of the newest file; the head check below tells a
            // power cut (the head does not name it) from records cut off.
            if Some(&file) != newest.as_ref() || !parsed.tail_only {
                out.first_problem = Some(Problem::Damaged {
                    after_seq: prev.map(|h| h.seq),
                    at,
                });
                return Ok(out);
            }
            out.torn_tail_bytes = (bytes.len() - parsed.valid_end) as u64;
        }
    }
    let head = read_head(&params.path)?;
    out.first_problem = match (head, prev) {
        (None, None) => None,
        (None, Some(_)) => Some(Problem::NoHead),
        (Some(h), last) => {
            let last_seq = last.map(|l| l.seq);
            match last {
                Some(l) if l == h => None,
                // A power cut between appending a record and updating the head.
                Some(l) if l.seq == h.seq + 1 => None,
                Some(l) if l.seq >= h.seq => Some(Problem::HeadMismatch {
                    last_seq,
                    head_seq: h.seq,
                }),
                _ => Some(Problem::Truncated {
                    last_seq,
                    head_seq: h.seq,
                }),
            }
        }
    };
    Ok(out)
}

/// Check one file's records against the chain so far.
fn check_file(
    file: &Path,
    records: &[RawRecord],
    key: &LogKey,
    prev: &mut Option<Head>,
    out: &mut Verified,
) -> Option<Problem> {
    for (i, r) in records.iter().enumerate() {
        let at = Place {
            file: file.to_path_buf(),
            offset: r.offset,
        };
        let chain_prev = match (&r.entry, i) {
            (
                Entry::Anchor {
                    prev_mac, key_id, ..
                },
                0,
            ) => {
                if *key_id != key.id() {
                    return Some(Problem::WrongKey { at });
                }
                match prev {
                    // The oldest file kept: its anchor is where verification starts.
                    None => *prev_mac,
                    Some(p) if r.seq == p.seq + 1 && *prev_mac == p.mac => p.mac,
                    Some(p) if r.seq != p.seq + 1 => {
                        return Some(Problem::SeqBreak {
                            expected: p.seq + 1,
                            found: r.seq,
                            at,
                        })
                    }
                    Some(_) => return Some(Problem::BadAnchor { seq: r.seq, at }),
                }
            }
            (_, 0) => return Some(Problem::BadAnchor { seq: r.seq, at }),
            (_, _) => {
                let p = prev.expect("set by the file's first record");
                if r.seq != p.seq + 1 {
                    return Some(Problem::SeqBreak {
                        expected: p.seq + 1,
                        found: r.seq,
                        at,
                    });
                }
                p.mac
            }
        };
        let want = key.mac(&chain_prev, r.body);
        if !bool::from(want.ct_eq(&r.mac)) {
            return Some(Problem::BadMac { seq: r.seq, at });
        }
        if let Entry::Gap {
            missing_from,
            missing_to,
            ..
        } = r.entry
        {
            return Some(Problem::Gap {
                seq: r.seq,
                missing_from,
                missing_to,
                at,
            });
        }
        out.records += 1;
        if matches!(r.entry, Entry::Decision(_)) {
            out.decisions += 1;
        }
        *prev = Some(Head {
            seq: r.seq,
            mac: r.mac,
        });
    }
    None
}
