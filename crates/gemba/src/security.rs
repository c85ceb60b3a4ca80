//! `gemba user`, `gemba token` and `gemba cert` (docs/SECURITY.md).
//!
//! Users and tokens are written straight into the store of the configuration (or `--store`), so
//! the first admin can be made before the server ever starts; a running server sees them at once.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use gemba_core::time::format_rfc3339;
use gemba_engine::Config;
use gemba_engine::auth::{Auth, Role};
use gemba_store::sqlite::SqliteStore;
use gemba_store::{AuditEntry, Store};

/// Which store to change.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Configuration file of the server (its storage.path is used).
    #[arg(short, long, env = "GEMBA_CONFIG")]
    pub config: Option<PathBuf>,
    /// The store file itself (e.g. gemba-demo/gemba.db), instead of the configuration's.
    #[arg(long)]
    pub store: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Add a user. Without --password-stdin a one-time password is printed, to be changed at the
    /// first sign-in.
    Add {
        name: String,
        /// viewer, operator, engineer or admin.
        #[arg(long)]
        role: String,
        /// Asset path the user is limited to (e.g. acme/plant1/press/line1).
        #[arg(long)]
        scope: Option<String>,
        /// Read the password from standard input (at least 10 characters).
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List users.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Set a new one-time password for a user (or one from standard input).
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Delete a user (not the last admin).
    Delete {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Issue an API token for a machine, gateway or script; it is printed once.
    Create {
        /// What it is for, e.g. "press-1 PLC gateway".
        name: String,
        #[arg(long)]
        role: String,
        /// Asset path the token may send data for (e.g. acme/plant1/press/line1/press-1).
        #[arg(long)]
        scope: Option<String>,
        /// Days until the token expires, 1 to 3650 (default: never).
        #[arg(long)]
        expires_days: Option<f64>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List tokens (secrets are never shown again).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a token by its id.
    Revoke {
        id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum CertCmd {
    /// Make a trial CA and a server certificate signed by it (PEM): ca.pem, server.pem and
    /// server.key in --out. Clients trust ca.pem (curl --cacert, mosquitto_pub --cafile).
    SelfSigned {
        /// Folder to write into.
        #[arg(long, default_value = "gemba-tls")]
        out: PathBuf,
        /// Host names and IP addresses the certificate is valid for.
        #[arg(long = "host", default_values_t = ["localhost".to_owned(), "127.0.0.1".to_owned()])]
        hosts: Vec<String>,
        /// Days the certificates are valid.
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
}

fn open(args: &StoreArgs) -> anyhow::Result<(Auth, Arc<dyn Store>)> {
    let config = Config::load(args.config.as_deref())?;
    let path = args.store.clone().unwrap_or(config.storage.path.clone());
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&path, Default::default())
            .with_context(|| format!("cannot open the store {}", path.display()))?,
    );
    Ok((Auth::new(store.clone(), config.auth)?, store))
}

fn role(s: &str) -> anyhow::Result<Role> {
    s.parse::<Role>()
        .map_err(|e| anyhow::anyhow!("--role: {e}"))
}

fn stdin_password() -> anyhow::Result<String> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .context("cannot read the password from standard input")?;
    Ok(s.trim_end_matches(['\r', '\n']).to_owned())
}

fn now() -> i64 {
    gemba_lab::simulate::now_ms()
}

fn whoami() -> String {
    std::env::var("USER").map_or_else(|_| "cli".to_owned(), |u| format!("cli:{u}"))
}

fn audit(auth: &Auth, action: &str, target: &str, detail: String) -> anyhow::Result<()> {
    auth.audit(AuditEntry {
        id: 0,
        ts: now(),
        actor: whoami(),
        action: action.to_owned(),
        target: target.to_owned(),
        status: 0,
        detail,
    })
    .context("cannot write the audit log")?;
    Ok(())
}

pub fn user(cmd: UserCmd) -> anyhow::Result<()> {
    match cmd {
        UserCmd::Add {
            name,
            role: r,
            scope,
            password_stdin,
            store,
        } => {
            let r = role(&r)?;
            let (auth, _) = open(&store)?;
            let pw = if password_stdin {
                Some(stdin_password()?)
            } else {
                None
            };
            let (info, one_time) = auth.add_user(&name, r, scope, pw.as_deref(), now())?;
            audit(&auth, "user.add", &name, format!("role {r}"))?;
            println!("added user {} with role {}", info.name, info.role);
            if let Some(p) = one_time {
                println!("one-time password (shown once; to be changed at the first sign-in): {p}");
            }
        }
        UserCmd::List { store } => {
            let (auth, _) = open(&store)?;
            println!(
                "{:<24} {:<9} {:<8} {:<20} scope",
                "name", "role", "one-time", "created"
            );
            for u in auth.users()? {
                println!(
                    "{:<24} {:<9} {:<8} {:<20} {}",
                    u.name,
                    u.role,
                    if u.must_change_password { "yes" } else { "no" },
                    format_rfc3339(u.created),
                    u.scope.unwrap_or_default()
                );
            }
        }
        UserCmd::Passwd {
            name,
            password_stdin,
            store,
        } => {
            let (auth, _) = open(&store)?;
            if password_stdin {
                auth.set_password(&name, &stdin_password()?)?;
                audit(&auth, "user.password", &name, "set".into())?;
                println!("password of {name} changed; their sessions ended");
            } else {
                let p = gemba_engine::auth::generate_password()?;
                auth.set_password(&name, &p)?;
                auth.require_password_change(&name)?;
                audit(&auth, "user.password", &name, "one-time password".into())?;
                println!("one-time password of {name} (shown once): {p}");
            }
        }
        UserCmd::Delete { name, store } => {
            let (auth, _) = open(&store)?;
            auth.delete_user(&name)?;
            audit(&auth, "user.delete", &name, String::new())?;
            println!("deleted user {name}");
        }
    }
    Ok(())
}

pub fn token(cmd: TokenCmd) -> anyhow::Result<()> {
    match cmd {
        TokenCmd::Create {
            name,
            role: r,
            scope,
            expires_days,
            store,
        } => {
            let r = role(&r)?;
            let (auth, _) = open(&store)?;
            let t = now();
            let expires = match expires_days {
                None => None,
                Some(d) if d.is_finite() && (1.0..=3650.0).contains(&d) => {
                    Some(t + (d * 86_400_000.0) as i64)
                }
                Some(d) => bail!(
                    "--expires-days {d}: must be between 1 and 3650 (leave it out for a token that does not expire)"
                ),
            };
            let issued = auth.create_token(&name, r, scope, expires, &whoami(), t)?;
            audit(
                &auth,
                "token.create",
                &format!("token:{}", issued.record.id),
                format!("{} role {r}", issued.record.name),
            )?;
            eprintln!(
                "token {} ({}, role {r}) — shown once; send it as Authorization: Bearer <token>, \
                 as GEMBA_TOKEN for the CLI, or as the MQTT password:",
                issued.record.id, issued.record.name
            );
            println!("{}", issued.token);
        }
        TokenCmd::List { store } => {
            let (auth, _) = open(&store)?;
            println!(
                "{:<13} {:<9} {:<8} {:<20} {:<20} name",
                "id", "role", "state", "created", "expires"
            );
            let t = now();
            for k in auth.tokens()? {
                let state = if k.revoked.is_some() {
                    "revoked"
                } else if k.expires.is_some_and(|e| e <= t) {
                    "expired"
                } else {
                    "valid"
                };
                println!(
                    "{:<13} {:<9} {:<8} {:<20} {:<20} {}",
                    k.id,
                    k.role,
                    state,
                    format_rfc3339(k.created),
                    k.expires
                        .map(format_rfc3339)
                        .unwrap_or_else(|| "never".into()),
                    k.name
                );
            }
        }
        TokenCmd::Revoke { id, store } => {
            let (auth, _) = open(&store)?;
            let t = auth.revoke_token(&id, now())?;
            audit(
                &auth,
                "token.revoke",
                &format!("token:{id}"),
                t.name.clone(),
            )?;
            println!("revoked token {id} ({})", t.name);
        }
    }
    Ok(())
}

pub fn cert(cmd: CertCmd) -> anyhow::Result<()> {
    let CertCmd::SelfSigned { out, hosts, days } = cmd;
    let (ca, server, key) = self_signed(&hosts, days)?;
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    write(&out.join("ca.pem"), &ca, 0o644)?;
    write(&out.join("server.pem"), &server, 0o644)?;
    write(&out.join("server.key"), &key, 0o600)?;
    let d = out.display();
    println!(
        "wrote {d}/ca.pem (trial CA), {d}/server.pem and {d}/server.key for {}\n\
         In gemba.toml:\n  [server.tls]\n  cert_file = \"{d}/server.pem\"\n  key_file = \"{d}/server.key\"\n\
         Clients: curl --cacert {d}/ca.pem https://{}:8080/healthz",
        hosts.join(", "),
        hosts.first().map_or("localhost", String::as_str)
    );
    Ok(())
}

fn write(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot set the permissions of {}", path.display()))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    Ok(())
}

/// A CA and a server certificate for `hosts` signed by it: (ca PEM, server PEM, server key PEM).
pub fn self_signed(hosts: &[String], days: u32) -> anyhow::Result<(String, String, String)> {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    if hosts.is_empty() {
        bail!("--host: give at least one host name or address");
    }
    let start = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    let end = start + time::Duration::days(i64::from(days.max(1)));
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Gemba trial CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = start;
    ca_params.not_after = end;
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    let mut params =
        CertificateParams::new(hosts.to_vec()).map_err(|e| anyhow::anyhow!("--host: {e}"))?;
    params
        .distinguished_name
        .push(DnType::CommonName, hosts[0].clone());
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.not_before = start;
    params.not_after = end;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca)?;
    Ok((ca.pem(), cert.pem(), key.serialize_pem()))
}
