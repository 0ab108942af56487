//! The server's Ed25519 signing key files, in `<data dir>/keys/signing/`:
//! one `<key id>.ed25519` file per key (its 32-byte secret, readable by
//! the owner only) and `current`, naming the key that signs. A first start
//! generates a key; `zkid-server keys rotate` adds one and makes it
//! current, keeping the earlier ones so what they signed stays checkable.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use ed25519_dalek::SigningKey;
use rand::rngs::OsRng;

use crate::domain::keyring::{key_id, KeyRing};

/// Why the signing keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    /// A file could not be read or written.
    #[error("signing key {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A file is not a key, or `current` names no key.
    #[error("signing key {0}: invalid")]
    Invalid(PathBuf),
    /// There is no key and none may be generated here.
    #[error("no signing key in {0}")]
    Missing(PathBuf),
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> SigningKeyError + '_ {
    move |source| SigningKeyError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The directory of the signing keys under the key directory.
pub fn signing_dir(key_dir: &Path) -> PathBuf {
    key_dir.join("signing")
}

fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), SigningKeyError> {
    use std::io::Write;
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io_error(path))?;
    file.write_all(bytes).map_err(io_error(path))?;
    file.sync_all().map_err(io_error(path))
}

fn set_current(dir: &Path, id: &str) -> Result<(), SigningKeyError> {
    let tmp = dir.join("current.tmp");
    fs::write(&tmp, id).map_err(io_error(&tmp))?;
    let current = dir.join("current");
    fs::rename(&tmp, &current).map_err(io_error(&current))
}

fn generate(dir: &Path) -> Result<String, SigningKeyError> {
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    let key = SigningKey::generate(&mut OsRng);
    let id = key_id(&key.verifying_key());
    write_secret(&dir.join(format!("{id}.ed25519")), key.as_bytes())?;
    set_current(dir, &id)?;
    Ok(id)
}

/// Loads the keys in `dir`.
///
/// # Errors
/// [`SigningKeyError::Missing`] if there are none; Io or Invalid for
/// unreadable or malformed files.
pub fn load(dir: &Path) -> Result<KeyRing, SigningKeyError> {
    let current_path = dir.join("current");
    if !current_path.is_file() {
        return Err(SigningKeyError::Missing(dir.to_owned()));
    }
    let current_id = fs::read_to_string(&current_path).map_err(io_error(&current_path))?;
    let current_id = current_id.trim();
    let mut current = None;
    let mut earlier = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let path = entry.map_err(io_error(dir))?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("ed25519") {
            continue;
        }
        let bytes = fs::read(&path).map_err(io_error(&path))?;
        let secret: [u8; 32] = bytes
            .try_into()
            .map_err(|_| SigningKeyError::Invalid(path.clone()))?;
        let key = SigningKey::from_bytes(&secret);
        let id = key_id(&key.verifying_key());
        if path.file_stem().and_then(|s| s.to_str()) != Some(id.as_str()) {
            return Err(SigningKeyError::Invalid(path));
        }
        if id == current_id {
            current = Some(key);
        } else {
            earlier.push(key.verifying_key());
        }
    }
    let current = current.ok_or(SigningKeyError::Invalid(current_path))?;
    Ok(KeyRing::new(current, earlier))
}

/// Loads the keys in `dir`, generating the first on a first start.
///
/// # Errors
/// As [`load`].
pub fn load_or_generate(dir: &Path) -> Result<KeyRing, SigningKeyError> {
    if !dir.join("current").is_file() {
        let id = generate(dir)?;
        tracing::info!(key_id = %id, "generated the server's signing key");
    }
    load(dir)
}

/// Adds a key and makes it the one that signs; returns its id.
///
/// # Errors
/// As [`load`].
pub fn rotate(dir: &Path) -> Result<String, SigningKeyError> {
    load(dir)?;
    generate(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_load_generates_and_rotation_keeps_old_keys() {
        let dir = tempfile::tempdir().expect("dir");
        let path = signing_dir(dir.path());
        assert!(matches!(load(&path), Err(SigningKeyError::Missing(_))));
        let first = load_or_generate(&path).expect("generate");
        let (old_id, signature) = first.sign(b"head");
        assert_eq!(load(&path).expect("reload").current_id(), old_id);
        let new_id = rotate(&path).expect("rotate");
        let ring = load(&path).expect("reload");
        assert_eq!(ring.current_id(), new_id);
        assert!(ring.verify(&old_id, b"head", &signature));
        assert_eq!(ring.public_keys().len(), 2);
    }
}
