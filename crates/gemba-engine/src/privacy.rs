//! Pseudonymised exports (docs/SECURITY.md#privacy-and-retention).
//!
//! Personal data — operator ids and names, who acknowledged, commented or worked on something —
//! is replaced in an export by a keyed hash: `anon-` and the first 16 hex digits of
//! HMAC-SHA256(secret, value). The secret is made once per installation (32 random bytes) and
//! kept in `pseudonym.key` next to the database, readable by its owner only, so the same person
//! gets the same pseudonym in every export of this installation (joins and counts still work),
//! while nobody without the key can compute pseudonyms of guessed names.

use std::io::Write;
use std::path::{Path, PathBuf};

use ring::hmac;
use serde_json::{Map, Value};

use crate::EngineError;

/// Name of the secret's file in the data directory.
pub const KEY_FILE: &str = "pseudonym.key";

/// Keys whose string values are personal data wherever they appear in an exported document
/// (event attributes, work orders, alarm histories, genealogy, data sets). Arrays of strings
/// under these keys are pseudonymised element by element.
pub const PERSONAL_KEYS: &[&str] = &[
    "operator",
    "operator_id",
    "operator_name",
    "operators",
    "user",
    "by",
    "assignee",
    "acked_by",
    "created_by",
    "closed_by",
    "worker",
    "employee",
    "person",
];

/// Maps personal values to stable pseudonyms with the installation's secret.
pub struct Pseudonymiser {
    key: hmac::Key,
}

impl std::fmt::Debug for Pseudonymiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymiser { key: <secret> }")
    }
}

impl Pseudonymiser {
    /// A pseudonymiser with the given secret (tests; use [`Pseudonymiser::load_or_create`]).
    pub fn with_secret(secret: &[u8]) -> Pseudonymiser {
        Pseudonymiser {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// Reads the secret from `dir/pseudonym.key`, or makes one (32 random bytes, hex, mode 0600)
    /// when there is none.
    pub fn load_or_create(dir: &Path) -> Result<Pseudonymiser, EngineError> {
        let path = dir.join(KEY_FILE);
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            EngineError::Storage(format!("{what} {}: {e}", path.display()))
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let secret = decode_hex(text.trim())
                    .filter(|s| s.len() >= 16)
                    .ok_or_else(|| fail("unreadable pseudonym key in", &"expected hex"))?;
                return Ok(Self::with_secret(&secret));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(fail("cannot read", &e)),
        }
        let mut secret = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
            .map_err(|_| fail("no randomness for", &"the system's random source failed"))?;
        std::fs::create_dir_all(dir).map_err(|e| fail("cannot create the directory of", &e))?;
        let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        match opts.open(&path) {
            Ok(mut f) => {
                f.write_all(format!("{hex}\n").as_bytes())
                    .and_then(|()| f.sync_all())
                    .map_err(|e| fail("cannot write", &e))?;
                Ok(Self::with_secret(&secret))
            }
            // Another export made it at the same time: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load_or_create(dir),
            Err(e) => Err(fail("cannot create", &e)),
        }
    }

    /// The pseudonym of one value.
    pub fn pseudonym(&self, value: &str) -> String {
        let tag = hmac::sign(&self.key, value.as_bytes());
        let hex: String = tag.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("anon-{hex}")
    }

    /// Replaces, anywhere in `doc`, the strings under [`PERSONAL_KEYS`] by their pseudonyms.
    pub fn pseudonymise(&self, doc: &mut Value) {
        match doc {
            Value::Object(map) => self.pseudonymise_map(map),
            Value::Array(items) => items.iter_mut().for_each(|v| self.pseudonymise(v)),
            _ => {}
        }
    }

    fn pseudonymise_map(&self, map: &mut Map<String, Value>) {
        for (k, v) in map.iter_mut() {
            if PERSONAL_KEYS.contains(&k.as_str()) {
                match v {
                    Value::String(s) => *s = self.pseudonym(s),
                    Value::Array(items) => {
                        for item in items {
                            match item {
                                Value::String(s) => *s = self.pseudonym(s),
                                other => self.pseudonymise(other),
                            }
                        }
                    }
                    other => self.pseudonymise(other),
                }
            } else {
                self.pseudonymise(v);
            }
        }
    }

    /// An operator definition: its id and name are both personal.
    pub fn pseudonymise_operator(&self, op: &mut gemba_core::OperatorDef) {
        op.id = self.pseudonym(&op.id);
        op.name = self.pseudonym(&op.name);
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The data directory: where the database file lives.
pub fn data_dir(storage_path: &Path) -> PathBuf {
    match storage_path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn same_value_same_pseudonym_other_secret_other_pseudonym() {
        let p = Pseudonymiser::with_secret(b"0123456789abcdef0123456789abcdef");
        let q = Pseudonymiser::with_secret(b"another secret of this installation");
        assert_eq!(p.pseudonym("op-001"), p.pseudonym("op-001"));
        assert_ne!(p.pseudonym("op-001"), p.pseudonym("op-002"));
        assert_ne!(p.pseudonym("op-001"), q.pseudonym("op-001"));
        let s = p.pseudonym("op-001");
        assert!(s.starts_with("anon-") && s.len() == 21, "{s}");
        // HMAC, not a bare hash: the RFC 4231 test case 2 key and message give its known tag.
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, b"Jefe"),
            b"what do ya want for nothing?",
        );
        assert_eq!(
            tag.as_ref()[..8],
            [0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e]
        );
    }

    #[test]
    fn personal_keys_are_replaced_at_any_depth() {
        let p = Pseudonymiser::with_secret(b"0123456789abcdef");
        let mut doc = json!({
            "events": [{"asset": "s/a/l/m", "type": "custom", "name": "login",
                        "attrs": {"operator": "op-7", "part": "P-1", "operators": ["op-7", "op-8"]}}],
            "history": [{"by": "olga", "what": "ack", "at": 5}],
            "assignee": null,
        });
        p.pseudonymise(&mut doc);
        let op7 = p.pseudonym("op-7");
        assert_eq!(doc["events"][0]["attrs"]["operator"], json!(op7));
        assert_eq!(
            doc["events"][0]["attrs"]["operators"],
            json!([op7, p.pseudonym("op-8")])
        );
        assert_eq!(doc["events"][0]["attrs"]["part"], "P-1");
        assert_eq!(doc["events"][0]["asset"], "s/a/l/m");
        assert_eq!(doc["history"][0]["by"], json!(p.pseudonym("olga")));
        assert_eq!(doc["history"][0]["what"], "ack");
        assert_eq!(doc["assignee"], Value::Null);
    }

    #[test]
    fn the_secret_is_made_once_and_kept_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = Pseudonymiser::load_or_create(dir.path()).expect("create");
        let b = Pseudonymiser::load_or_create(dir.path()).expect("load");
        assert_eq!(a.pseudonym("op-1"), b.pseudonym("op-1"));
        let text = std::fs::read_to_string(dir.path().join(KEY_FILE)).expect("key file");
        assert_eq!(text.trim().len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let other = tempfile::tempdir().expect("tempdir");
        let c = Pseudonymiser::load_or_create(other.path()).expect("create");
        assert_ne!(a.pseudonym("op-1"), c.pseudonym("op-1"));
        std::fs::write(dir.path().join(KEY_FILE), "not hex").expect("write");
        assert!(Pseudonymiser::load_or_create(dir.path()).is_err());
    }
}
