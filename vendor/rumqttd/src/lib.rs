use std::fmt;

use bytes::Bytes;
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::{collections::HashMap, path::Path};

use serde::{Deserialize, Serialize};
use tracing_subscriber::{
    filter::EnvFilter,
    fmt::{
        format::{Format, Pretty},
        Layer,
    },
    layer::Layered,
    reload::Handle,
    Registry,
};

pub use link::alerts;
pub use link::local;
pub use link::meters;
pub use router::{Alert, Forward, IncomingMeter, Meter, Notification, OutgoingMeter, Router};
use segments::Storage;
pub use server::{Broker, LinkType, Server};

pub use self::router::shared_subs::Strategy;

mod link;
pub mod protocol;
mod router;
mod segments;
mod server;

pub type ConnectionId = usize;
pub type RouterId = usize;
pub type NodeId = usize;
pub type Topic = String;
pub type Filter = String;
pub type TopicId = usize;
pub type Offset = (u64, u64);
pub type Cursor = (u64, u64);

pub type ClientId = String;
pub type AuthUser = String;
pub type AuthPass = String;
pub type AuthHandler = Arc<
    dyn Fn(ClientId, AuthUser, AuthPass) -> Pin<Box<dyn std::future::Future<Output = bool> + Send>>
        + Send
        + Sync,
>;

/// What a client asks to do with a topic (Gemba patch, see GEMBA-PATCH.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclAction {
    /// Publish to a topic (also a retained message, and the last will given at connect).
    Publish,
    /// Subscribe with a topic filter (wildcards included).
    Subscribe,
}

/// `(action, topic) -> allowed`.
pub type AclCheck = dyn Fn(AclAction, &str) -> bool + Send + Sync;
/// Told of every refusal at the broker's enforcement points: `(action, topic)`.
pub type AclDenied = dyn Fn(AclAction, &str) + Send + Sync;

/// The topic access of one connection, decided once when it authenticated: called with the
/// action and the topic (or filter), answers whether it is allowed (Gemba patch).
#[derive(Clone)]
pub struct TopicAcl {
    check: Arc<AclCheck>,
    on_denied: Option<Arc<AclDenied>>,
    namespace: Option<String>,
    tag: Option<Arc<str>>,
}

impl TopicAcl {
    /// An access check, and a hook told of each refusal the broker enforces.
    pub fn new(check: Arc<AclCheck>, on_denied: Option<Arc<AclDenied>>) -> TopicAcl {
        TopicAcl {
            check,
            on_denied,
            namespace: None,
            tag: None,
        }
    }

    /// The connection's client id lives in this namespace (the principal it authenticated as):
    /// the broker knows it as `client_id@namespace`, so that a client of another principal with
    /// the same id neither takes over its session nor disconnects it. A namespace must not
    /// contain `+ $ # /`.
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> TopicAcl {
        self.namespace = Some(namespace.into());
        self
    }

    /// An opaque tag handed to the ingest hook with every message of the connection
    /// ([`IngestMessage::tag`]).
    pub fn with_tag(mut self, tag: impl Into<Arc<str>>) -> TopicAcl {
        self.tag = Some(tag.into());
        self
    }

    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    pub fn tag(&self) -> Option<&Arc<str>> {
        self.tag.as_ref()
    }

    /// Whether the action is allowed; a refusal is reported to the hook. Called where the broker
    /// enforces the access (connect, subscribe, publish), once per refusal.
    pub fn allows(&self, action: AclAction, topic: &str) -> bool {
        let ok = (self.check)(action, topic);
        if !ok {
            if let Some(hook) = &self.on_denied {
                hook(action, topic);
            }
        }
        ok
    }

    /// Whether the action would be allowed, without reporting anything (a look-ahead: the
    /// connection's link decides what to hand to the ingest hook; the router enforces).
    pub fn would_allow(&self, action: AclAction, topic: &str) -> bool {
        (self.check)(action, topic)
    }
}

/// One message a client published, handed to the [`IngestHandler`] before the broker routes and
/// acknowledges it (Gemba patch).
#[derive(Debug, Clone)]
pub struct IngestMessage {
    /// The client id as the broker knows it (`client_id@namespace` under a namespaced ACL).
    pub client_id: String,
    /// The tag of the connection's [`TopicAcl`], if any.
    pub tag: Option<Arc<str>>,
    /// The topic (a topic alias of MQTT 5 resolved).
    pub topic: String,
    pub payload: Bytes,
    /// 0, 1 or 2.
    pub qos: u8,
    pub retain: bool,
}

/// Takes the messages a client published in one read, in order, and answers once they are
/// durable: `true` lets the broker route and acknowledge them, `false` closes the client's
/// connection unacknowledged so that it sends them again (Gemba patch: a QoS 1/2 message is
/// acknowledged only after the application committed it).
pub type IngestHandler = Arc<
    dyn Fn(Vec<IngestMessage>) -> Pin<Box<dyn std::future::Future<Output = bool> + Send>>
        + Send
        + Sync,
>;

impl fmt::Debug for TopicAcl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TopicAcl")
    }
}

/// Gives the topic access of a client that passed authentication: `None` is no restriction
/// (Gemba patch).
pub type AclHandler = Arc<
    dyn Fn(
            ClientId,
            AuthUser,
            AuthPass,
        ) -> Pin<Box<dyn std::future::Future<Output = Option<TopicAcl>> + Send>>
        + Send
        + Sync,
>;

#[derive(Debug, Default, Serialize, Deserialize, Clone)]
pub struct Config {
    pub id: usize,
    pub router: RouterConfig,
    pub v4: Option<HashMap<String, ServerSettings>>,
    pub v5: Option<HashMap<String, ServerSettings>>,
    pub ws: Option<HashMap<String, ServerSettings>>,
    pub cluster: Option<ClusterSettings>,
    pub console: Option<ConsoleSettings>,
    pub bridge: Option<BridgeConfig>,
    pub prometheus: Option<PrometheusSetting>,
    pub metrics: Option<HashMap<MetricType, MetricSettings>>,
}

#[derive(Debug, Serialize, Deserialize, Clone)]
pub struct PrometheusSetting {
    #[deprecated(note = "Use listen instead")]
    port: Option<u16>,
    listen: Option<SocketAddr>,
    // How frequently to update metrics
    interval: u64,
}

// TODO: Change names without _ until config-rs issue is resolved
// https://github.com/mehcode/config-rs/issues/369
#[derive(Debug, Serialize, Deserialize, Clone)]
#[serde(untagged)]
pub enum TlsConfig {
    Rustls {
        capath: Option<String>,
        certpath: String,
        keypath: String,
    },
    NativeTls {
        pkcs12path: String,
        pkcs12pass: String,
    },
}

impl TlsConfig {
    // Returns true only if all of the file paths inside `TlsConfig` actually exists on file system.
    // NOTE: This doesn't verify if certificate files are in required format or not.
    pub fn validate_paths(&self) -> bool {
        match self {
            TlsConfig::Rustls {
                capath,
                certpath,
                keypath,
            } => {
                let ca = capath.is_none() || capath.as_ref().is_some_and(|v| Path::new(v).exists());

                ca && [certpath, keypath].iter().all(|v| Path::new(v).exists())
            }
            TlsConfig::NativeTls { pkcs12path, .. } => Path::new(pkcs12path).exists(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, Clone)]
pub struct ServerSettings {
    pub name: String,
    pub listen: SocketAddr,
    pub tls: Option<TlsConfig>,
    pub next_connection_delay_ms: u64,
    pub connections: ConnectionSettings,
}

impl ServerSettings {
    pub fn set_auth_handler<F, O>(&mut self, auth_fn: F)
    where
        F: Fn(ClientId, AuthUser, AuthPass) -> O + Send + Sync + 'static,
        O: IntoFuture<Output = bool> + 'static,
        O::IntoFuture: Send,
    {
        self.connections.set_auth_handler(auth_fn)
    }
}

#[derive(Debug, Serialize, Deserialize, Clone)]
pub struct BridgeConfig {
    pub name: String,
    pub addr: String,
    pub qos: u8,
    pub sub_path: Filter,
    pub reconnection_delay: u64,
    pub ping_delay: u64,
    pub connections: ConnectionSettings,
    #[serde(default)]
    pub transport: Transport,
}

#[derive(Serialize, Deserialize, Clone)]
pub struct ConnectionSettings {
    pub connection_timeout_ms: u16,
    pub max_payload_size: usize,
    pub max_inflight_count: usize,
    pub auth: Option<HashMap<String, String>>,
    #[serde(skip)]
    pub external_auth: Option<AuthHandler>,
    #[serde(default)]
    pub dynamic_filters: bool,
    /// Topic access per connection (Gemba patch).
    #[serde(skip)]
    pub acl_handler: Option<AclHandler>,
    /// Sees every publish before it is routed and acknowledged (Gemba patch).
    #[serde(skip)]
    pub ingest_handler: Option<IngestHandler>,
}

impl ConnectionSettings {
    pub fn set_auth_handler<F, O>(&mut self, auth_fn: F)
    where
        F: Fn(ClientId, AuthUser, AuthPass) -> O + Send + Sync + 'static,
        O: IntoFuture<Output = bool> + 'static,
        O::IntoFuture: Send,
    {
        self.external_auth = Some(Arc::new(move |client_id, username, password| {
            let auth = auth_fn(client_id, username, password).into_future();
            Box::pin(auth)
        }));
    }

    /// Sets the handler that gives an authenticated client its topic access (Gemba patch).
    pub fn set_acl_handler<F, O>(&mut self, acl_fn: F)
    where
        F: Fn(ClientId, AuthUser, AuthPass) -> O + Send + Sync + 'static,
        O: IntoFuture<Output = Option<TopicAcl>> + 'static,
        O::IntoFuture: Send,
    {
        self.acl_handler = Some(Arc::new(move |client_id, username, password| {
            let acl = acl_fn(client_id, username, password).into_future();
            Box::pin(acl)
        }));
    }
}

impl fmt::Debug for ConnectionSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionSettings")
            .field("connection_timeout_ms", &self.connection_timeout_ms)
            .field("max_payload_size", &self.max_payload_size)
            .field("max_inflight_count", &self.max_inflight_count)
            .field("auth", &self.auth)
            .field("external_auth", &self.external_auth.is_some())
            .field("acl_handler", &self.acl_handler.is_some())
            .field("ingest_handler", &self.ingest_handler.is_some())
            .field("dynamic_filters", &self.dynamic_filters)
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterSettings {
    /// Id with which this node connects to other nodes of the mesh
    pub node_id: NodeId,
    /// Address on which this broker is listening for mesh connections
    pub listen: String,
    /// Address of clusters that this node has to initiate connection
    pub seniors: Vec<(ConnectionId, String)>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct RouterConfig {
    pub max_connections: usize,
    pub max_outgoing_packet_count: u64,
    pub max_segment_size: usize,
    pub max_segment_count: usize,
    pub custom_segment: Option<HashMap<String, SegmentConfig>>,
    pub initialized_filters: Option<Vec<Filter>>,
    // defaults to Round Robin
    #[serde(default)]
    pub shared_subscriptions_strategy: Strategy,
    /// Most bytes (topics and payloads) held as retained messages; a retained publish beyond it
    /// is delivered but not retained, and logged (Gemba patch; `None`: no limit, as upstream).
    #[serde(default)]
    pub max_retained_bytes: Option<usize>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct SegmentConfig {
    pub max_segment_size: usize,
    pub max_segment_count: usize,
}

type ReloadHandle = Handle<EnvFilter, Layered<Layer<Registry, Pretty, Format<Pretty>>, Registry>>;

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct ConsoleSettings {
    pub listen: String,
    #[serde(skip)]
    filter_handle: Option<ReloadHandle>,
}

impl ConsoleSettings {
    pub fn set_filter_reload_handle(&mut self, handle: ReloadHandle) {
        self.filter_handle.replace(handle);
    }
}

#[derive(Debug, Serialize, Deserialize, Clone, Default)]
pub enum Transport {
    #[serde(rename = "tcp")]
    #[default]
    Tcp,
    #[serde(rename = "tls")]
    Tls {
        ca: PathBuf,
        client_auth: Option<ClientAuth>,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClientAuth {
    certs: PathBuf,
    key: PathBuf,
}

#[derive(Debug, Serialize, Deserialize, Clone, Hash, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MetricType {
    Meters,
    Alerts,
}

#[derive(Debug, Serialize, Deserialize, Clone)]
pub struct MetricSettings {
    push_interval: u64,
}
