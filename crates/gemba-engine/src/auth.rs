//! Users, roles, sessions, API tokens and the audit log (docs/SECURITY.md).
//!
//! - Passwords are hashed with Argon2id (PHC string, random salt); the clear password is never
//!   stored or logged. Verifying takes tens of milliseconds on purpose: callers on an async runtime
//!   run [`Auth::login`] on the blocking pool.
//! - Session ids and API token secrets are 256-bit random values; only their SHA-256 is stored (a
//!   fast hash is enough for a secret with that much entropy, and it keeps every request cheap).
//! - API tokens look like `gmb_<id>_<secret>`: the id finds the record, the secret proves it.
//! - Everything lives in the store's `records` table (kinds `user`, `token`, `session`), so users
//!   and tokens made by `gemba user add` on the same data directory are seen by a running server.
//! - The audit log is the store's append-only `audit` table.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use gemba_core::Timestamp;
use gemba_ingest::broker::MqttGrant;
use gemba_store::{AuditEntry, AuditQuery, Store};
use serde::{Deserialize, Serialize};

/// What a principal may do. Each role includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads everything a dashboard shows.
    Viewer,
    /// Also acknowledges alarms, works on work orders, and sends data (machines, scanners).
    Operator,
    /// Also changes models, alarm rules, SPC, assets and production settings.
    Engineer,
    /// Also manages users, tokens and reads the audit log.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Operator, Role::Engineer, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Engineer => "engineer",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = AuthError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "engineer" => Ok(Role::Engineer),
            "admin" => Ok(Role::Admin),
            other => Err(AuthError::Invalid(format!(
                "role {other:?} is not one of viewer, operator, engineer, admin"
            ))),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors of authentication and user management.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Wrong user name or password, or an unknown, expired or revoked token/session.
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] gemba_store::StoreError),
    /// The operating system's random source failed: no secret can be made (and none is made
    /// from anything guessable instead).
    #[error("the system random generator failed")]
    NoRandomness,
    #[error("internal: {0}")]
    Internal(String),
}

type Result<T> = std::result::Result<T, AuthError>;

/// `[auth]` configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Off: every request is treated as an admin named `anonymous` (trials only; a warning is
    /// logged at start).
    pub enabled: bool,
    /// Hours a login session lasts.
    pub session_hours: u32,
    /// Requests per second allowed per principal (token, user or client address), sustained.
    pub rate_per_s: f64,
    /// Requests a principal may send in a burst above `rate_per_s`.
    pub burst: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            enabled: true,
            session_hours: 12,
            rate_per_s: 1000.0,
            burst: 5000,
        }
    }
}

/// A stored user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// Asset path the user is limited to (data sent and alarms acted on), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// A generated one-time password: the user must set a new one before doing anything else.
    #[serde(default)]
    pub must_change_password: bool,
    pub created: Timestamp,
}

/// A user as shown over the API (no hash).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserInfo {
    pub name: String,
    pub role: Role,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub must_change_password: bool,
    pub created: Timestamp,
}

impl From<&User> for UserInfo {
    fn from(u: &User) -> Self {
        UserInfo {
            name: u.name.clone(),
            role: u.role,
            scope: u.scope.clone(),
            must_change_password: u.must_change_password,
            created: u.created,
        }
    }
}

/// A stored API token (the secret only as its SHA-256).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiToken {
    pub id: String,
    /// What it is for, e.g. `press-1 PLC gateway`.
    pub name: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub created_by: String,
    pub created: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<Timestamp>,
}

/// A token as stored: its record and the SHA-256 of its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StoredToken {
    #[serde(flatten)]
    record: ApiToken,
    secret_sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Session {
    user: String,
    created: Timestamp,
    expires: Timestamp,
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// User name, or `token:<id>`.
    pub name: String,
    pub role: Role,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Only the password may be changed until this is false.
    pub must_change_password: bool,
    pub kind: PrincipalKind,
}

/// How a principal signed in (`"kind"` in `GET /api/v1/auth/me`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalKind {
    /// A user with a session (signed in with a password).
    User,
    /// An API token.
    Token,
    /// Nobody: authentication is off.
    Anonymous,
}

impl Principal {
    /// The principal used when authentication is off.
    pub fn anonymous_admin() -> Principal {
        Principal {
            name: "anonymous".into(),
            role: Role::Admin,
            scope: None,
            must_change_password: false,
            kind: PrincipalKind::Anonymous,
        }
    }

    /// Whether the principal may act on the asset at `path` (its scope is a prefix of it).
    pub fn may_touch(&self, path: &str) -> bool {
        match &self.scope {
            None => true,
            Some(s) => gemba_core::is_under(path, s),
        }
    }
}

/// A new token as handed out once (the only time the secret is visible).
#[derive(Debug, Clone, Serialize)]
pub struct IssuedToken {
    pub token: String,
    #[serde(flatten)]
    pub record: ApiToken,
}

const USER: &str = "user";
const TOKEN: &str = "token";
const SESSION: &str = "session";

/// Users, tokens, sessions and the audit log over a store.
#[derive(Debug)]
pub struct Auth {
    store: Arc<dyn Store>,
    cfg: AuthConfig,
    /// Password of the process's own MQTT clients (bridge, demo simulator); new at every start.
    internal_secret: String,
}

/// MQTT user name of Gemba's own clients.
pub const INTERNAL_MQTT_USER: &str = "gemba-internal";

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn random_hex(n: usize) -> Result<String> {
    use ring::rand::SecureRandom;
    let mut buf = vec![0u8; n];
    ring::rand::SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| AuthError::NoRandomness)?;
    Ok(hex(&buf))
}

fn sha256_hex(s: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, s.as_bytes()).as_ref())
}

/// Constant-time comparison of two hex digests.
fn same_digest(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn argon2() -> Argon2<'static> {
    // OWASP's recommended minimum for Argon2id: 19 MiB, 2 iterations, 1 lane.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password with Argon2id and a random salt.
pub fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::encode_b64(&hex_bytes(&random_hex(16)?))
        .map_err(|e| AuthError::Internal(format!("salt: {e}")))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Internal(format!("argon2: {e}")))
}

fn hex_bytes(h: &str) -> Vec<u8> {
    (0..h.len() / 2)
        .filter_map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).ok())
        .collect()
}

/// Checks a password against an Argon2 PHC string.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

/// The rules a password must meet.
pub fn check_password(password: &str) -> Result<()> {
    if password.chars().count() < 10 {
        return Err(AuthError::Invalid(
            "password: at least 10 characters are required".into(),
        ));
    }
    if password.len() > 1024 {
        return Err(AuthError::Invalid(
            "password: at most 1024 bytes are allowed".into(),
        ));
    }
    Ok(())
}

fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if ok {
        Ok(())
    } else {
        Err(AuthError::Invalid(format!(
            "{what} {name:?}: use 1–64 characters of a-z, A-Z, 0-9, '-', '_', '.', '@'"
        )))
    }
}

/// A generated password of 20 characters from an unambiguous alphabet.
pub fn generate_password() -> Result<String> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let bytes = hex_bytes(&random_hex(20)?);
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect())
}

impl Auth {
    /// Fails only when the system random source does: the internal MQTT password of this run
    /// is made from it (it used to fall back to a hash of the clock, which can be guessed).
    pub fn new(store: Arc<dyn Store>, cfg: AuthConfig) -> Result<Auth> {
        Ok(Auth {
            store,
            cfg,
            internal_secret: random_hex(32)?,
        })
    }

    /// The password of [`INTERNAL_MQTT_USER`] for this run of the process.
    pub fn internal_secret(&self) -> &str {
        &self.internal_secret
    }

    /// MQTT credentials: Gemba's own clients, or any user name with an API token of role
    /// operator or higher as the password. A token scoped to an asset may publish and
    /// subscribe only under that asset's topics.
    pub fn mqtt_login(&self, user: &str, password: &str, now: Timestamp) -> MqttGrant {
        if user == INTERNAL_MQTT_USER {
            return if same_digest(&sha256_hex(password), &sha256_hex(&self.internal_secret)) {
                MqttGrant::Internal
            } else {
                MqttGrant::Refused
            };
        }
        match self.token(password, now) {
            Ok(p) if p.role >= Role::Operator => MqttGrant::Principal {
                name: p.name,
                scope: p.scope,
            },
            _ => MqttGrant::Refused,
        }
    }

    pub fn config(&self) -> &AuthConfig {
        &self.cfg
    }

    fn load<T: serde::de::DeserializeOwned>(&self, kind: &str, key: &str) -> Result<Option<T>> {
        match self.store.record(kind, key)? {
            None => Ok(None),
            Some(j) => serde_json::from_str(&j)
                .map(Some)
                .map_err(|e| AuthError::Internal(format!("stored {kind} {key:?}: {e}"))),
        }
    }

    fn save<T: Serialize>(&self, kind: &str, key: &str, value: &T) -> Result<()> {
        let j = serde_json::to_string(value).map_err(|e| AuthError::Internal(e.to_string()))?;
        self.store.put_record(kind, key, &j)?;
        Ok(())
    }

    // ---- users ----

    pub fn users(&self) -> Result<Vec<UserInfo>> {
        self.store
            .records(USER)?
            .into_iter()
            .map(|(k, j)| {
                serde_json::from_str::<User>(&j)
                    .map(|u| UserInfo::from(&u))
                    .map_err(|e| AuthError::Internal(format!("stored user {k:?}: {e}")))
            })
            .collect()
    }

    pub fn user(&self, name: &str) -> Result<Option<User>> {
        self.load(USER, name)
    }

    /// Adds a user. With `password: None` a one-time password is generated and returned; the user
    /// must change it at first login.
    pub fn add_user(
        &self,
        name: &str,
        role: Role,
        scope: Option<String>,
        password: Option<&str>,
        now: Timestamp,
    ) -> Result<(UserInfo, Option<String>)> {
        check_name("user name", name)?;
        if self.user(name)?.is_some() {
            return Err(AuthError::Conflict(format!("user {name:?} exists already")));
        }
        let (password, generated) = match password {
            Some(p) => {
                check_password(p)?;
                (p.to_owned(), None)
            }
            None => {
                let p = generate_password()?;
                (p.clone(), Some(p))
            }
        };
        let user = User {
            name: name.to_owned(),
            role,
            scope,
            password_hash: hash_password(&password)?,
            must_change_password: generated.is_some(),
            created: now,
        };
        self.save(USER, name, &user)?;
        Ok((UserInfo::from(&user), generated))
    }

    /// Sets a new password (and clears the one-time flag). Ends the user's other sessions.
    pub fn set_password(&self, name: &str, password: &str) -> Result<()> {
        check_password(password)?;
        let mut user = self
            .user(name)?
            .ok_or_else(|| AuthError::NotFound(format!("no user {name:?}")))?;
        user.password_hash = hash_password(password)?;
        user.must_change_password = false;
        self.save(USER, name, &user)?;
        self.end_sessions_of(name)?;
        Ok(())
    }

    /// Marks the password as one-time: the user must set a new one at the next login.
    pub fn require_password_change(&self, name: &str) -> Result<()> {
        let mut user = self
            .user(name)?
            .ok_or_else(|| AuthError::NotFound(format!("no user {name:?}")))?;
        user.must_change_password = true;
        self.save(USER, name, &user)
    }

    pub fn delete_user(&self, name: &str) -> Result<()> {
        if self.user(name)?.is_none() {
            return Err(AuthError::NotFound(format!("no user {name:?}")));
        }
        let admins = self
            .users()?
            .iter()
            .filter(|u| u.role == Role::Admin && u.name != name)
            .count();
        if admins == 0 && self.user(name)?.is_some_and(|u| u.role == Role::Admin) {
            return Err(AuthError::Conflict(format!(
                "{name:?} is the last admin; add another admin first"
            )));
        }
        self.store.delete_record(USER, name)?;
        self.end_sessions_of(name)?;
        Ok(())
    }

    /// On first start with authentication on and no user: creates `admin` with a one-time
    /// password and returns it to be printed once.
    pub fn bootstrap(&self, now: Timestamp) -> Result<Option<String>> {
        if !self.cfg.enabled || !self.store.records(USER)?.is_empty() {
            return Ok(None);
        }
        let (_, pw) = self.add_user("admin", Role::Admin, None, None, now)?;
        Ok(pw)
    }

    // ---- sessions ----

    /// Checks a password and opens a session; returns the session id (for a cookie) and the
    /// user. Slow on purpose (Argon2id): call it on a blocking thread.
    pub fn login(&self, name: &str, password: &str, now: Timestamp) -> Result<(String, UserInfo)> {
        let fail = || AuthError::Unauthenticated("wrong user name or password".into());
        let user = match self.user(name)? {
            Some(u) => u,
            None => {
                // Same work as a real check so that timing does not tell which names exist.
                let _ = verify_password(password, dummy_hash());
                return Err(fail());
            }
        };
        if !verify_password(password, &user.password_hash) {
            return Err(fail());
        }
        let id = random_hex(32)?;
        let session = Session {
            user: user.name.clone(),
            created: now,
            expires: now + i64::from(self.cfg.session_hours) * 3_600_000,
        };
        self.save(SESSION, &sha256_hex(&id), &session)?;
        Ok((id, UserInfo::from(&user)))
    }

    pub fn logout(&self, session_id: &str) -> Result<()> {
        self.store.delete_record(SESSION, &sha256_hex(session_id))?;
        Ok(())
    }

    fn end_sessions_of(&self, user: &str) -> Result<()> {
        for (k, j) in self.store.records(SESSION)? {
            if serde_json::from_str::<Session>(&j).is_ok_and(|s| s.user == user) {
                self.store.delete_record(SESSION, &k)?;
            }
        }
        Ok(())
    }

    /// Deletes expired sessions (called by maintenance); returns how many.
    pub fn prune_sessions(&self, now: Timestamp) -> Result<usize> {
        let mut n = 0;
        for (k, j) in self.store.records(SESSION)? {
            if serde_json::from_str::<Session>(&j).map_or(true, |s| s.expires <= now) {
                self.store.delete_record(SESSION, &k)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// The principal of a session cookie.
    pub fn session(&self, session_id: &str, now: Timestamp) -> Result<Principal> {
        let expired =
            || AuthError::Unauthenticated("the session expired or ended; log in again".into());
        if session_id.len() != 64 {
            return Err(expired());
        }
        let s: Session = self
            .load(SESSION, &sha256_hex(session_id))?
            .ok_or_else(expired)?;
        if s.expires <= now {
            return Err(expired());
        }
        let user = self.user(&s.user)?.ok_or_else(expired)?;
        Ok(Principal {
            name: user.name,
            role: user.role,
            scope: user.scope,
            must_change_password: user.must_change_password,
            kind: PrincipalKind::User,
        })
    }

    // ---- API tokens ----

    /// Issues a token; the returned secret is shown once and never again.
    pub fn create_token(
        &self,
        name: &str,
        role: Role,
        scope: Option<String>,
        expires: Option<Timestamp>,
        created_by: &str,
        now: Timestamp,
    ) -> Result<IssuedToken> {
        if name.trim().is_empty() || name.len() > 200 {
            return Err(AuthError::Invalid(
                "name: give the token a name of 1–200 characters (what it is for)".into(),
            ));
        }
        if expires.is_some_and(|e| e <= now) {
            return Err(AuthError::Invalid("expires: lies in the past".into()));
        }
        let id = random_hex(6)?;
        let secret = random_hex(32)?;
        let token = format!("gmb_{id}_{secret}");
        let record = ApiToken {
            id: id.clone(),
            name: name.trim().to_owned(),
            role,
            scope,
            created_by: created_by.to_owned(),
            created: now,
            expires,
            revoked: None,
        };
        let stored = StoredToken {
            record: record.clone(),
            secret_sha256: sha256_hex(&secret),
        };
        self.save(TOKEN, &id, &stored)?;
        Ok(IssuedToken { token, record })
    }

    pub fn tokens(&self) -> Result<Vec<ApiToken>> {
        self.store
            .records(TOKEN)?
            .into_iter()
            .map(|(k, j)| {
                serde_json::from_str::<StoredToken>(&j)
                    .map(|t| t.record)
                    .map_err(|e| AuthError::Internal(format!("stored token {k:?}: {e}")))
            })
            .collect()
    }

    pub fn revoke_token(&self, id: &str, now: Timestamp) -> Result<ApiToken> {
        let mut t: StoredToken = self
            .load(TOKEN, id)?
            .ok_or_else(|| AuthError::NotFound(format!("no token {id:?}")))?;
        if t.record.revoked.is_none() {
            t.record.revoked = Some(now);
            self.save(TOKEN, id, &t)?;
        }
        Ok(t.record)
    }

    /// The principal of a bearer token `gmb_<id>_<secret>`.
    pub fn token(&self, token: &str, now: Timestamp) -> Result<Principal> {
        let bad = || AuthError::Unauthenticated("unknown, revoked or expired API token".into());
        let rest = token.strip_prefix("gmb_").ok_or_else(bad)?;
        let (id, secret) = rest.split_once('_').ok_or_else(bad)?;
        if id.len() != 12 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let StoredToken {
            record: t,
            secret_sha256,
        } = self.load(TOKEN, id)?.ok_or_else(bad)?;
        if !same_digest(&sha256_hex(secret), &secret_sha256)
            || t.revoked.is_some()
            || t.expires.is_some_and(|e| e <= now)
        {
            return Err(bad());
        }
        Ok(Principal {
            name: format!("token:{}", t.id),
            role: t.role,
            scope: t.scope,
            must_change_password: false,
            kind: PrincipalKind::Token,
        })
    }

    // ---- audit ----

    /// Appends to the audit log. A failure is logged and counted by the caller, never hidden.
    pub fn audit(&self, entry: AuditEntry) -> Result<i64> {
        Ok(self.store.append_audit(&entry)?)
    }

    pub fn audit_log(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        Ok(self.store.audit(query)?)
    }
}

/// An Argon2id hash of a random password, checked when the user name is unknown.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        generate_password()
            .and_then(|p| hash_password(&p))
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use gemba_store::sqlite::SqliteStore;

    fn auth() -> (tempfile::TempDir, Auth) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("s.db"), Default::default()).expect("store");
        (
            dir,
            Auth::new(Arc::new(store), AuthConfig::default()).expect("auth"),
        )
    }

    #[test]
    fn passwords_are_argon2id_and_checked() {
        let (_d, a) = auth();
        a.add_user("ana", Role::Operator, None, Some("correct horse"), 0)
            .expect("add");
        let u = a.user("ana").expect("load").expect("exists");
        assert!(
            u.password_hash
                .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
        );
        assert!(!u.password_hash.contains("correct horse"));
        let (sid, info) = a.login("ana", "correct horse", 1000).expect("login");
        assert_eq!(info.role, Role::Operator);
        let p = a.session(&sid, 2000).expect("session");
        assert_eq!((p.name.as_str(), p.role), ("ana", Role::Operator));
        assert!(matches!(
            a.login("ana", "wrong horse!", 1000),
            Err(AuthError::Unauthenticated(_))
        ));
        assert!(matches!(
            a.login("nobody", "correct horse", 1000),
            Err(AuthError::Unauthenticated(_))
        ));
        // Sessions expire, and end when the password changes.
        assert!(a.session(&sid, 13 * 3_600_000).is_err());
        a.set_password("ana", "another good one").expect("set");
        assert!(a.session(&sid, 2000).is_err());
        assert!(a.login("ana", "another good one", 3000).is_ok());
    }

    #[test]
    fn dummy_hash_is_a_valid_argon2id_hash() {
        assert!(PasswordHash::new(dummy_hash()).is_ok());
    }

    #[test]
    fn bootstrap_makes_one_admin_with_a_one_time_password() {
        let (_d, a) = auth();
        let pw = a.bootstrap(0).expect("bootstrap").expect("a password");
        assert_eq!(pw.len(), 20);
        assert_eq!(a.bootstrap(0).expect("again"), None);
        let (sid, info) = a.login("admin", &pw, 0).expect("login");
        assert!(info.must_change_password);
        assert!(a.session(&sid, 1).expect("session").must_change_password);
        a.set_password("admin", "a new strong one").expect("change");
        assert!(!a.user("admin").expect("u").expect("u").must_change_password);
        assert!(matches!(
            a.delete_user("admin"),
            Err(AuthError::Conflict(_))
        ));
    }

    #[test]
    fn tokens_are_hashed_scoped_expiring_and_revocable() {
        let (_d, a) = auth();
        let t = a
            .create_token(
                "press gateway",
                Role::Operator,
                Some("acme/plant1/press/line1/press-1".into()),
                Some(10_000),
                "admin",
                0,
            )
            .expect("token");
        let stored = a.store.record(TOKEN, &t.record.id).expect("r").expect("r");
        assert!(!stored.contains(t.token.rsplit('_').next().expect("secret")));
        let p = a.token(&t.token, 5).expect("valid");
        assert_eq!(p.role, Role::Operator);
        assert!(p.may_touch("acme/plant1/press/line1/press-1/temp"));
        assert!(!p.may_touch("acme/plant1/press/line1/press-2/temp"));
        assert!(a.token(&t.token, 10_000).is_err(), "expired");
        let mut forged = t.token.clone();
        forged.pop();
        forged.push('0');
        if forged == t.token {
            forged.pop();
            forged.push('1');
        }
        assert!(a.token(&forged, 5).is_err(), "wrong secret");
        a.revoke_token(&t.record.id, 6).expect("revoke");
        assert!(a.token(&t.token, 7).is_err(), "revoked");
        assert!(a.token("gmb_zz_zz", 7).is_err());
        assert!(a.token("Bearer nonsense", 7).is_err());
    }

    #[test]
    fn audit_is_append_only() {
        let (_d, a) = auth();
        let e = |i: i64| AuditEntry {
            id: 0,
            ts: i,
            actor: "ana".into(),
            action: format!("POST /x/{i}"),
            target: String::new(),
            status: 200,
            detail: String::new(),
        };
        a.audit(e(1)).expect("1");
        a.audit(e(2)).expect("2");
        let q = AuditQuery {
            from: 0,
            to: 10,
            actor: Some("ana".into()),
            action_prefix: Some("POST".into()),
            limit: 10,
        };
        let log = a.audit_log(&q).expect("log");
        assert_eq!(log.iter().map(|e| e.ts).collect::<Vec<_>>(), [2, 1]);
    }
}
