//! The phone's local secrets, encrypted at rest.
//!
//! A vault file holds one encrypted blob: the device secret, the device's
//! bearer token and the organization-issued attribute credential. The PIN
//! is never stored. The key is derived from a passphrase with Argon2id
//! (memory-hard, so a stolen file resists offline guessing), and the blob is
//! sealed with XChaCha20-Poly1305, whose 192-bit nonces can be drawn at
//! random for every write without a counter.
//!
//! Layout: `ZKIDVLT1` | m_cost u32 | t_cost u32 | p_cost u32 | salt (16) |
//! nonce (24) | ciphertext with tag. Everything before the ciphertext is
//! authenticated as associated data, so weakened KDF parameters in a
//! tampered header fail to open rather than silently applying.
//!
//! Writes go to a temporary file in the same directory, are synced, and are
//! renamed over the old vault: a crash leaves either the old or the new
//! vault, never a torn one. A wrong passphrase is reported as such and
//! changes nothing on disk. On Unix the file is created with mode 0600.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::{
    aead::{Aead, KeyInit, Payload},
    XChaCha20Poly1305, XNonce,
};
use rand::{rngs::OsRng, RngCore};
use zeroize::Zeroizing;

const MAGIC: &[u8; 8] = b"ZKIDVLT1";
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = 8 + 12 + SALT_LEN + NONCE_LEN;

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl KdfParams {
    /// OWASP's recommended Argon2id floor for interactive logins (19 MiB,
    /// 2 passes, 1 lane): affordable on a phone, costly to guess at scale.
    pub const RECOMMENDED: Self = Self {
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
    };

    /// Cheap parameters for tests only.
    pub const INSECURE_FOR_TESTS: Self = Self {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    // Opening a vault must not let a tampered header make us allocate
    // unbounded memory before the tag check can fail.
    const MAX_MEMORY_KIB: u32 = 1024 * 1024;
}

/// Errors of the vault.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// No vault at that path.
    #[error("no vault at {0} (enroll this device first)")]
    Missing(PathBuf),
    /// A vault already exists where a new one was to be created.
    #[error("a vault already exists at {0}")]
    AlreadyExists(PathBuf),
    /// The passphrase does not open the vault (or the file was altered).
    #[error("wrong passphrase, or the vault file was altered")]
    WrongPassphrase,
    /// The file is not a zkid vault.
    #[error("not a zkid vault file")]
    NotAVault,
    /// The KDF parameters are unusable.
    #[error("invalid key-derivation parameters: {0}")]
    Kdf(String),
    /// Reading or writing failed.
    #[error("vault I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// An encrypted file holding bytes only its passphrase can read.
#[derive(Debug, Clone)]
pub struct Vault {
    path: PathBuf,
    params: KdfParams,
}

impl Vault {
    /// A vault at `path` that writes with `params`.
    pub fn new(path: impl Into<PathBuf>, params: KdfParams) -> Self {
        Self {
            path: path.into(),
            params,
        }
    }

    /// Where the vault lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a vault file exists.
    pub fn exists(&self) -> bool {
        self.path.exists()
    }

    /// Creates the vault; refuses to replace an existing one.
    ///
    /// # Errors
    /// [`VaultError::AlreadyExists`], KDF or I/O errors.
    pub fn create(&self, passphrase: &str, plaintext: &[u8]) -> Result<(), VaultError> {
        if self.exists() {
            return Err(VaultError::AlreadyExists(self.path.clone()));
        }
        self.write(passphrase, plaintext)
    }

    /// Opens the vault and returns its contents.
    ///
    /// # Errors
    /// [`VaultError::Missing`], [`VaultError::WrongPassphrase`],
    /// [`VaultError::NotAVault`], I/O errors.
    pub fn open(&self, passphrase: &str) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(VaultError::Missing(self.path.clone()))
            }
            Err(e) => return Err(e.into()),
        };
        if bytes.len() < HEADER_LEN + 16 || &bytes[..8] != MAGIC {
            return Err(VaultError::NotAVault);
        }
        let (header, ciphertext) = bytes.split_at(HEADER_LEN);
        let word = |i: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(&header[8 + 4 * i..12 + 4 * i]);
            u32::from_le_bytes(w)
        };
        let params = KdfParams {
            memory_kib: word(0),
            iterations: word(1),
            parallelism: word(2),
        };
        if params.memory_kib > KdfParams::MAX_MEMORY_KIB {
            return Err(VaultError::NotAVault);
        }
        let salt = &header[20..20 + SALT_LEN];
        let nonce = XNonce::from_slice(&header[20 + SALT_LEN..]);
        let key = derive_key(passphrase, salt, params)?;
        let cipher = XChaCha20Poly1305::new_from_slice(key.as_slice())
            .map_err(|_| VaultError::Kdf("key length".into()))?;
        cipher
            .decrypt(
                nonce,
                Payload {
                    msg: ciphertext,
                    aad: header,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| VaultError::WrongPassphrase)
    }

    /// Replaces the vault's contents, after checking the passphrase opens
    /// the current vault (so a typo cannot re-key the vault).
    ///
    /// # Errors
    /// As [`Vault::open`], and write errors.
    pub fn update(&self, passphrase: &str, plaintext: &[u8]) -> Result<(), VaultError> {
        self.open(passphrase)?;
        self.write(passphrase, plaintext)
    }

    fn write(&self, passphrase: &str, plaintext: &[u8]) -> Result<(), VaultError> {
        let mut salt = [0u8; SALT_LEN];
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut salt);
        OsRng.fill_bytes(&mut nonce);
        let mut header = Vec::with_capacity(HEADER_LEN);
        header.extend_from_slice(MAGIC);
        for word in [
            self.params.memory_kib,
            self.params.iterations,
            self.params.parallelism,
        ] {
            header.extend_from_slice(&word.to_le_bytes());
        }
        header.extend_from_slice(&salt);
        header.extend_from_slice(&nonce);
        let key = derive_key(passphrase, &salt, self.params)?;
        let cipher = XChaCha20Poly1305::new_from_slice(key.as_slice())
            .map_err(|_| VaultError::Kdf("key length".into()))?;
        let ciphertext = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &header,
                },
            )
            .map_err(|_| VaultError::Kdf("encryption failed".into()))?;
        let mut file_bytes = header;
        file_bytes.extend_from_slice(&ciphertext);
        write_atomically(&self.path, &file_bytes)
    }
}

fn derive_key(
    passphrase: &str,
    salt: &[u8],
    params: KdfParams,
) -> Result<Zeroizing<[u8; 32]>, VaultError> {
    let argon_params = Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        Some(32),
    )
    .map_err(|e| VaultError::Kdf(e.to_string()))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params);
    let mut key = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase.as_bytes(), salt, key.as_mut_slice())
        .map_err(|e| VaultError::Kdf(e.to_string()))?;
    Ok(key)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), VaultError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    fs::create_dir_all(dir)?;
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        temp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    temp.write_all(bytes)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| VaultError::Io(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault(dir: &tempfile::TempDir) -> Vault {
        Vault::new(
            dir.path().join("device.vault"),
            KdfParams::INSECURE_FOR_TESTS,
        )
    }

    #[test]
    fn round_trips_and_is_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let v = vault(&dir);
        v.create("correct horse", b"device secret").expect("create");
        assert_eq!(
            v.open("correct horse").expect("open").as_slice(),
            b"device secret"
        );
        let on_disk = fs::read(v.path()).expect("read");
        assert!(!on_disk.windows(13).any(|w| w == b"device secret"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(v.path()).expect("stat").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn wrong_passphrase_is_clear_and_destroys_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let v = vault(&dir);
        v.create("right", b"payload").expect("create");
        let before = fs::read(v.path()).expect("read");
        assert!(matches!(v.open("wrong"), Err(VaultError::WrongPassphrase)));
        assert!(matches!(
            v.update("wrong", b"other"),
            Err(VaultError::WrongPassphrase)
        ));
        assert_eq!(fs::read(v.path()).expect("read"), before);
        assert_eq!(v.open("right").expect("open").as_slice(), b"payload");
    }

    #[test]
    fn tampering_is_detected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let v = vault(&dir);
        v.create("pw", b"payload").expect("create");
        let original = fs::read(v.path()).expect("read");
        for position in [8, 20, 40, HEADER_LEN, original.len() - 1] {
            let mut altered = original.clone();
            altered[position] ^= 1;
            fs::write(v.path(), &altered).expect("write");
            assert!(v.open("pw").is_err(), "byte {position}");
        }
    }

    #[test]
    fn refuses_to_overwrite_and_reports_missing_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let v = vault(&dir);
        assert!(matches!(v.open("pw"), Err(VaultError::Missing(_))));
        v.create("pw", b"a").expect("create");
        assert!(matches!(
            v.create("pw", b"b"),
            Err(VaultError::AlreadyExists(_))
        ));
        v.update("pw", b"b").expect("update");
        assert_eq!(v.open("pw").expect("open").as_slice(), b"b");
    }

    #[test]
    fn garbage_is_not_a_vault() {
        let dir = tempfile::tempdir().expect("tempdir");
        let v = vault(&dir);
        fs::write(v.path(), b"hello").expect("write");
        assert!(matches!(v.open("pw"), Err(VaultError::NotAVault)));
    }
}
