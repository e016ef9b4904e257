//! The gallery on disk: one postcard file with a checked header, its body sealed with the key
//! file's gallery key, saved atomically, with one backup generation at `<path>.bak`.
//!
//! Layout (version 2): `postcard(Header)` then the body, `seal(postcard((next_id, people)))`
//! with the header bytes before the crc as associated data. The header's `crc32` covers every
//! header byte before it and the whole sealed body, so damage (a flipped bit, a torn write) is
//! told apart from a wrong key without the key, and falls back to the backup; the key id names a
//! wrong key as such. Version 1 (plain, no key id and nonce) is still read, and the next save
//! writes version 2: the migration.
//!
//! Writers serialise on an exclusive advisory lock on `<path>.lock` ([`GalleryStore::lock`]),
//! held across load, change and save, so concurrent writers never lose each other's changes.
//! The running service holds that lock for its whole life ([`GalleryStore::lease`]): a direct
//! write while it runs is refused with an error naming it instead of diverging from its memory.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::seal::{self, GalleryKey, NONCE_LEN};
use super::{EmbedderId, Gallery, GalleryError, Person, Template};
use crate::keys::KeyFile;

pub const MAGIC: [u8; 8] = *b"FGGALLRY";
pub const FORMAT_VERSION: u16 = 2;
/// The plain format before encryption: read (and migrated on the next save), never written.
pub const PLAIN_VERSION: u16 = 1;
/// More than the largest possible header (121 bytes), so `inspect` reads one small block.
const HEADER_READ_LIMIT: u64 = 160;

/// The header exactly as written; `decode` reads it field by field so that a newer version is
/// recognised before the rest of its header is parsed (so this type only documents the layout).
#[derive(Serialize, Deserialize)]
#[cfg_attr(not(test), allow(dead_code))]
struct Header {
    magic: [u8; 8],
    version: u16,
    embedder: EmbedderId,
    /// Which key file's key sealed the body ([`crate::keys::MasterKey::key_id`]).
    key_id: [u8; 8],
    nonce: [u8; NONCE_LEN],
    body_len: u32,
    crc32: u32,
}

/// A person as version 1 stored them (no linked Unix account).
#[derive(Serialize, Deserialize)]
struct PersonV1 {
    id: u32,
    name: heapless::String<64>,
    created_unix: u64,
    templates: Vec<Template>,
}

/// What is wrong with a gallery file's bytes.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("the file is truncated")]
    Truncated,
    #[error("not a facegate gallery file (wrong magic bytes)")]
    BadMagic,
    #[error("{}", unsupported_version(*.0))]
    UnsupportedVersion(u16),
    #[error("the file has {extra} bytes more than its header says")]
    TrailingData { extra: usize },
    #[error(
        "checksum mismatch (stored {stored:#010x}, computed {computed:#010x}): the file is damaged"
    )]
    ChecksumMismatch { stored: u32, computed: u32 },
    #[error("the file is encrypted and no key was given")]
    KeyRequired,
    #[error(
        "the file was sealed with key id {}, the key file's id is {}: wrong key file",
        hex::encode(file),
        hex::encode(key)
    )]
    WrongKey { file: [u8; 8], key: [u8; 8] },
    #[error(
        "the sealed body does not authenticate although its checksum matches: the file was \
         changed by someone who recomputed the checksum"
    )]
    Unauthentic,
    #[error("cannot decode: {0}")]
    Decode(postcard::Error),
    #[error("inconsistent contents: {0}")]
    Inconsistent(String),
}

fn unsupported_version(v: u16) -> String {
    if v > FORMAT_VERSION {
        format!(
            "format version {v} was written by a newer facegate (this one reads versions \
             {PLAIN_VERSION} and {FORMAT_VERSION}): upgrade facegate"
        )
    } else {
        format!("unknown format version {v}")
    }
}

fn take<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<(T, &'a [u8]), FormatError> {
    postcard::take_from_bytes(bytes).map_err(|e| match e {
        postcard::Error::DeserializeUnexpectedEnd => FormatError::Truncated,
        e => FormatError::Decode(e),
    })
}

/// A parsed header (version 1 has no key id and nonce) and where its parts end.
struct Parsed {
    version: u16,
    embedder: EmbedderId,
    sealing: Option<([u8; 8], [u8; NONCE_LEN])>,
    body_len: u32,
    crc32: u32,
    /// Bytes before the crc field: the part of the header the crc (and the seal) covers.
    crc_prefix_len: usize,
    header_len: usize,
}

fn parse_header(bytes: &[u8]) -> Result<Parsed, FormatError> {
    let n = bytes.len().min(MAGIC.len());
    if bytes[..n] != MAGIC[..n] {
        return Err(FormatError::BadMagic);
    }
    let (_magic, rest) = take::<[u8; 8]>(bytes)?;
    let (version, rest) = take::<u16>(rest)?;
    if version != FORMAT_VERSION && version != PLAIN_VERSION {
        return Err(FormatError::UnsupportedVersion(version));
    }
    let (embedder, mut rest) = take::<EmbedderId>(rest)?;
    let mut sealing = None;
    if version == FORMAT_VERSION {
        let (key_id, r) = take::<[u8; 8]>(rest)?;
        let (nonce, r) = take::<[u8; NONCE_LEN]>(r)?;
        sealing = Some((key_id, nonce));
        rest = r;
    }
    let (body_len, rest) = take::<u32>(rest)?;
    let crc_prefix_len = bytes.len() - rest.len();
    let (crc32, rest) = take::<u32>(rest)?;
    Ok(Parsed {
        version,
        embedder,
        sealing,
        body_len,
        crc32,
        crc_prefix_len,
        header_len: bytes.len() - rest.len(),
    })
}

/// The bytes of a gallery file, sealed with `key` under a fresh nonce.
pub fn encode(gallery: &Gallery, key: &GalleryKey) -> Result<Vec<u8>, GalleryError> {
    let plain = Zeroizing::new(
        postcard::to_allocvec(&(gallery.next_id, &gallery.people)).map_err(GalleryError::Encode)?,
    );
    let nonce =
        seal::new_nonce().map_err(|e| GalleryError::Key(crate::keys::KeyError::Random(e)))?;
    // The seal adds a 16-byte tag.
    let sealed_len = plain.len() + 16;
    let body_len = u32::try_from(sealed_len).map_err(|_| GalleryError::TooLarge(sealed_len))?;
    let prefix = (
        MAGIC,
        FORMAT_VERSION,
        &gallery.embedder,
        key.id(),
        nonce,
        body_len,
    );
    let header = postcard::to_allocvec(&prefix).map_err(GalleryError::Encode)?;
    let body = seal::seal(key, &nonce, &header, &plain);
    debug_assert_eq!(body.len(), sealed_len);
    finish_file(header, &body)
}

/// The encoded header `prefix`, then the CRC-32 over header and body, then the body.
fn finish_file(prefix: Vec<u8>, body: &[u8]) -> Result<Vec<u8>, GalleryError> {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&prefix);
    crc.update(body);
    let mut out = postcard::to_extend(&crc.finalize(), prefix).map_err(GalleryError::Encode)?;
    out.extend_from_slice(body);
    Ok(out)
}

/// The bytes of a gallery file in the old plain format (version 1), as facegate wrote it before
/// encryption. Only for migration tests and the load benchmark: facegate never writes it.
#[doc(hidden)]
pub fn encode_plain_v1(gallery: &Gallery) -> Result<Vec<u8>, GalleryError> {
    let people: Vec<PersonV1> = gallery
        .people
        .iter()
        .map(|p| PersonV1 {
            id: p.id,
            name: p.name.clone(),
            created_unix: p.created_unix,
            templates: p.templates.clone(),
        })
        .collect();
    let body = postcard::to_allocvec(&(gallery.next_id, &people)).map_err(GalleryError::Encode)?;
    let body_len = u32::try_from(body.len()).map_err(|_| GalleryError::TooLarge(body.len()))?;
    let prefix = (MAGIC, PLAIN_VERSION, &gallery.embedder, body_len);
    let header = postcard::to_allocvec(&prefix).map_err(GalleryError::Encode)?;
    finish_file(header, &body)
}

/// Parse and check a whole gallery file. A sealed (version 2) file needs `key`; a plain
/// version 1 file is read without one.
pub fn decode(bytes: &[u8], key: Option<&GalleryKey>) -> Result<Gallery, FormatError> {
    let parsed = parse_header(bytes)?;
    let body = &bytes[parsed.header_len..];
    let want = parsed.body_len as usize;
    if body.len() < want {
        return Err(FormatError::Truncated);
    }
    if body.len() > want {
        return Err(FormatError::TrailingData {
            extra: body.len() - want,
        });
    }
    let aad = &bytes[..parsed.crc_prefix_len];
    let mut crc = crc32fast::Hasher::new();
    crc.update(aad);
    crc.update(body);
    let computed = crc.finalize();
    if computed != parsed.crc32 {
        return Err(FormatError::ChecksumMismatch {
            stored: parsed.crc32,
            computed,
        });
    }
    let (next_id, people) = match parsed.sealing {
        None => decode_plain_body(body)?,
        Some((key_id, nonce)) => {
            let key = key.ok_or(FormatError::KeyRequired)?;
            if key.id() != key_id {
                return Err(FormatError::WrongKey {
                    file: key_id,
                    key: key.id(),
                });
            }
            let plain = seal::open(key, &nonce, aad, body).ok_or(FormatError::Unauthentic)?;
            decode_body::<Person>(&plain)?
        }
    };
    Gallery::from_parts(parsed.embedder, next_id, people).map_err(FormatError::Inconsistent)
}

fn decode_plain_body(body: &[u8]) -> Result<(u32, Vec<Person>), FormatError> {
    let (next_id, people) = decode_body::<PersonV1>(body)?;
    let people = people
        .into_iter()
        .map(|p| Person {
            id: p.id,
            name: p.name,
            created_unix: p.created_unix,
            templates: p.templates,
            user: None,
        })
        .collect();
    Ok((next_id, people))
}

fn decode_body<'a, P: Deserialize<'a>>(body: &'a [u8]) -> Result<(u32, Vec<P>), FormatError> {
    // The checksum (and seal) matched, so a short body is a writer bug, not truncation.
    let (decoded, rest) =
        postcard::take_from_bytes::<(u32, Vec<P>)>(body).map_err(FormatError::Decode)?;
    if !rest.is_empty() {
        return Err(FormatError::Inconsistent(format!(
            "{} unread bytes after the body",
            rest.len()
        )));
    }
    Ok(decoded)
}

/// What the header of a gallery file says, for `facegate doctor`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderSummary {
    pub version: u16,
    pub embedder: EmbedderId,
    /// The id of the key that sealed it; `None` for a plain (version 1) file.
    pub key_id: Option<[u8; 8]>,
    pub body_len: u32,
    pub crc32: u32,
    pub header_len: usize,
    pub file_len: u64,
}

impl HeaderSummary {
    /// Whether the file is as long as its header says (the body itself is not checked).
    pub fn length_matches(&self) -> bool {
        self.file_len == self.header_len as u64 + u64::from(self.body_len)
    }

    pub fn is_sealed(&self) -> bool {
        self.key_id.is_some()
    }
}

/// Read only the header of the gallery file at `path`.
pub fn inspect(path: impl AsRef<Path>) -> Result<HeaderSummary, GalleryError> {
    let path = path.as_ref();
    let file = File::open(path).map_err(io_err("opening", path))?;
    let file_len = file.metadata().map_err(io_err("reading", path))?.len();
    let mut head = Vec::new();
    file.take(HEADER_READ_LIMIT)
        .read_to_end(&mut head)
        .map_err(io_err("reading", path))?;
    let parsed = parse_header(&head).map_err(|error| GalleryError::Unreadable {
        path: path.to_path_buf(),
        error,
    })?;
    Ok(HeaderSummary {
        version: parsed.version,
        embedder: parsed.embedder,
        key_id: parsed.sealing.map(|(id, _)| id),
        body_len: parsed.body_len,
        crc32: parsed.crc32,
        header_len: parsed.header_len,
        file_len,
    })
}

/// Where a loaded gallery came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadSource {
    Main,
    /// The main file was missing or unusable; the next save writes a new main and moves a
    /// damaged one aside.
    Backup {
        main_error: String,
    },
    /// Neither file exists: a new, empty gallery.
    New,
}

#[derive(Debug)]
pub struct Loaded {
    pub gallery: Gallery,
    pub source: LoadSource,
}

/// What a save did beyond writing the gallery, for the user to hear about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Saved {
    /// The key file did not exist and was created (keep a copy of it somewhere safe).
    pub key_created: bool,
    /// The previous main file was a plain (version 1) gallery: it is now the backup, still
    /// unencrypted until the next save replaces it.
    pub migrated_plain: bool,
}

/// The gallery file at one path, its backup at `<path>.bak`, sealed with the key in its key
/// file.
#[derive(Clone, Debug)]
pub struct GalleryStore {
    path: PathBuf,
    key_file: KeyFile,
}

/// What `save` found at the main path before replacing it.
enum Current {
    Missing,
    Good { plain: bool },
    Bad,
}

impl GalleryStore {
    /// The store at `path` with the default key file ([`crate::keys::default_key_file`]).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            key_file: KeyFile::new(crate::keys::default_key_file()),
        }
    }

    pub fn with_key_file(mut self, key_file: impl Into<PathBuf>) -> Self {
        self.key_file = KeyFile::new(key_file);
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn key_file(&self) -> &KeyFile {
        &self.key_file
    }

    pub fn backup_path(&self) -> PathBuf {
        with_suffix(&self.path, ".bak")
    }

    /// The gallery key for reading: `None` when the key file does not exist (a plain gallery
    /// or none at all can still be read).
    fn key_for_reading(&self) -> Result<Option<GalleryKey>, GalleryError> {
        if !self.key_file.exists() {
            return Ok(None);
        }
        Ok(Some(GalleryKey::new(&self.key_file.load()?)))
    }

    /// The gallery key for writing. A missing key file is created, unless a sealed gallery
    /// already exists: a new key would make it unreadable, so that is an error naming the file.
    fn key_for_writing(&self) -> Result<(GalleryKey, bool), GalleryError> {
        if self.key_file.exists() {
            return Ok((GalleryKey::new(&self.key_file.load()?), false));
        }
        for path in [self.path.clone(), self.backup_path()] {
            if inspect(&path).is_ok_and(|h| h.is_sealed()) {
                return Err(self.key_missing(&path));
            }
        }
        self.check_key_outside_folder()?;
        let (key, created) = self.key_file.load_or_create()?;
        Ok((GalleryKey::new(&key), created))
    }

    /// A key kept beside the gallery would be copied with it, defeating the encryption.
    fn check_key_outside_folder(&self) -> Result<(), GalleryError> {
        let canon = |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let gallery_dir = canon(&folder_of(&self.path)?);
        let mut dir = folder_of(self.key_file.path())?;
        // The key's folder may not exist yet: compare its nearest existing ancestor chain.
        let mut missing = Vec::new();
        while !dir.exists() {
            match (dir.file_name(), dir.parent()) {
                (Some(name), Some(parent)) => {
                    missing.push(name.to_owned());
                    dir = if parent.as_os_str().is_empty() {
                        PathBuf::from(".")
                    } else {
                        parent.to_path_buf()
                    };
                }
                _ => break,
            }
        }
        let mut key_dir = canon(&dir);
        key_dir.extend(missing.iter().rev());
        if key_dir == gallery_dir {
            return Err(GalleryError::KeyBesideGallery {
                key_file: self.key_file.path().to_path_buf(),
                dir: gallery_dir,
            });
        }
        Ok(())
    }

    fn key_missing(&self, gallery: &Path) -> GalleryError {
        GalleryError::KeyMissing {
            gallery: gallery.to_path_buf(),
            key_file: self.key_file.path().to_path_buf(),
        }
    }

    /// Key problems are not damage: falling back to the backup (or saving over the file) would
    /// lose the enrolments only the right key can open.
    fn keyed(&self, e: GalleryError) -> GalleryError {
        match e {
            GalleryError::Unreadable {
                path,
                error: FormatError::KeyRequired,
            } => self.key_missing(&path),
            GalleryError::Unreadable {
                path,
                error: FormatError::WrongKey { .. },
            } => GalleryError::WrongKey {
                gallery: path,
                key_file: self.key_file.path().to_path_buf(),
            },
            e => e,
        }
    }

    /// Load the gallery made by `expected`, falling back to the backup when the main file is
    /// missing or damaged. Never returns an empty gallery while either file exists, and a
    /// missing or wrong key is an error, never a fallback.
    pub fn load(&self, expected: &EmbedderId) -> Result<Loaded, GalleryError> {
        let key = self.key_for_reading()?;
        let main_error = match read_gallery(&self.path, key.as_ref()) {
            Ok(gallery) => {
                check_embedder(&self.path, &gallery, expected)?;
                return Ok(Loaded {
                    gallery,
                    source: LoadSource::Main,
                });
            }
            // A newer facegate's gallery is not damage: falling back to an older backup would
            // hide the newer enrolments, so stop here.
            Err(e) if is_final(&e) => return Err(self.keyed(e)),
            Err(e) => e,
        };
        let backup = self.backup_path();
        match read_gallery(&backup, key.as_ref()) {
            Ok(gallery) => {
                check_embedder(&backup, &gallery, expected)?;
                Ok(Loaded {
                    gallery,
                    source: LoadSource::Backup {
                        main_error: main_error.to_string(),
                    },
                })
            }
            Err(e) if is_final(&e) => Err(self.keyed(e)),
            Err(backup_error) if is_not_found(&main_error) && is_not_found(&backup_error) => {
                Ok(Loaded {
                    gallery: Gallery::new(expected.clone()),
                    source: LoadSource::New,
                })
            }
            Err(backup_error) => Err(GalleryError::NoUsableCopy {
                main: Box::new(main_error),
                backup: Box::new(backup_error),
            }),
        }
    }

    /// Replace the gallery file atomically and durably, sealed with the key file's key (the
    /// key file is created if neither it nor a sealed gallery exists). A good current main
    /// becomes the backup; a damaged one is moved aside to `<path>.corrupt-<unix seconds>`
    /// and the backup is kept. On error the main and backup files are as they were.
    pub fn save(&self, gallery: &Gallery) -> Result<Saved, GalleryError> {
        let dir = folder_of(&self.path)?;
        match fs::metadata(&dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(GalleryError::FolderMissing { dir })
            }
            Err(e) => return Err(io_err("checking folder", &dir)(e)),
            Ok(_) => {}
        }
        let (key, key_created) = self.key_for_writing()?;
        let bytes = encode(gallery, &key)?;
        let current = self.current_main(&key)?;
        let migrated_plain = matches!(current, Current::Good { plain: true });
        let tmp = write_new_synced(&self.path, ".tmp", &bytes)?;
        let result = self.install(&tmp, current);
        if result.is_err() {
            // Best effort: the error that matters is the one being returned.
            let _ = fs::remove_file(&tmp);
        }
        result?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("syncing folder", &dir))?;
        self.remove_stale_temporaries(&dir);
        Ok(Saved {
            key_created,
            migrated_plain,
        })
    }

    fn current_main(&self, key: &GalleryKey) -> Result<Current, GalleryError> {
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Current::Missing),
            // Unreadable counts as damaged: it is moved aside, not deleted.
            Err(_) => return Ok(Current::Bad),
        };
        match decode(&bytes, Some(key)) {
            Ok(_) => Ok(Current::Good {
                plain: parse_header(&bytes).is_ok_and(|p| p.sealing.is_none()),
            }),
            Err(error @ FormatError::UnsupportedVersion(v)) if v > FORMAT_VERSION => {
                Err(GalleryError::Unreadable {
                    path: self.path.clone(),
                    error,
                })
            }
            // Sealed with another key: never moved aside and replaced.
            Err(FormatError::WrongKey { .. }) => Err(GalleryError::WrongKey {
                gallery: self.path.clone(),
                key_file: self.key_file.path().to_path_buf(),
            }),
            Err(_) => Ok(Current::Bad),
        }
    }

    /// Move the synced `tmp` into place, undoing earlier renames if a later one fails.
    fn install(&self, tmp: &Path, current: Current) -> Result<(), GalleryError> {
        let main = self.path.as_path();
        match current {
            Current::Missing => rename(tmp, main),
            Current::Bad => {
                let aside = self.corrupt_aside_path();
                rename(main, &aside)?;
                rename(tmp, main).inspect_err(|_| {
                    let _ = fs::rename(&aside, main);
                })
            }
            Current::Good { .. } => {
                // A valid main file stays in place at every instant: the backup becomes a second
                // name of the current main (made under a temporary name, then renamed over the old
                // backup), and only then does the new file replace main.
                let backup = self.backup_path();
                let link = unique_path(&backup, ".new");
                if fs::hard_link(main, &link).is_err() {
                    // Filesystems without hard links (FAT): a synced copy does the same job.
                    let bytes = fs::read(main).map_err(io_err("reading", main))?;
                    let copy = write_new_synced(&backup, ".new", &bytes)?;
                    if let Err(e) = rename(&copy, &backup) {
                        let _ = fs::remove_file(&copy);
                        return Err(e);
                    }
                    return rename(tmp, main);
                }
                if let Err(e) = rename(&link, &backup) {
                    let _ = fs::remove_file(&link);
                    return Err(e);
                }
                rename(tmp, main)
            }
        }
    }

    /// The advisory lock file beside the gallery.
    pub fn lock_path(&self) -> PathBuf {
        with_suffix(&self.path, ".lock")
    }

    /// Take the writers' lock, waiting while another command holds it (for the milliseconds of
    /// one save). While the service holds it as its lease this fails at once with
    /// [`GalleryError::Leased`]: its matcher would not see a change made behind its back.
    pub fn lock(&self) -> Result<GalleryLock, GalleryError> {
        self.take_lock(&format!("command pid={}", std::process::id()))
    }

    /// Take the lock for as long as the returned guard lives (the service: its whole run).
    /// `detail` (e.g. the API socket) is recorded for the error other writers get.
    pub fn lease(&self, detail: &str) -> Result<GalleryLock, GalleryError> {
        self.take_lock(&format!(
            "{SERVICE_HOLDER} pid={} {detail}",
            std::process::id()
        ))
    }

    /// Lock, waiting for a command that is saving, refusing at once while the service holds
    /// the lease; then record `holder` for the error other writers get.
    fn take_lock(&self, holder: &str) -> Result<GalleryLock, GalleryError> {
        let mut lock = self.open_lock()?;
        match lock.file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                // The holder writes who it is just after locking; give it that moment.
                std::thread::sleep(Duration::from_millis(20));
                let current = lock.holder();
                if current.starts_with(SERVICE_HOLDER) {
                    return Err(GalleryError::Leased {
                        path: self.path.clone(),
                        holder: current,
                    });
                }
                lock.file.lock().map_err(io_err("locking", &lock.path))?;
            }
            Err(fs::TryLockError::Error(e)) => return Err(io_err("locking", &lock.path)(e)),
        }
        lock.set_holder(holder);
        Ok(lock)
    }

    /// Load, change and save under the lock: the read-modify-write of one command. Nothing is
    /// saved when `change` fails. Returns `change`'s answer, where the gallery was loaded from
    /// and what the save did.
    pub fn update<T, E: From<GalleryError>>(
        &self,
        expected: &EmbedderId,
        change: impl FnOnce(&mut Gallery) -> Result<T, E>,
    ) -> Result<(T, LoadSource, Saved), E> {
        let _lock = self.lock()?;
        let Loaded {
            mut gallery,
            source,
        } = self.load(expected)?;
        let out = change(&mut gallery)?;
        let saved = self.save(&gallery)?;
        Ok((out, source, saved))
    }

    fn open_lock(&self) -> Result<GalleryLock, GalleryError> {
        let path = self.lock_path();
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        // A lock file someone else created may be read-only to us: a shared fd still locks.
        let file = options
            .open(&path)
            .or_else(|_| File::open(&path))
            .map_err(io_err("opening lock", &path))?;
        Ok(GalleryLock {
            file,
            path,
            held: false,
        })
    }

    /// Remove temporary files that a killed earlier save left beside the gallery. Only called
    /// under the lock, so no other writer's file is in flight.
    fn remove_stale_temporaries(&self, dir: &Path) {
        let Some(name) = self.path.file_name().and_then(|n| n.to_str()) else {
            return;
        };
        let prefixes = [format!("{name}.tmp-"), format!("{name}.bak.new-")];
        for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
            let file = entry.file_name();
            if file
                .to_str()
                .is_some_and(|f| prefixes.iter().any(|p| f.starts_with(p.as_str())))
            {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    fn corrupt_aside_path(&self) -> PathBuf {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let base = with_suffix(&self.path, &format!(".corrupt-{secs}"));
        // Two damaged mains within one second must not overwrite each other.
        let mut candidate = base.clone();
        let mut n = 1;
        while candidate.symlink_metadata().is_ok() {
            candidate = with_suffix(&base, &format!("-{n}"));
            n += 1;
        }
        candidate
    }
}

fn read_gallery(path: &Path, key: Option<&GalleryKey>) -> Result<Gallery, GalleryError> {
    // Not wiped: a sealed file's bytes are ciphertext (the decrypted body is wiped in decode).
    let bytes = fs::read(path).map_err(io_err("reading", path))?;
    decode(&bytes, key).map_err(|error| GalleryError::Unreadable {
        path: path.to_path_buf(),
        error,
    })
}

fn check_embedder(
    path: &Path,
    gallery: &Gallery,
    expected: &EmbedderId,
) -> Result<(), GalleryError> {
    if gallery.embedder() == expected {
        return Ok(());
    }
    Err(GalleryError::ForeignEmbedder {
        path: path.to_path_buf(),
        found: Box::new(gallery.embedder().clone()),
        expected: Box::new(expected.clone()),
    })
}

fn is_not_found(e: &GalleryError) -> bool {
    matches!(e, GalleryError::Io { error, .. } if error.kind() == io::ErrorKind::NotFound)
}

/// Errors that are not damage: a newer format, or a key that is missing or wrong.
fn is_final(e: &GalleryError) -> bool {
    match e {
        GalleryError::Unreadable { error, .. } => {
            matches!(
                error,
                FormatError::KeyRequired | FormatError::WrongKey { .. }
            ) || matches!(error, FormatError::UnsupportedVersion(v) if *v > FORMAT_VERSION)
        }
        GalleryError::Key(_) => true,
        _ => false,
    }
}

/// What the service writes into the lock file while it holds the lease.
const SERVICE_HOLDER: &str = "facegate service";

/// The writers' lock on a gallery; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct GalleryLock {
    file: File,
    path: PathBuf,
    /// Set once the lock is taken: a guard that failed to lock must not clear the holder's
    /// record on drop.
    held: bool,
}

impl GalleryLock {
    fn holder(&self) -> String {
        fs::read_to_string(&self.path)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    }

    fn set_holder(&mut self, holder: &str) {
        self.held = true;
        // Best effort: the record only improves another writer's error message.
        let mut f = &self.file;
        let _ = self.file.set_len(0);
        let _ = f.write_all(format!("{holder}\n").as_bytes());
    }
}

impl Drop for GalleryLock {
    fn drop(&mut self) {
        if self.held {
            let _ = self.file.set_len(0);
        }
    }
}

/// `<path><suffix>-<pid>-<n>`: unique among this process's threads and other processes.
fn unique_path(path: &Path, suffix: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    with_suffix(path, &format!("{suffix}-{}-{n}", std::process::id()))
}

/// Write `bytes` to a new file beside `path` and sync it; returns its name.
fn write_new_synced(path: &Path, suffix: &str, bytes: &[u8]) -> Result<PathBuf, GalleryError> {
    loop {
        let tmp = unique_path(path, suffix);
        let mut options = OpenOptions::new();
        // create_new: never write into another writer's file; a leftover of a crashed process
        // with a reused pid just moves us on to the next name.
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            // Face templates are biometric data: owner-only.
            options.mode(0o600);
        }
        let mut file = match options.open(&tmp) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err("creating", &tmp)(e)),
        };
        let written = file
            .write_all(bytes)
            .map_err(io_err("writing", &tmp))
            .and_then(|()| file.sync_all().map_err(io_err("syncing", &tmp)));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        return Ok(tmp);
    }
}

fn rename(from: &Path, to: &Path) -> Result<(), GalleryError> {
    fs::rename(from, to).map_err(|error| rename_err(from, to, error))
}

fn rename_err(from: &Path, to: &Path, error: io::Error) -> GalleryError {
    GalleryError::Rename {
        from: from.to_path_buf(),
        to: to.to_path_buf(),
        error,
    }
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> GalleryError {
    let path = path.to_path_buf();
    move |error| GalleryError::Io { op, path, error }
}

/// `path` with `suffix` appended to its file name (`g.fg` → `g.fg.bak`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = OsString::from(path.as_os_str());
    s.push(suffix);
    PathBuf::from(s)
}

/// The folder that holds `path`; a bare file name lives in the current folder.
fn folder_of(path: &Path) -> Result<PathBuf, GalleryError> {
    if path.file_name().is_none() {
        return Err(GalleryError::InvalidPath {
            path: path.to_path_buf(),
        });
    }
    Ok(match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::testutil::{embedder, random_gallery};
    use super::super::Selector;
    use super::*;
    use crate::keys::MasterKey;

    /// Every file in `dir` with its bytes, to show that an operation touched nothing.
    fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, fs::read(&p).unwrap())
            })
            .collect()
    }

    /// The gallery's folder, and the key's, kept apart as a real installation keeps them.
    struct Dirs {
        gallery: tempfile::TempDir,
        key: tempfile::TempDir,
    }

    impl Dirs {
        fn path(&self) -> &Path {
            self.gallery.path()
        }
    }

    const TEST_KEY: [u8; 32] = [42; 32];

    fn key() -> GalleryKey {
        GalleryKey::new(&MasterKey::from_bytes(TEST_KEY))
    }

    fn encode_t(g: &Gallery) -> Result<Vec<u8>, GalleryError> {
        encode(g, &key())
    }

    fn decode_t(bytes: &[u8]) -> Result<Gallery, FormatError> {
        decode(bytes, Some(&key()))
    }

    fn setup() -> (Dirs, GalleryStore) {
        let dirs = Dirs {
            gallery: tempfile::tempdir().unwrap(),
            key: tempfile::tempdir().unwrap(),
        };
        let key_path = dirs.key.path().join("gallery.key");
        assert!(KeyFile::new(&key_path)
            .create(&MasterKey::from_bytes(TEST_KEY))
            .unwrap());
        let store = GalleryStore::new(dirs.path().join("gallery.fg")).with_key_file(key_path);
        (dirs, store)
    }

    /// Two saves: main holds `b`, the backup holds `a`.
    fn main_and_backup(store: &GalleryStore) -> (Gallery, Gallery) {
        let a = random_gallery(10, 192, 4, 2);
        let mut b = a.clone();
        b.add_person("Late Comer", &[vec![0.5; 192]], 5).unwrap();
        store.save(&a).unwrap();
        store.save(&b).unwrap();
        (a, b)
    }

    fn format_error(e: &GalleryError) -> &FormatError {
        match e {
            GalleryError::Unreadable { error, .. } => error,
            e => panic!("expected an unreadable file, got {e}"),
        }
    }

    #[test]
    fn round_trip_through_a_file() {
        let (_dir, store) = setup();
        let g = random_gallery(11, 192, 30, 5);
        store.save(&g).unwrap();
        let loaded = store.load(g.embedder()).unwrap();
        assert_eq!(loaded.source, LoadSource::Main);
        assert_eq!(loaded.gallery, g);
        // The bytes are postcard(Header) followed by the body, as documented.
        let bytes = fs::read(store.path()).unwrap();
        let summary = inspect(store.path()).unwrap();
        let parsed = parse_header(&bytes).unwrap();
        let header = Header {
            magic: MAGIC,
            version: FORMAT_VERSION,
            embedder: g.embedder().clone(),
            key_id: key().id(),
            nonce: parsed.sealing.unwrap().1,
            body_len: summary.body_len,
            crc32: summary.crc32,
        };
        assert_eq!(
            bytes[..summary.header_len],
            postcard::to_allocvec(&header).unwrap()
        );
        assert!(bytes.starts_with(b"FGGALLRY\x02"));
        assert_eq!(summary.key_id, Some(key().id()));
        assert_eq!(summary.embedder, *g.embedder());
        assert!(summary.length_matches());
        assert_eq!(summary.file_len, bytes.len() as u64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(store.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn empty_gallery_round_trips_and_no_files_means_new() {
        let (dir, store) = setup();
        let loaded = store.load(&embedder(128)).unwrap();
        assert_eq!(loaded.source, LoadSource::New);
        assert_eq!(loaded.gallery, Gallery::new(embedder(128)));
        assert!(
            snapshot(dir.path()).is_empty(),
            "load must not create files"
        );
        store.save(&loaded.gallery).unwrap();
        assert_eq!(store.load(&embedder(128)).unwrap().source, LoadSource::Main);
    }

    #[test]
    fn saves_rotate_the_previous_main_into_the_backup() {
        let (dir, store) = setup();
        let (a, b) = main_and_backup(&store);
        assert_eq!(decode_t(&fs::read(store.path()).unwrap()).unwrap(), b);
        assert_eq!(
            decode_t(&fs::read(store.backup_path()).unwrap()).unwrap(),
            a
        );
        let mut c = b.clone();
        c.remove(&Selector::Id(1)).unwrap();
        store.save(&c).unwrap();
        assert_eq!(decode_t(&fs::read(store.path()).unwrap()).unwrap(), c);
        assert_eq!(
            decode_t(&fs::read(store.backup_path()).unwrap()).unwrap(),
            b
        );
        // No tmp or stash files are left behind.
        let names: Vec<String> = snapshot(dir.path()).into_keys().collect();
        assert_eq!(names, ["gallery.fg", "gallery.fg.bak"]);
    }

    #[test]
    fn every_truncation_is_reported_and_the_backup_is_loaded() {
        let (_dir, store) = setup();
        let (a, b) = main_and_backup(&store);
        let full = encode_t(&b).unwrap();
        for cut in 0..full.len() {
            assert!(
                matches!(decode_t(&full[..cut]), Err(FormatError::Truncated)),
                "cut at {cut}"
            );
        }
        let header_len = inspect(store.path()).unwrap().header_len;
        for cut in [
            0,
            1,
            7,
            8,
            9,
            header_len - 1,
            header_len,
            header_len + 1,
            full.len() / 2,
            full.len() - 1,
        ] {
            fs::write(store.path(), &full[..cut]).unwrap();
            let loaded = store.load(a.embedder()).unwrap();
            match &loaded.source {
                LoadSource::Backup { main_error } => {
                    assert!(main_error.contains("truncated"), "{main_error}")
                }
                other => panic!("cut at {cut}: loaded from {other:?}"),
            }
            assert_eq!(loaded.gallery, a);
        }
    }

    #[test]
    fn a_flipped_byte_is_a_checksum_mismatch() {
        let (_dir, store) = setup();
        let (a, b) = main_and_backup(&store);
        let mut bytes = fs::read(store.path()).unwrap();
        let last = bytes.len() - 1;
        bytes[last - 100] ^= 0x10;
        assert!(matches!(
            decode_t(&bytes),
            Err(FormatError::ChecksumMismatch { .. })
        ));
        fs::write(store.path(), &bytes).unwrap();
        let loaded = store.load(b.embedder()).unwrap();
        assert!(
            matches!(&loaded.source, LoadSource::Backup { main_error } if main_error.contains("checksum mismatch"))
        );
        assert_eq!(loaded.gallery, a);
    }

    #[test]
    fn no_single_flipped_byte_decodes() {
        let bytes = encode_t(&random_gallery(12, 16, 3, 2)).unwrap();
        for i in 0..bytes.len() {
            for bit in [0x01, 0x80] {
                let mut damaged = bytes.clone();
                damaged[i] ^= bit;
                assert!(decode_t(&damaged).is_err(), "byte {i} bit {bit:#x}");
            }
        }
        // A flip inside the embedder id reads as damage, not as a foreign gallery.
        let mut damaged = bytes.clone();
        damaged[12] ^= 0x01;
        assert!(matches!(
            decode_t(&damaged),
            Err(FormatError::ChecksumMismatch { .. })
        ));
    }

    #[test]
    fn both_copies_damaged_is_an_error_and_touches_nothing() {
        let (dir, store) = setup();
        let (a, _) = main_and_backup(&store);
        let main = fs::read(store.path()).unwrap();
        fs::write(store.path(), &main[..main.len() / 3]).unwrap();
        let mut backup = fs::read(store.backup_path()).unwrap();
        let n = backup.len();
        backup[n - 5] ^= 0xff;
        fs::write(store.backup_path(), &backup).unwrap();
        let before = snapshot(dir.path());
        let err = store.load(a.embedder()).unwrap_err();
        match &err {
            GalleryError::NoUsableCopy { main, backup } => {
                assert!(matches!(format_error(main), FormatError::Truncated));
                assert!(matches!(
                    format_error(backup),
                    FormatError::ChecksumMismatch { .. }
                ));
            }
            e => panic!("unexpected {e}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains("truncated") && msg.contains("checksum mismatch"),
            "{msg}"
        );
        assert_eq!(snapshot(dir.path()), before);
    }

    #[test]
    fn one_damaged_copy_and_one_missing_is_an_error_not_a_new_gallery() {
        let (dir, store) = setup();
        let (a, _) = main_and_backup(&store);
        // Main missing, backup damaged.
        fs::remove_file(store.path()).unwrap();
        fs::write(store.backup_path(), b"FGGALLRY").unwrap();
        let before = snapshot(dir.path());
        assert!(matches!(
            store.load(a.embedder()),
            Err(GalleryError::NoUsableCopy { .. })
        ));
        assert_eq!(snapshot(dir.path()), before);
        // Main damaged, backup missing.
        fs::rename(store.backup_path(), store.path()).unwrap();
        let err = store.load(a.embedder()).unwrap_err();
        assert!(
            matches!(&err, GalleryError::NoUsableCopy { main, .. } if matches!(format_error(main), FormatError::Truncated))
        );
        // A file of something else entirely.
        fs::write(store.path(), b"{\"people\": []}").unwrap();
        let err = store.load(a.embedder()).unwrap_err();
        assert!(err.to_string().contains("not a facegate gallery"), "{err}");
    }

    #[test]
    fn a_foreign_embedder_is_refused_in_main_and_backup() {
        let (_dir, store) = setup();
        let (a, _) = main_and_backup(&store);
        let mine = a.embedder().clone();
        let other_sha = EmbedderId::new(&mine.id, [9; 32], mine.dim).unwrap();
        let other_dim = EmbedderId::new(&mine.id, mine.model_sha256, 128).unwrap();
        let other_id = EmbedderId::new("other-net", mine.model_sha256, mine.dim).unwrap();
        for expected in [&other_sha, &other_dim, &other_id] {
            let err = store.load(expected).unwrap_err();
            match &err {
                GalleryError::ForeignEmbedder {
                    path,
                    found,
                    expected: e,
                } => {
                    assert_eq!(path, store.path());
                    assert_eq!(**found, mine);
                    assert_eq!(*e, Box::new(expected.clone()));
                }
                e => panic!("unexpected {e}"),
            }
            assert!(err.to_string().contains("re-enroll"), "{err}");
        }
        // The check applies when the backup is used: main damaged, then main missing.
        let bytes = fs::read(store.path()).unwrap();
        fs::write(store.path(), &bytes[..20]).unwrap();
        assert!(matches!(
            store.load(&other_sha),
            Err(GalleryError::ForeignEmbedder { path, .. }) if path == store.backup_path()
        ));
        fs::remove_file(store.path()).unwrap();
        assert!(matches!(
            store.load(&other_dim),
            Err(GalleryError::ForeignEmbedder { path, .. }) if path == store.backup_path()
        ));
        assert!(store.load(&mine).is_ok());
    }

    #[test]
    fn a_newer_format_is_named_and_never_replaced_by_the_backup() {
        let (dir, store) = setup();
        let (a, b) = main_and_backup(&store);
        let mut bytes = fs::read(store.path()).unwrap();
        assert_eq!(bytes[8], 2, "version is the byte after the magic");
        bytes[8] = 3;
        fs::write(store.path(), &bytes).unwrap();
        assert!(matches!(
            decode_t(&bytes),
            Err(FormatError::UnsupportedVersion(3))
        ));
        let before = snapshot(dir.path());
        let err = store.load(a.embedder()).unwrap_err();
        assert!(
            err.to_string().contains("written by a newer facegate"),
            "{err}"
        );
        let err = store.save(&b).unwrap_err();
        assert!(matches!(
            format_error(&err),
            FormatError::UnsupportedVersion(3)
        ));
        assert_eq!(snapshot(dir.path()), before);
    }

    #[test]
    fn saving_over_a_damaged_main_keeps_the_good_backup() {
        let (dir, store) = setup();
        let (a, b) = main_and_backup(&store);
        let backup_bytes = fs::read(store.backup_path()).unwrap();
        let mut damaged = fs::read(store.path()).unwrap();
        let n = damaged.len();
        damaged[n / 2] ^= 0x40;
        fs::write(store.path(), &damaged).unwrap();

        let loaded = store.load(b.embedder()).unwrap();
        assert!(matches!(loaded.source, LoadSource::Backup { .. }));
        assert_eq!(loaded.gallery, a);
        let mut c = loaded.gallery;
        c.add_person("Re Enrolled", &[vec![0.25; 192]], 6).unwrap();
        store.save(&c).unwrap();

        let files = snapshot(dir.path());
        assert_eq!(
            files["gallery.fg.bak"], backup_bytes,
            "the good backup was replaced"
        );
        assert_eq!(decode_t(&files["gallery.fg"]).unwrap(), c);
        let aside: Vec<_> = files
            .iter()
            .filter(|(name, _)| name.starts_with("gallery.fg.corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1, "{:?}", files.keys());
        assert_eq!(*aside[0].1, damaged);
        assert_eq!(store.load(c.embedder()).unwrap().source, LoadSource::Main);

        // A second damaged main in the same second gets its own name.
        fs::write(store.path(), b"junk").unwrap();
        store.save(&c).unwrap();
        fs::write(store.path(), b"junk").unwrap();
        store.save(&c).unwrap();
        let aside = snapshot(dir.path())
            .into_keys()
            .filter(|name| name.starts_with("gallery.fg.corrupt-"))
            .count();
        assert_eq!(aside, 3);
        assert_eq!(fs::read(store.backup_path()).unwrap(), backup_bytes);
    }

    #[test]
    fn saving_into_a_missing_folder_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = GalleryStore::new(dir.path().join("nope").join("gallery.fg"))
            .with_key_file(dir.path().join("key/gallery.key"));
        let err = store.save(&random_gallery(13, 8, 1, 1)).unwrap_err();
        assert!(
            matches!(&err, GalleryError::FolderMissing { dir: d } if d == &dir.path().join("nope"))
        );
        assert!(err.to_string().contains("does not exist"), "{err}");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[cfg(unix)]
    #[test]
    fn saving_into_a_read_only_folder_changes_nothing() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, store) = setup();
        let (_, b) = main_and_backup(&store);
        let before = snapshot(dir.path());
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o555)).unwrap();
        // Root ignores folder permissions, so only check what can be checked.
        let probe = dir.path().join("probe");
        if fs::write(&probe, b"").is_ok() {
            fs::remove_file(&probe).unwrap();
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
            eprintln!("skipped: running as root, a read-only folder is still writable");
            return;
        }
        let err = store.save(&b).unwrap_err();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        assert!(
            matches!(&err, GalleryError::Io { op: "creating", .. }),
            "{err}"
        );
        assert!(err.to_string().contains("Permission denied"), "{err}");
        assert_eq!(snapshot(dir.path()), before);
    }

    #[test]
    fn a_failed_save_leaves_main_and_backup_as_they_were() {
        let (dir, store) = setup();
        let (a, b) = main_and_backup(&store);
        // A non-empty folder where the backup goes makes the save fail even for root.
        let main_before = fs::read(store.path()).unwrap();
        fs::rename(store.backup_path(), dir.path().join("old-backup")).unwrap();
        fs::create_dir(store.backup_path()).unwrap();
        fs::write(store.backup_path().join("x"), b"x").unwrap();
        let before = snapshot(dir.path());
        let err = store.save(&a).unwrap_err();
        assert!(matches!(&err, GalleryError::Rename { .. }), "{err}");
        assert_eq!(snapshot(dir.path()), before, "a temporary file was left");
        assert_eq!(fs::read(store.path()).unwrap(), main_before);
        assert_eq!(store.load(b.embedder()).unwrap().gallery, b);
    }

    #[test]
    fn temporary_names_are_unique_per_save() {
        let (dir, _) = setup();
        let base = dir.path().join("g.fg");
        let one = write_new_synced(&base, ".tmp", b"1").unwrap();
        let two = write_new_synced(&base, ".tmp", b"2").unwrap();
        assert_ne!(one, two);
        assert_eq!(fs::read(&one).unwrap(), b"1");
        assert_eq!(fs::read(&two).unwrap(), b"2");
    }

    #[test]
    fn threads_updating_under_the_lock_lose_nothing() {
        let (_dir, store) = setup();
        let g = random_gallery(20, 8, 0, 1);
        store.save(&g).unwrap();
        let embedder = g.embedder().clone();
        std::thread::scope(|s| {
            for i in 0..8 {
                let (store, embedder) = (store.clone(), embedder.clone());
                s.spawn(move || {
                    store
                        .update(&embedder, |g| {
                            g.add_person(&format!("p{i}"), &[vec![1.0; 8]], 0)
                        })
                        .unwrap();
                });
            }
        });
        assert_eq!(store.load(&embedder).unwrap().gallery.len(), 8);
    }

    #[test]
    fn a_lease_refuses_other_writers_by_name_and_ends_with_its_guard() {
        let (_dir, store) = setup();
        let lease = store.lease("socket=/run/x.sock").unwrap();
        let err = store.lock().unwrap_err();
        assert!(matches!(&err, GalleryError::Leased { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("facegate service") && msg.contains("/run/x.sock"),
            "{msg}"
        );
        assert!(matches!(
            store.lease("again"),
            Err(GalleryError::Leased { .. })
        ));
        drop(lease);
        drop(store.lock().unwrap());
    }

    #[test]
    fn ids_are_not_reused_across_save_and_load() {
        let (_dir, store) = setup();
        let mut g = random_gallery(14, 8, 3, 1);
        g.remove(&Selector::Id(3)).unwrap();
        g.remove(&Selector::Id(2)).unwrap();
        store.save(&g).unwrap();
        let mut g = store.load(g.embedder()).unwrap().gallery;
        assert_eq!(g.add_person("Next", &[vec![1.0; 8]], 0).unwrap(), 4);
    }

    #[test]
    fn a_bare_file_name_lives_in_the_current_folder() {
        assert_eq!(folder_of(Path::new("gallery.fg")).unwrap(), Path::new("."));
        assert_eq!(
            folder_of(Path::new("/var/g.fg")).unwrap(),
            Path::new("/var")
        );
        assert!(matches!(
            folder_of(Path::new("/var/..")),
            Err(GalleryError::InvalidPath { .. })
        ));
        // The only test that changes the working folder; the others use absolute paths.
        let dir = tempfile::tempdir().unwrap();
        let old = std::env::current_dir().unwrap();
        std::env::set_current_dir(dir.path()).unwrap();
        let store = GalleryStore::new("gallery.fg").with_key_file(dir.path().join("k/g.key"));
        let g = random_gallery(15, 8, 2, 1);
        let saved = store.save(&g).and_then(|_| store.save(&g));
        let loaded = store.load(g.embedder());
        std::env::set_current_dir(old).unwrap();
        saved.unwrap();
        assert_eq!(loaded.unwrap().gallery, g);
        assert!(dir.path().join("gallery.fg").is_file());
        assert!(dir.path().join("gallery.fg.bak").is_file());
    }

    #[test]
    fn inspect_reads_only_the_header() {
        let (_dir, store) = setup();
        let (_, b) = main_and_backup(&store);
        let mut bytes = fs::read(store.path()).unwrap();
        bytes.truncate(bytes.len() - 10);
        fs::write(store.path(), &bytes).unwrap();
        let s = inspect(store.path()).unwrap();
        assert_eq!(s.version, 2);
        assert_eq!(s.embedder, *b.embedder());
        assert!(!s.length_matches());
        fs::write(store.path(), b"FGGAL").unwrap();
        let err = inspect(store.path()).unwrap_err();
        assert!(matches!(format_error(&err), FormatError::Truncated));
        assert!(matches!(
            inspect(store.backup_path().with_extension("missing")),
            Err(GalleryError::Io { op: "opening", .. })
        ));
    }

    #[test]
    fn contents_that_break_the_gallery_rules_are_refused() {
        // A valid checksum over templates of the wrong dim: a writer bug, caught on load.
        let g8 = random_gallery(16, 8, 2, 1);
        let wrong = Gallery {
            embedder: embedder(16),
            next_id: g8.next_id,
            people: g8.people.clone(),
        };
        let bytes = encode_t(&wrong).unwrap();
        assert!(matches!(
            decode_t(&bytes),
            Err(FormatError::Inconsistent(_))
        ));
        let reused = Gallery {
            next_id: 2,
            ..g8.clone()
        };
        assert!(matches!(
            decode_t(&encode_t(&reused).unwrap()),
            Err(FormatError::Inconsistent(_))
        ));
        let mut dup = g8.clone();
        dup.people[1].name = dup.people[0]
            .name
            .to_uppercase()
            .as_str()
            .try_into()
            .unwrap();
        assert!(matches!(
            decode_t(&encode_t(&dup).unwrap()),
            Err(FormatError::Inconsistent(_))
        ));
    }

    #[test]
    fn a_sealed_file_holds_no_template_or_name_bytes() {
        let (_dir, store) = setup();
        let g = random_gallery(30, 192, 3, 2);
        store.save(&g).unwrap();
        let bytes = fs::read(store.path()).unwrap();
        let plain = encode_plain_v1(&g).unwrap();
        for p in g.people() {
            assert!(!contains(&bytes, p.name.as_bytes()), "{}", p.name);
            for t in &p.templates {
                let values: Vec<u8> = t.values().iter().map(|&v| v as u8).collect();
                // The plain format shows the search works: it finds them there.
                assert!(contains(&plain, &values[..16]));
                assert!(!contains(&bytes, &values[..16]));
                assert!(!contains(&bytes, &t.scale().to_le_bytes()));
            }
        }
        // Two saves of the same gallery differ everywhere after the header (a fresh nonce).
        let again = encode_t(&g).unwrap();
        assert_ne!(again, encode_t(&g).unwrap());
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn a_missing_or_wrong_key_is_an_error_that_touches_nothing() {
        let (dir, store) = setup();
        let (a, b) = main_and_backup(&store);
        let before = snapshot(dir.path());
        let elsewhere = tempfile::tempdir().unwrap();
        // Missing: load, and save, name the key file; no new key is made.
        let missing = store
            .clone()
            .with_key_file(elsewhere.path().join("none.key"));
        for err in [
            missing.load(a.embedder()).unwrap_err(),
            missing.save(&b).unwrap_err(),
        ] {
            assert!(matches!(err, GalleryError::KeyMissing { .. }), "{err}");
            assert!(err.to_string().contains("none.key"), "{err}");
        }
        assert!(!elsewhere.path().join("none.key").exists());
        // Wrong: another key file.
        let other = elsewhere.path().join("other.key");
        KeyFile::new(&other).load_or_create().unwrap();
        let wrong = store.clone().with_key_file(&other);
        for err in [
            wrong.load(a.embedder()).unwrap_err(),
            wrong.save(&b).unwrap_err(),
        ] {
            assert!(matches!(err, GalleryError::WrongKey { .. }), "{err}");
            assert!(err.to_string().contains("other.key"), "{err}");
        }
        // The backup alone (main gone) is not opened with a wrong key either.
        assert_eq!(snapshot(dir.path()), before);
        fs::remove_file(store.path()).unwrap();
        assert!(matches!(
            wrong.load(a.embedder()),
            Err(GalleryError::WrongKey { gallery, .. }) if gallery == store.backup_path()
        ));
        assert_eq!(store.load(a.embedder()).unwrap().gallery, a);
    }

    #[test]
    fn a_plain_gallery_is_read_without_a_key_and_sealed_on_the_next_save() {
        let dir = tempfile::tempdir().unwrap();
        let key_dir = tempfile::tempdir().unwrap();
        let key_path = key_dir.path().join("keys/gallery.key");
        let store = GalleryStore::new(dir.path().join("gallery.fg")).with_key_file(&key_path);
        let mut g = random_gallery(31, 192, 5, 2);
        let plain = encode_plain_v1(&g).unwrap();
        fs::write(store.path(), &plain).unwrap();
        let loaded = store.load(g.embedder()).unwrap();
        assert_eq!(loaded.source, LoadSource::Main);
        assert_eq!(loaded.gallery, g);
        assert!(g.people().iter().all(|p| p.user.is_none()));
        assert!(!key_path.exists(), "reading must not make a key");
        g.link_user(&Selector::Id(1), Some("ann")).unwrap();
        let saved = store.save(&g).unwrap();
        assert_eq!(
            saved,
            Saved {
                key_created: true,
                migrated_plain: true
            }
        );
        assert!(inspect(store.path()).unwrap().is_sealed());
        assert_eq!(fs::read(store.backup_path()).unwrap(), plain);
        assert_eq!(store.load(g.embedder()).unwrap().gallery, g);
        let again = store.save(&g).unwrap();
        assert_eq!(again, Saved::default());
        assert!(inspect(store.backup_path()).unwrap().is_sealed());
    }

    #[test]
    fn a_key_beside_the_gallery_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = GalleryStore::new(dir.path().join("gallery.fg"))
            .with_key_file(dir.path().join("gallery.key"));
        let err = store.save(&random_gallery(32, 8, 1, 1)).unwrap_err();
        assert!(
            matches!(err, GalleryError::KeyBesideGallery { .. }),
            "{err}"
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        // Through a path that names the same folder another way, too.
        let sub = dir.path().join("sub");
        fs::create_dir(&sub).unwrap();
        let store = GalleryStore::new(sub.join("gallery.fg"))
            .with_key_file(dir.path().join("sub/../sub/gallery.key"));
        assert!(store.save(&random_gallery(32, 8, 1, 1)).is_err());
    }
}
