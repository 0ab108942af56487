//! Assurance policies: which operations a tenant's agents may verify for,
//! what each requires the customer's phone to prove, and the level a pass
//! reaches.
//!
//! A policy is a TOML file (the shipped default is
//! `server/policies/default.toml`, documented there). Agents only ever name
//! an operation: the predicates and their parameters are fixed here, so an
//! agent cannot compose questions that would narrow down a customer's
//! attributes.
//!
//! Levels:
//! - **L1**: the device factor (PIN knowledge and possession of the phone);
//! - **L2**: L1 and a credential requirement (account ownership);
//! - **L3**: L2, and at the session's start the customer's attribute
//!   credential is older than the policy's minimum age and the customer had
//!   no enrollment or credential change for the policy's quiet period.
//!
//! Every credential circuit proves the device factor as well, so an
//! operation's circuits are one per credential requirement, or
//! `pin-knowledge` alone when the device factor is all it needs.

use std::{collections::BTreeMap, fmt, path::Path, time::Duration};

use serde::Deserialize;

use super::model::{AccountRef, AssuranceLevel};

/// The default policy, shipped with the server.
pub const DEFAULT_POLICY: &str = include_str!("../../policies/default.toml");

const DAY: Duration = Duration::from_secs(24 * 3600);

/// One thing a phone proves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Requirement {
    /// PIN knowledge and possession of the enrolled phone.
    Device,
    /// The attribute credential names the call's account.
    AccountOwnership,
}

impl Requirement {
    /// The name policy files use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Device => "device",
            Self::AccountOwnership => "account_ownership",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        match name {
            "device" => Some(Self::Device),
            "account_ownership" => Some(Self::AccountOwnership),
            _ => None,
        }
    }

    /// The circuit that proves it (with the device factor).
    pub fn circuit(self) -> &'static str {
        match self {
            Self::Device => "pin-knowledge",
            Self::AccountOwnership => "account-ownership",
        }
    }

    /// Whether it needs the organization-issued attribute credential.
    pub fn needs_credential(self) -> bool {
        !matches!(self, Self::Device)
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The circuits proving `requirements`: one per credential requirement, or
/// `pin-knowledge` if the device factor is all there is. Empty if
/// `requirements` is.
pub fn circuits_for(requirements: &[Requirement]) -> Vec<String> {
    let credential: Vec<String> = requirements
        .iter()
        .filter(|r| r.needs_credential())
        .map(|r| r.circuit().to_owned())
        .collect();
    if !credential.is_empty() {
        credential
    } else if requirements.contains(&Requirement::Device) {
        vec![Requirement::Device.circuit().to_owned()]
    } else {
        Vec::new()
    }
}

/// What a passed session established, for step-up: its requirements, and
/// the account its account-ownership proof was about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Established<'a> {
    /// The requirements of the operation it passed.
    pub requirements: &'a [Requirement],
    /// Its account reference.
    pub account: Option<&'a AccountRef>,
}

/// The requirements of `wanted` (for `account`) that `earlier` did not
/// establish. Account ownership carries over only for the same account.
pub fn missing(
    wanted: &[Requirement],
    account: Option<&AccountRef>,
    earlier: &Established<'_>,
) -> Vec<Requirement> {
    wanted
        .iter()
        .copied()
        .filter(|r| {
            let done = earlier.requirements.contains(r)
                && match r {
                    Requirement::Device => true,
                    Requirement::AccountOwnership => {
                        account.is_some() && earlier.account == account
                    }
                };
            !done
        })
        .collect()
}

/// The extra conditions of level-3 operations, checked when a session
/// starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level3Conditions {
    /// The attribute credential must be at least this old.
    pub credential_min_age: Duration,
    /// No enrollment or credential change in this period.
    pub no_change_within: Duration,
}

/// A named operation an agent can verify for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// Stable name, e.g. `balance_inquiry`.
    pub name: String,
    /// For the customer's screen, e.g. "balance inquiry".
    pub display_name: String,
    /// The level a pass reaches.
    pub level: AssuranceLevel,
    /// What the phone proves, sorted, without repeats.
    pub requirements: Vec<Requirement>,
    /// Circuits to prove, by name, in order ([`circuits_for`] the
    /// requirements).
    pub circuits: Vec<String>,
    /// Conditions checked at start (level 3 only).
    pub level3: Option<Level3Conditions>,
}

/// A tenant's operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    operations: BTreeMap<String, Operation>,
}

/// Why a policy file is refused. Messages name the operation and field.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Not TOML, or not this schema (unknown fields are refused).
    #[error("{source}")]
    Syntax {
        /// The parser's message, with the line.
        #[from]
        source: toml::de::Error,
    },
    /// A semantic mistake.
    #[error("{0}")]
    Invalid(String),
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// Which file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A file in the policy directory, refused.
    #[error("policy file {path}: {source}")]
    InFile {
        /// Which file.
        path: String,
        /// Why.
        source: Box<PolicyError>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    level3: Option<Level3File>,
    operations: BTreeMap<String, OperationFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Level3File {
    credential_min_age_days: u32,
    no_change_days: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OperationFile {
    display_name: String,
    level: u8,
    prove: Vec<String>,
}

/// Longest a level-3 period may be: ten years, far beyond any sensible
/// policy, so a typo of extra digits is caught.
const MAX_DAYS: u32 = 3650;

fn valid_operation_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl Policy {
    /// Parses and validates a policy.
    ///
    /// # Errors
    /// [`PolicyError::Syntax`] for malformed TOML or unknown fields;
    /// [`PolicyError::Invalid`] for an operation whose level and
    /// requirements disagree, an unknown requirement, an empty or
    /// over-long display name, a bad name, or level-3 operations without
    /// a `[level3]` table.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let file: PolicyFile = toml::from_str(text)?;
        let invalid = |message: String| Err(PolicyError::Invalid(message));
        let level3 = match &file.level3 {
            Some(l3) => {
                for (field, days) in [
                    ("credential_min_age_days", l3.credential_min_age_days),
                    ("no_change_days", l3.no_change_days),
                ] {
                    if days == 0 || days > MAX_DAYS {
                        return invalid(format!(
                            "[level3] {field} must be between 1 and {MAX_DAYS} days, got {days}"
                        ));
                    }
                }
                Some(Level3Conditions {
                    credential_min_age: DAY * l3.credential_min_age_days,
                    no_change_within: DAY * l3.no_change_days,
                })
            }
            None => None,
        };
        if file.operations.is_empty() {
            return invalid("the policy defines no operations".into());
        }
        let mut operations = BTreeMap::new();
        for (name, op) in file.operations {
            if !valid_operation_name(&name) {
                return invalid(format!(
                    "operation name {name:?}: use 1 to 64 lower-case letters, digits and _"
                ));
            }
            let display = op.display_name.trim();
            if display.is_empty() || display.len() > 80 || display.chars().any(char::is_control) {
                return invalid(format!(
                    "operation {name}: display_name must be 1 to 80 printable characters"
                ));
            }
            let mut requirements = Vec::new();
            for requirement in &op.prove {
                match Requirement::parse(requirement) {
                    Some(r) => requirements.push(r),
                    None => {
                        return invalid(format!(
                            "operation {name}: unknown requirement {requirement:?} \
                             (known: device, account_ownership)"
                        ))
                    }
                }
            }
            requirements.sort();
            requirements.dedup();
            if !requirements.contains(&Requirement::Device) {
                return invalid(format!(
                    "operation {name}: every operation must prove \"device\" (PIN and phone)"
                ));
            }
            let has_credential = requirements.iter().any(|r| r.needs_credential());
            let level = match op.level {
                1 if !has_credential => AssuranceLevel::L1,
                1 => {
                    return invalid(format!(
                        "operation {name}: level 1 proves the device factor only; \
                         credential requirements make it level 2 or 3"
                    ))
                }
                2 | 3 if !has_credential => {
                    return invalid(format!(
                        "operation {name}: level {} needs a credential requirement \
                         such as account_ownership",
                        op.level
                    ))
                }
                2 => AssuranceLevel::L2,
                3 => AssuranceLevel::L3,
                other => {
                    return invalid(format!(
                        "operation {name}: level must be 1, 2 or 3, got {other}"
                    ))
                }
            };
            let op_level3 = if level == AssuranceLevel::L3 {
                match level3 {
                    Some(conditions) => Some(conditions),
                    None => {
                        return invalid(format!(
                            "operation {name} is level 3, but the policy has no [level3] table"
                        ))
                    }
                }
            } else {
                None
            };
            let circuits = circuits_for(&requirements);
            operations.insert(
                name.clone(),
                Operation {
                    name,
                    display_name: display.to_owned(),
                    level,
                    requirements,
                    circuits,
                    level3: op_level3,
                },
            );
        }
        Ok(Self { operations })
    }

    /// The shipped default policy.
    ///
    /// # Panics
    /// Never: a unit test parses the shipped file.
    pub fn shipped_default() -> Self {
        #[allow(clippy::expect_used)]
        Self::parse(DEFAULT_POLICY).expect("the shipped default policy is valid (tested)")
    }

    /// The operation called `name`.
    pub fn operation(&self, name: &str) -> Option<&Operation> {
        self.operations.get(name)
    }

    /// Every operation, by name.
    pub fn operations(&self) -> impl Iterator<Item = &Operation> {
        self.operations.values()
    }
}

/// The policies of every tenant: a default, and per-tenant overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policies {
    default: Policy,
    tenants: BTreeMap<String, Policy>,
}

impl Policies {
    /// Every tenant under `default`.
    pub fn uniform(default: Policy) -> Self {
        Self {
            default,
            tenants: BTreeMap::new(),
        }
    }

    /// Reads a policy directory: `default.toml` (if present) replaces the
    /// shipped default, and `<tenant-id>.toml` is that tenant's policy. A
    /// missing directory means the shipped default for everyone.
    ///
    /// # Errors
    /// [`PolicyError::InFile`] naming the first file refused;
    /// [`PolicyError::Io`] if the directory cannot be listed.
    pub fn load(dir: &Path) -> Result<Self, PolicyError> {
        let mut policies = Self::uniform(Policy::shipped_default());
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(policies),
            Err(source) => {
                return Err(PolicyError::Io {
                    path: dir.display().to_string(),
                    source,
                })
            }
        };
        let mut files = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(|source| PolicyError::Io {
                    path: dir.display().to_string(),
                    source,
                })?
                .path();
            if path.extension().is_some_and(|e| e == "toml") {
                files.push(path);
            }
        }
        files.sort();
        for path in files {
            let shown = path.display().to_string();
            let in_file = |source: PolicyError| PolicyError::InFile {
                path: shown.clone(),
                source: Box::new(source),
            };
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_owned();
            let text = std::fs::read_to_string(&path).map_err(|source| PolicyError::Io {
                path: shown.clone(),
                source,
            })?;
            let policy = Policy::parse(&text).map_err(in_file)?;
            if stem == "default" {
                policies.default = policy;
            } else if super::model::TenantId::parse(&stem).is_ok() {
                policies.tenants.insert(stem, policy);
            } else {
                return Err(in_file(PolicyError::Invalid(format!(
                    "{stem:?} is not a tenant id; name the file <tenant-id>.toml or default.toml"
                ))));
            }
        }
        Ok(policies)
    }

    /// The policy of `tenant`.
    pub fn for_tenant(&self, tenant: &str) -> &Policy {
        self.tenants.get(tenant).unwrap_or(&self.default)
    }

    /// Every policy: the default first.
    pub fn all(&self) -> impl Iterator<Item = &Policy> {
        std::iter::once(&self.default).chain(self.tenants.values())
    }

    /// Tenants with their own policy.
    pub fn tenants_with_own_policy(&self) -> impl Iterator<Item = &str> {
        self.tenants.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(policy: &Policy, name: &str) -> Operation {
        policy
            .operation(name)
            .cloned()
            .unwrap_or_else(|| panic!("{name}"))
    }

    #[test]
    fn shipped_default_parses_with_one_operation_per_level() {
        let policy = Policy::parse(DEFAULT_POLICY).expect("test value");
        let l1 = op(&policy, "balance_inquiry");
        assert_eq!(l1.level, AssuranceLevel::L1);
        assert_eq!(l1.circuits, ["pin-knowledge"]);
        let l2 = op(&policy, "change_address");
        assert_eq!(l2.level, AssuranceLevel::L2);
        assert_eq!(l2.circuits, ["account-ownership"]);
        assert_eq!(l2.level3, None);
        let l3 = op(&policy, "account_recovery");
        assert_eq!(l3.level, AssuranceLevel::L3);
        assert_eq!(
            l3.level3,
            Some(Level3Conditions {
                credential_min_age: DAY * 30,
                no_change_within: DAY * 30,
            })
        );
    }

    fn refused(text: &str, needle: &str) {
        match Policy::parse(text) {
            Ok(p) => panic!("accepted {text}: {p:?}"),
            Err(e) => assert!(e.to_string().contains(needle), "{e} lacks {needle:?}"),
        }
    }

    #[test]
    fn inconsistent_levels_and_unknown_fields_are_refused_by_name() {
        let op = |level: u8, prove: &str| {
            format!("[operations.x]\ndisplay_name = \"x\"\nlevel = {level}\nprove = [{prove}]\n")
        };
        refused(&op(1, "\"device\", \"account_ownership\""), "level 1");
        refused(&op(2, "\"device\""), "needs a credential requirement");
        refused(&op(3, "\"device\", \"account_ownership\""), "no [level3]");
        refused(&op(4, "\"device\", \"account_ownership\""), "1, 2 or 3");
        refused(
            &op(1, "\"born_before\""),
            "unknown requirement \"born_before\"",
        );
        refused(&op(2, "\"account_ownership\""), "must prove \"device\"");
        refused("[operations.x]\ndisplay_name = \"x\"\nlevel = 1\nprove = [\"device\"]\nquery = \"dob\"\n", "unknown field");
        refused("operations = {}\n", "no operations");
        refused(
            "[operations.X]\ndisplay_name = \"x\"\nlevel = 1\nprove = [\"device\"]\n",
            "operation name",
        );
        refused(
            &format!(
                "[level3]\ncredential_min_age_days = 0\nno_change_days = 1\n{}",
                op(1, "\"device\"")
            ),
            "credential_min_age_days",
        );
    }

    #[test]
    fn step_up_asks_only_what_is_missing() {
        let account = AccountRef::parse("acct-1").expect("test value");
        let other = AccountRef::parse("acct-2").expect("test value");
        let l1 = [Requirement::Device];
        let l2 = [Requirement::Device, Requirement::AccountOwnership];
        let after_l1 = Established {
            requirements: &l1,
            account: None,
        };
        assert_eq!(
            missing(&l2, Some(&account), &after_l1),
            [Requirement::AccountOwnership]
        );
        let after_l2 = Established {
            requirements: &l2,
            account: Some(&account),
        };
        assert!(missing(&l2, Some(&account), &after_l2).is_empty());
        assert_eq!(
            missing(&l2, Some(&other), &after_l2),
            [Requirement::AccountOwnership]
        );
        assert_eq!(
            circuits_for(&[Requirement::AccountOwnership]),
            ["account-ownership"]
        );
        assert!(circuits_for(&[]).is_empty());
    }

    #[test]
    fn directory_overrides_per_tenant_and_names_the_bad_file() {
        let dir = tempfile::tempdir().expect("test value");
        let only_l1 = "[operations.card_block]\ndisplay_name = \"block a card\"\nlevel = 1\nprove = [\"device\"]\n";
        std::fs::write(dir.path().join("acme.toml"), only_l1).expect("test value");
        let policies = Policies::load(dir.path()).expect("test value");
        assert!(policies
            .for_tenant("acme")
            .operation("card_block")
            .is_some());
        assert!(policies
            .for_tenant("acme")
            .operation("balance_inquiry")
            .is_none());
        assert!(policies
            .for_tenant("other")
            .operation("balance_inquiry")
            .is_some());

        std::fs::write(dir.path().join("Bad Name.toml"), only_l1).expect("test value");
        let err = Policies::load(dir.path()).expect_err("refused").to_string();
        assert!(err.contains("Bad Name.toml"), "{err}");

        let missing = dir.path().join("absent");
        assert_eq!(
            Policies::load(&missing).expect("test value"),
            Policies::uniform(Policy::shipped_default())
        );
    }
}
