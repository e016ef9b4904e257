//! Sealing the gallery body: XChaCha20-Poly1305 with a fresh random 192-bit nonce per save (no
//! counter to keep across power cuts), the file header as associated data so a header edited
//! to another embedder or key id does not open either.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::keys::MasterKey;

pub const NONCE_LEN: usize = 24;
/// The label of the gallery's key in [`MasterKey::derive`].
const GALLERY_KEY_LABEL: &str = "facegate gallery xchacha20poly1305 v2";

/// The key a gallery is sealed with, and the public id of its key file.
pub struct GalleryKey {
    key: Zeroizing<[u8; 32]>,
    id: [u8; 8],
}

impl GalleryKey {
    pub fn new(master: &MasterKey) -> Self {
        Self {
            key: master.derive(GALLERY_KEY_LABEL),
            id: master.key_id(),
        }
    }

    pub fn id(&self) -> [u8; 8] {
        self.id
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.key.as_ref().into())
    }
}

/// A fresh random nonce.
pub fn new_nonce() -> Result<[u8; NONCE_LEN], getrandom::Error> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce)?;
    Ok(nonce)
}

/// Encrypt and authenticate `plaintext`; the result is 16 bytes longer.
pub fn seal(key: &GalleryKey, nonce: &[u8; NONCE_LEN], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    key.cipher()
        .encrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("XChaCha20-Poly1305 encrypts any message below 256 GiB")
}

/// Decrypt `ciphertext`; `None` if it, the nonce or the associated data were changed, or the
/// key is not the one it was sealed with. The plaintext is wiped when dropped.
pub fn open(
    key: &GalleryKey,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    ciphertext: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    key.cipher()
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .ok()
        .map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_only_with_the_same_key_nonce_and_header() {
        let k = GalleryKey::new(&MasterKey::from_bytes([1; 32]));
        let other = GalleryKey::new(&MasterKey::from_bytes([2; 32]));
        let nonce = new_nonce().unwrap();
        let sealed = seal(&k, &nonce, b"header", b"templates");
        assert_eq!(sealed.len(), b"templates".len() + 16);
        assert_eq!(
            open(&k, &nonce, b"header", &sealed).unwrap().as_slice(),
            b"templates"
        );
        assert!(open(&other, &nonce, b"header", &sealed).is_none());
        assert!(open(&k, &nonce, b"headeR", &sealed).is_none());
        let mut n2 = nonce;
        n2[0] ^= 1;
        assert!(open(&k, &n2, b"header", &sealed).is_none());
        let mut s2 = sealed.clone();
        s2[3] ^= 1;
        assert!(open(&k, &nonce, b"header", &s2).is_none());
        assert_ne!(new_nonce().unwrap(), nonce);
    }
}
