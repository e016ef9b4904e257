//! The key file: one random 256-bit master key from which the gallery's sealing key and the
//! decision log's MAC key are derived (HKDF-SHA256, one label each), so one 0600 file outside
//! the data it protects is all an installation has to keep safe (docs/security.md).
//!
//! Layout: the magic `FGKEY001` then the 32 key bytes. The file is created with mode 0600 under
//! a temporary name and hard-linked into place, so it appears complete or not at all and two
//! processes creating it at once end up with the same key.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

const MAGIC: &[u8; 8] = b"FGKEY001";
pub const KEY_LEN: usize = 32;
const FILE_LEN: usize = MAGIC.len() + KEY_LEN;
/// Environment variable naming the key file (the `--key-file` option reads it too).
pub const KEY_FILE_ENV: &str = "FACEGATE_KEY_FILE";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "key file {} does not exist: it holds the key the gallery and the decision log are \
         sealed with; restore it (mode 0600) from your copy, or set [security] key_file to \
         where it is",
        path.display()
    )]
    Missing { path: PathBuf },
    #[error(
        "key file {} has mode {mode:03o}: a key must be readable by its owner only \
         (chmod 600 {})",
        path.display(), path.display()
    )]
    LooseMode { path: PathBuf, mode: u32 },
    #[error("key file {} is not a facegate key file ({reason})", path.display())]
    Malformed { path: PathBuf, reason: &'static str },
    #[error("key file {}: {op}: {error}", path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        error: io::Error,
    },
    #[error("the system's random number generator failed: {0}")]
    Random(getrandom::Error),
}

/// The master key. Only derived keys leave this type; its bytes are wiped when dropped.
pub struct MasterKey(Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey(id {})", hex::encode(self.key_id()))
    }
}

impl MasterKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self, KeyError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        getrandom::fill(bytes.as_mut()).map_err(KeyError::Random)?;
        Ok(Self(bytes))
    }

    /// A key from known bytes (tests and benchmarks).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// A 256-bit key for one purpose; different labels give independent keys.
    pub fn derive(&self, label: &str) -> Zeroizing<[u8; KEY_LEN]> {
        let hk = Hkdf::<Sha256>::new(Some(b"facegate key file v1"), self.0.as_ref());
        let mut out = Zeroizing::new([0u8; KEY_LEN]);
        hk.expand(label.as_bytes(), out.as_mut())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        out
    }

    /// A public fingerprint of the key, stored in sealed files so a wrong key is named as such
    /// rather than read as damage. It reveals nothing about the key (a separate HKDF output).
    pub fn key_id(&self) -> [u8; 8] {
        let full = self.derive("facegate key id");
        let mut id = [0u8; 8];
        id.copy_from_slice(&full[..8]);
        id
    }
}

/// Where the key lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyFile {
    path: PathBuf,
}

impl KeyFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn exists(&self) -> bool {
        self.path.symlink_metadata().is_ok()
    }

    /// Read the key; a missing file, a file others may read, or a malformed one is an error.
    pub fn load(&self) -> Result<MasterKey, KeyError> {
        let path = &self.path;
        let mut file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(KeyError::Missing { path: path.clone() })
            }
            Err(e) => return Err(self.io("opening", e)),
        };
        // The mode of the file actually opened, not of whatever the path names a moment later.
        let meta = file.metadata().map_err(|e| self.io("reading", e))?;
        if !meta.is_file() {
            return Err(KeyError::Malformed {
                path: path.clone(),
                reason: "not a regular file",
            });
        }
        check_mode(path, &meta)?;
        let mut bytes = Zeroizing::new(Vec::with_capacity(FILE_LEN + 1));
        (&mut file)
            .take(FILE_LEN as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| self.io("reading", e))?;
        if !bytes.starts_with(MAGIC) {
            return Err(KeyError::Malformed {
                path: path.clone(),
                reason: "wrong magic bytes",
            });
        }
        if bytes.len() != FILE_LEN {
            return Err(KeyError::Malformed {
                path: path.clone(),
                reason: "wrong length",
            });
        }
        let mut key = [0u8; KEY_LEN];
        key.copy_from_slice(&bytes[MAGIC.len()..]);
        let key = MasterKey::from_bytes(key);
        Ok(key)
    }

    /// Read the key, creating the file (and its folder, 0700) with a new random key if it does
    /// not exist. Returns whether this call created it.
    pub fn load_or_create(&self) -> Result<(MasterKey, bool), KeyError> {
        match self.load() {
            Err(KeyError::Missing { .. }) => {}
            other => return other.map(|k| (k, false)),
        }
        let key = MasterKey::generate()?;
        if self.create(&key)? {
            Ok((key, true))
        } else {
            // Someone else created it first: theirs is the key.
            Ok((self.load()?, false))
        }
    }

    /// Write `key` to a new file; false if the file appeared in the meantime.
    pub(crate) fn create(&self, key: &MasterKey) -> Result<bool, KeyError> {
        let path = &self.path;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder
            .create(&dir)
            .map_err(|e| self.io("creating its folder", e))?;
        let mut contents = Zeroizing::new(Vec::with_capacity(FILE_LEN));
        contents.extend_from_slice(MAGIC);
        contents.extend_from_slice(key.0.as_ref());
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".tmp-{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let _ = fs::remove_file(&tmp);
        write_new(&tmp, &contents).map_err(|e| self.io("creating", e))?;
        let linked = fs::hard_link(&tmp, path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            // No hard links (FAT): exclusive creation of the file itself.
            Err(_) => match write_new(path, &contents) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
                Err(e) => return Err(self.io("creating", e)),
            },
        }
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.io("syncing its folder", e))?;
        Ok(true)
    }

    fn io(&self, op: &'static str, error: io::Error) -> KeyError {
        KeyError::Io {
            path: self.path.clone(),
            op,
            error,
        }
    }
}

/// Create `path` exclusively, owner-only, and sync it.
fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(unix)]
fn check_mode(path: &Path, meta: &fs::Metadata) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::LooseMode {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_mode(_: &Path, _: &fs::Metadata) -> Result<(), KeyError> {
    Ok(())
}

/// The key file when none is configured: `$FACEGATE_KEY_FILE`, else
/// `$XDG_CONFIG_HOME/facegate/gallery.key`, else `~/.config/facegate/gallery.key`; a terminal
/// sets `[security] key_file` (board/config.toml).
pub fn default_key_file() -> PathBuf {
    if let Some(p) = std::env::var_os(KEY_FILE_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|p| !p.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        })
        .unwrap_or_else(|| PathBuf::from("/etc"));
    config.join("facegate").join("gallery.key")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_0600_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let kf = KeyFile::new(dir.path().join("keys/sub/gallery.key"));
        assert!(matches!(kf.load(), Err(KeyError::Missing { .. })));
        let (a, created) = kf.load_or_create().unwrap();
        assert!(created);
        let (b, created) = kf.load_or_create().unwrap();
        assert!(!created);
        assert_eq!(a.key_id(), b.key_id());
        assert_eq!(*a.derive("x"), *b.derive("x"));
        assert_ne!(*a.derive("x"), *a.derive("y"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(kf.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let dmode = fs::metadata(kf.path().parent().unwrap())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(dmode & 0o777, 0o700);
        }
        assert_eq!(fs::read(kf.path()).unwrap().len(), FILE_LEN);
        // Nothing but the key is left in its folder.
        assert_eq!(
            fs::read_dir(kf.path().parent().unwrap()).unwrap().count(),
            1
        );
    }

    #[test]
    fn two_keys_differ_and_debug_shows_only_the_id() {
        let (a, b) = (
            MasterKey::generate().unwrap(),
            MasterKey::generate().unwrap(),
        );
        assert_ne!(a.key_id(), b.key_id());
        let shown = format!("{a:?}");
        assert!(shown.starts_with("MasterKey(id "), "{shown}");
        assert!(!shown.contains(&hex::encode(a.0.as_ref())));
    }

    #[cfg(unix)]
    #[test]
    fn loose_modes_and_malformed_files_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let kf = KeyFile::new(dir.path().join("gallery.key"));
        kf.load_or_create().unwrap();
        fs::set_permissions(kf.path(), fs::Permissions::from_mode(0o640)).unwrap();
        let err = kf.load().unwrap_err();
        assert!(matches!(err, KeyError::LooseMode { mode: 0o640, .. }));
        assert!(err.to_string().contains("chmod 600"), "{err}");
        // load_or_create never replaces a key it refuses.
        let before = fs::read(kf.path()).unwrap();
        assert!(kf.load_or_create().is_err());
        assert_eq!(fs::read(kf.path()).unwrap(), before);
        fs::set_permissions(kf.path(), fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(kf.path(), b"FGKEY001short").unwrap();
        assert!(matches!(
            kf.load(),
            Err(KeyError::Malformed {
                reason: "wrong length",
                ..
            })
        ));
        fs::write(kf.path(), [0u8; FILE_LEN]).unwrap();
        assert!(kf.load().unwrap_err().to_string().contains("magic"));
    }
}
