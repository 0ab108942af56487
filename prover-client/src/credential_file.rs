//! The attribute credential as a file: what the organization's system of
//! record hands the customer's app over its own channel.
//!
//! JSON, with the attribute values in the clear (the file is as sensitive
//! as the customer record it came from: written with mode 0600, and
//! imported into the phone's encrypted vault, after which it should be
//! deleted) and the blinding as 64 hex digits. Only the commitment to it
//! ever reaches the zkid server.

use std::{fs, io::Write, path::Path};

use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use zkid_circuits::{
    credential::{
        check_schema_version, date::days_from_civil, AttributeCredential, Attributes, Blinding,
        SCHEMA_VERSION,
    },
    encoding::field_to_bytes,
};

/// Errors reading or writing a credential file.
#[derive(Debug, thiserror::Error)]
pub enum CredentialFileError {
    /// Reading or writing.
    #[error("credential file: {0}")]
    Io(#[from] std::io::Error),
    /// Not a credential file.
    #[error("not a credential file: {0}")]
    Malformed(String),
    /// A value the schema refuses.
    #[error("invalid credential: {0}")]
    Invalid(String),
}

/// A credential file's contents. Its `Debug` shows only the schema version.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialFile {
    /// The attribute schema's version.
    pub schema_version: u32,
    /// The account id.
    pub account_id: String,
    /// Date of birth, `YYYY-MM-DD`.
    pub date_of_birth: String,
    /// Postcode, canonical form (upper case, no spaces).
    pub postcode: String,
    /// Phone number, E.164.
    pub phone_number: String,
    /// Last four characters of the national id.
    pub national_id_last4: String,
    /// The random blinding, 64 hex digits.
    pub blinding: String,
}

impl std::fmt::Debug for CredentialFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialFile")
            .field("schema_version", &self.schema_version)
            .finish_non_exhaustive()
    }
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date.
///
/// # Errors
/// Not a valid calendar date.
pub fn parse_date(text: &str) -> Result<i64, CredentialFileError> {
    let bad = || CredentialFileError::Invalid(format!("{text:?} is not a YYYY-MM-DD date"));
    let mut parts = text.splitn(3, '-');
    let (Some(y), Some(m), Some(d)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return Err(bad());
    }
    let year: i64 = y.parse().map_err(|_| bad())?;
    let month: u32 = m.parse().map_err(|_| bad())?;
    let day: u32 = d.parse().map_err(|_| bad())?;
    days_from_civil(year, month, day).map_err(|_| bad())
}

impl CredentialFile {
    /// Issues a credential with a fresh blinding under the current schema.
    ///
    /// # Errors
    /// A value the schema refuses.
    pub fn issue<R: RngCore + CryptoRng>(
        account_id: &str,
        date_of_birth: &str,
        postcode: &str,
        phone_number: &str,
        national_id_last4: &str,
        rng: &mut R,
    ) -> Result<Self, CredentialFileError> {
        let file = Self {
            schema_version: SCHEMA_VERSION,
            account_id: account_id.to_owned(),
            date_of_birth: date_of_birth.to_owned(),
            postcode: postcode.to_owned(),
            phone_number: phone_number.to_owned(),
            national_id_last4: national_id_last4.to_owned(),
            blinding: hex::encode(Blinding::generate(rng).to_bytes()),
        };
        file.credential()?;
        Ok(file)
    }

    /// The credential, validated against its schema.
    ///
    /// # Errors
    /// Malformed blinding or a value the schema refuses.
    pub fn credential(&self) -> Result<AttributeCredential, CredentialFileError> {
        check_schema_version(self.schema_version)
            .map_err(|e| CredentialFileError::Invalid(e.to_string()))?;
        let mut blinding = [0u8; 32];
        hex::decode_to_slice(&self.blinding, &mut blinding)
            .map_err(|_| CredentialFileError::Invalid("blinding is not 64 hex digits".into()))?;
        let blinding = Blinding::from_bytes(&blinding)
            .map_err(|e| CredentialFileError::Invalid(e.to_string()))?;
        let attributes = Attributes {
            account_id: self.account_id.clone(),
            date_of_birth: parse_date(&self.date_of_birth)?,
            postcode: self.postcode.clone(),
            phone_number: self.phone_number.clone(),
            national_id_last4: self.national_id_last4.clone(),
        };
        AttributeCredential::from_parts(self.schema_version, &attributes, blinding)
            .map_err(|e| CredentialFileError::Invalid(e.to_string()))
    }

    /// The commitment the organization registers with zkid, encoded.
    ///
    /// # Errors
    /// As [`CredentialFile::credential`].
    pub fn commitment(&self) -> Result<[u8; 32], CredentialFileError> {
        Ok(field_to_bytes(&self.credential()?.commitment()))
    }

    /// Reads and validates a file.
    ///
    /// # Errors
    /// I/O, parse or validation errors.
    pub fn read(path: &Path) -> Result<Self, CredentialFileError> {
        let file: Self = serde_json::from_slice(&fs::read(path)?)
            .map_err(|e| CredentialFileError::Malformed(e.to_string()))?;
        file.credential()?;
        Ok(file)
    }

    /// Writes the file with mode 0600, refusing to replace one.
    ///
    /// # Errors
    /// I/O errors, including an existing file.
    pub fn write_new(&self, path: &Path) -> Result<(), CredentialFileError> {
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path)?;
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| CredentialFileError::Malformed(e.to_string()))?;
        file.write_all(&json)?;
        file.sync_all()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn sample() -> CredentialFile {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        CredentialFile::issue(
            "ACC-1001",
            "1990-01-31",
            "SW1A1AA",
            "+447700900123",
            "1234",
            &mut rng,
        )
        .expect("valid")
    }

    #[test]
    fn round_trips_through_a_private_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cred.json");
        let file = sample();
        file.write_new(&path).expect("write");
        assert_eq!(CredentialFile::read(&path).expect("read"), file);
        assert!(file.write_new(&path).is_err(), "never replaces a file");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).expect("stat").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(
            format!("{file:?}"),
            "CredentialFile { schema_version: 1, .. }"
        );
    }

    #[test]
    fn commitment_depends_on_every_field() {
        let base = sample();
        let mut other = base.clone();
        other.postcode = "SW1A2AA".into();
        assert_ne!(
            base.commitment().expect("c"),
            other.commitment().expect("c")
        );
        let mut other = base.clone();
        other.date_of_birth = "1990-02-01".into();
        assert_ne!(
            base.commitment().expect("c"),
            other.commitment().expect("c")
        );
    }

    #[test]
    fn refuses_bad_dates_blindings_and_schemas() {
        for bad in ["1990-02-30", "1990-1-31", "31/01/1990", "", "1990-01-31x"] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_date("1970-01-02").expect("date"), 1);
        let mut file = sample();
        file.blinding = "zz".into();
        assert!(file.credential().is_err());
        let mut file = sample();
        file.schema_version = SCHEMA_VERSION + 1;
        assert!(matches!(
            file.credential(),
            Err(CredentialFileError::Invalid(_))
        ));
    }
}
