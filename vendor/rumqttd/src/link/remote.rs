use crate::link::local::{LinkError, LinkRx, LinkTx};
use crate::link::network;
use crate::link::network::Network;
use crate::local::LinkBuilder;
use crate::protocol::{ConnAck, Connect, ConnectReturnCode, Login, Packet, Protocol};
use crate::router::{Event, Notification};
use crate::{AclAction, ConnectionId, ConnectionSettings, IngestHandler, IngestMessage, TopicAcl};

use flume::{RecvError, SendError, Sender, TrySendError};
use bytes::Bytes;
use std::cmp::min;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::time::error::Elapsed;
use tokio::{select, time};
use tracing::{trace, Span};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("I/O")]
    Io(#[from] io::Error),
    #[error("Zero keep alive")]
    ZeroKeepAlive,
    #[error("Not connect packet")]
    NotConnectPacket(Packet),
    #[error("Network {0}")]
    Network(#[from] network::Error),
    #[error("Timeout")]
    Timeout(#[from] Elapsed),
    #[error("Channel send error")]
    Send(#[from] SendError<(ConnectionId, Event)>),
    #[error("Channel recv error")]
    Recv(#[from] RecvError),
    #[error("Got new session, disconnecting old one")]
    SessionEnd,
    #[error("Persistent session requires valid client id")]
    InvalidClientId,
    #[error("Unexpected router message")]
    NotConnectionAck,
    #[error("ConnAck error {0}")]
    ConnectionAck(String),
    #[error("Authentication error")]
    InvalidAuth,
    #[error("Last will topic {0} not allowed for this client")]
    WillNotAllowed(String),
    #[error("Channel try send error")]
    TrySend(#[from] TrySendError<(ConnectionId, Event)>),
    #[error("Link error = {0}")]
    Link(#[from] LinkError),
    #[error("Publish topic {0:?} is not a valid topic name (wildcards, or an unknown alias)")]
    InvalidTopic(String),
    #[error("The application could not store the published messages; closing unacknowledged")]
    IngestFailed,
}

/// Commit of the messages of one read, awaited before they are routed (Gemba patch).
type PendingIngest = Pin<Box<dyn Future<Output = bool> + Send>>;

/// Orchestrates between Router and Network.
pub struct RemoteLink<P> {
    connect: Connect,
    pub(crate) connection_id: ConnectionId,
    network: Network<P>,
    link_tx: LinkTx,
    link_rx: LinkRx,
    notifications: VecDeque<Notification>,
    pub(crate) will_delay_interval: u32,
    /// Gemba patch: publishes go to the ingest hook, and are routed (and so acknowledged) only
    /// once it answered that they are durable.
    ingest: Option<IngestHandler>,
    acl: Option<TopicAcl>,
    client_id: String,
    /// MQTT 5 topic aliases of this connection, to name the topic of an aliased publish.
    aliases: HashMap<u16, Bytes>,
}

impl<P: Protocol> RemoteLink<P> {
    pub async fn new(
        router_tx: Sender<(ConnectionId, Event)>,
        tenant_id: Option<String>,
        mut network: Network<P>,
        connect_packet: Packet,
        dynamic_filters: bool,
        assigned_client_id: Option<String>,
        acl: Option<TopicAcl>,
        ingest: Option<IngestHandler>,
    ) -> Result<RemoteLink<P>, Error> {
        let Packet::Connect(connect, props, lastwill, lastwill_props, _) = connect_packet else {
            return Err(Error::NotConnectPacket(connect_packet));
        };

        // Register this connection with the router. Router replys with ack which if ok will
        // start the link. Router can sometimes reject the connection (ex max connection limit)
        let client_id = assigned_client_id.as_ref().unwrap_or(&connect.client_id);
        let clean_session = connect.clean_session;

        let topic_alias_max = props.as_ref().and_then(|p| p.topic_alias_max);
        let session_expiry = props
            .as_ref()
            .and_then(|p| p.session_expiry_interval)
            .unwrap_or(0);

        let delay_interval = lastwill_props
            .as_ref()
            .and_then(|f| f.delay_interval)
            .unwrap_or(0);

        // The Server delays publishing the Client’s Will Message until
        // the Will Delay Interval has passed or the Session ends, whichever happens first
        let will_delay_interval = min(session_expiry, delay_interval);

        let (link_tx, link_rx, notification) = LinkBuilder::new(client_id, router_tx)
            .tenant_id(tenant_id)
            .clean_session(clean_session)
            .last_will(lastwill)
            .last_will_properties(lastwill_props)
            .dynamic_filters(dynamic_filters)
            .topic_alias_max(topic_alias_max.unwrap_or(0))
            .acl(acl.clone())
            .build()?;
        let link_client_id = client_id.clone();

        let id = link_rx.id();
        Span::current().record("connection_id", id);

        if let Some(mut packet) = notification.into() {
            if let Packet::ConnAck(_ack, props) = &mut packet {
                let mut new_props = props.clone().unwrap_or_default();
                new_props.assigned_client_identifier = assigned_client_id;
                *props = Some(new_props);
                network.write(packet).await?;
            }
        }

        Ok(RemoteLink {
            connect,
            connection_id: id,
            network,
            link_tx,
            link_rx,
            notifications: VecDeque::with_capacity(100),
            will_delay_interval,
            ingest,
            acl,
            client_id: link_client_id,
            aliases: HashMap::new(),
        })
    }

    pub async fn start(&mut self) -> Result<(), Error> {
        self.network.set_keepalive(self.connect.keep_alive);

        // Gemba patch: packets read from the network wait in `staged` while the ingest hook
        // commits their publishes (`pending`); the network is not read meanwhile (back-pressure
        // on the client), but the router's notifications keep flowing.
        let mut staged: VecDeque<Packet> = VecDeque::new();
        let mut pending: Option<PendingIngest> = None;
        // Note:
        // Shouldn't result in bounded queue deadlocks because of blocking n/w send
        loop {
            select! {
                o = self.network.read(), if pending.is_none() => {
                    let packet = o?;
                    staged.push_back(packet);
                    self.network.readv(&mut staged)?;
                    if self.ingest.is_some() {
                        self.read_ready(&mut staged).await?;
                    }
                    trace!("Packets read from network, count = {}", staged.len());
                    match self.to_ingest(&staged)? {
                        Some(messages) => {
                            let handler = self.ingest.as_ref().expect("to_ingest checked");
                            pending = Some(handler(messages));
                        }
                        None => self.forward(&mut staged).await?,
                    }
                }
                durable = wait_pending(&mut pending), if pending.is_some() => {
                    pending = None;
                    if !durable {
                        return Err(Error::IngestFailed);
                    }
                    self.forward(&mut staged).await?;
                }
                // Receive from router when previous when state isn't in collision
                // due to previously received data request
                o = self.link_rx.exchange(&mut self.notifications) => {
                    o?;
                    let mut packets = VecDeque::new();
                    let mut unscheduled = false;

                    for notif in self.notifications.drain(..) {
                        if let Some(packet) = notif.into() {
                            packets.push_back(packet);
                        } else {
                            unscheduled = true;
                        }

                    }
                    self.network.writev(packets).await?;
                    if unscheduled {
                        self.link_rx.wake().await?;
                    }
                }
            }
        }
    }

    /// Gemba patch: adds to `staged` what the socket already holds, without waiting, up to
    /// [`STAGED_BYTES`] of payload or the connection's packet limit. One socket read is about
    /// 10 KB, and each hand-over to the ingest hook waits for a commit: a fast publisher of large
    /// messages would otherwise get a handful of messages per commit.
    async fn read_ready(&mut self, staged: &mut VecDeque<Packet>) -> Result<(), Error> {
        let limit = self.network.max_connection_buffer_len();
        let mut bytes: usize = staged.iter().map(payload_len).sum();
        while bytes < STAGED_BYTES && staged.len() < limit {
            let before = staged.len();
            match poll_once(self.network.read()).await {
                Some(Ok(packet)) => staged.push_back(packet),
                // Not now: what is staged is handed over first, and the next read meets the
                // error again (a closed socket, bad bytes), as without this look-ahead.
                Some(Err(_)) | None => break,
            }
            self.network.readv(staged)?;
            bytes += staged.iter().skip(before).map(payload_len).sum::<usize>();
        }
        Ok(())
    }

    /// Hands the staged packets to the router.
    async fn forward(&mut self, staged: &mut VecDeque<Packet>) -> Result<(), Error> {
        self.link_tx.buffer().extend(staged.drain(..));
        self.link_tx.notify().await?;
        Ok(())
    }

    /// The publishes of `staged` for the ingest hook (`None` without a hook or without a
    /// publish to hand over). A publish to a topic outside the connection's access ends the
    /// list: the router refuses it and closes the connection, so it and what follows are never
    /// acknowledged. A topic name with wildcards, or an alias never set, is a protocol violation:
    /// the connection is closed (MQTT 3.1.1 §4.7.3, MQTT 5 §3.3.2.3.4) instead of acknowledging
    /// a message that would be dropped.
    fn to_ingest(&mut self, staged: &VecDeque<Packet>) -> Result<Option<Vec<IngestMessage>>, Error> {
        if self.ingest.is_none() {
            return Ok(None);
        }
        let mut out = Vec::new();
        for packet in staged {
            let Packet::Publish(publish, props) = packet else {
                continue;
            };
            let alias = props.as_ref().and_then(|p| p.topic_alias);
            let topic = match (publish.topic.is_empty(), alias) {
                (false, Some(a)) => {
                    self.aliases.insert(a, publish.topic.clone());
                    publish.topic.clone()
                }
                (false, None) => publish.topic.clone(),
                (true, Some(a)) => match self.aliases.get(&a) {
                    Some(t) => t.clone(),
                    None => return Err(Error::InvalidTopic(format!("alias {a}"))),
                },
                (true, None) => return Err(Error::InvalidTopic(String::new())),
            };
            let Ok(topic) = std::str::from_utf8(&topic) else {
                return Err(Error::InvalidTopic(String::from_utf8_lossy(&topic).into_owned()));
            };
            if topic.contains(['+', '#']) {
                return Err(Error::InvalidTopic(topic.to_owned()));
            }
            if self
                .acl
                .as_ref()
                .is_some_and(|acl| !acl.would_allow(AclAction::Publish, topic))
            {
                break;
            }
            out.push(IngestMessage {
                client_id: self.client_id.clone(),
                tag: self.acl.as_ref().and_then(|a| a.tag().cloned()),
                topic: topic.to_owned(),
                payload: publish.payload.clone(),
                qos: publish.qos as u8,
                retain: publish.retain,
            });
        }
        Ok((!out.is_empty()).then_some(out))
    }
}

/// Waits for the pending commit (only polled while there is one).
async fn wait_pending(pending: &mut Option<PendingIngest>) -> bool {
    match pending {
        Some(f) => f.as_mut().await,
        None => std::future::pending().await,
    }
}

/// Read MQTT connect packet from network and verify it.
/// authentication and checks are done here.
/// Returns the packet and the client's topic access (Gemba patch).
pub async fn mqtt_connect<P>(
    config: Arc<ConnectionSettings>,
    network: &mut Network<P>,
) -> Result<(Packet, Option<TopicAcl>), Error>
where
    P: Protocol,
{
    // Wait for MQTT connect packet and error out if it's not received in time to prevent
    // DOS attacks by filling total connections that the server can handle with idle open
    // connections which results in server rejecting new connections
    let connection_timeout_ms = config.connection_timeout_ms.into();
    let packet = time::timeout(Duration::from_millis(connection_timeout_ms), async {
        let packet = network.read().await?;
        Ok::<_, network::Error>(packet)
    })
    .await??;

    let (connect, _props, will, login) = match packet {
        Packet::Connect(ref connect, ref props, ref will, _, ref login) => {
            (connect, props, will, login)
        }
        packet => return Err(Error::NotConnectPacket(packet)),
    };

    Span::current().record("client_id", &connect.client_id);

    // Gemba patch: a client id the router cannot take is refused with a CONNACK here (the router
    // dropped such a connection silently, and a second try panicked the listener).
    if !valid_client_id(&connect.client_id) {
        let ack = ConnAck {
            session_present: false,
            code: ConnectReturnCode::ClientIdentifierNotValid,
        };
        network.write(Packet::ConnAck(ack, None)).await?;
        return Err(Error::InvalidClientId);
    }

    // Gemba patch: a refused login is answered with a CONNACK, so that a client can tell a
    // refusal from a network fault.
    if let Err(e) = handle_auth(config.clone(), login.as_ref(), &connect.client_id).await {
        let ack = ConnAck {
            session_present: false,
            code: ConnectReturnCode::BadUserNamePassword,
        };
        network.write(Packet::ConnAck(ack, None)).await?;
        return Err(e);
    }

    // Gemba patch: the client's topic access, and its last will checked against it.
    let acl = match (&config.acl_handler, login) {
        (Some(handler), Some(login)) => {
            handler(
                connect.client_id.clone(),
                login.username.clone(),
                login.password.clone(),
            )
            .await
        }
        _ => None,
    };
    if let (Some(acl), Some(will)) = (&acl, will) {
        let topic = String::from_utf8_lossy(&will.topic).into_owned();
        if !acl.allows(AclAction::Publish, &topic) {
            let ack = ConnAck {
                session_present: false,
                code: ConnectReturnCode::NotAuthorized,
            };
            network.write(Packet::ConnAck(ack, None)).await?;
            return Err(Error::WillNotAllowed(topic));
        }
    }

    // When keep_alive feature is disabled client can live forever, which is not good in
    // distributed broker context so currenlty we don't allow it.
    if connect.keep_alive == 0 {
        return Err(Error::ZeroKeepAlive);
    }

    let empty_client_id = connect.client_id.is_empty();
    let clean_session = connect.clean_session;

    if empty_client_id && !clean_session {
        let ack = ConnAck {
            session_present: false,
            code: ConnectReturnCode::ClientIdentifierNotValid,
        };

        let packet = Packet::ConnAck(ack, None);
        network.write(packet).await?;

        return Err(Error::InvalidClientId);
    }

    // Gemba patch: a client id in the principal's namespace, so that devices of different
    // principals with the same id do not kick each other (an empty id is assigned a unique one).
    let mut packet = packet;
    if let (Some(ns), Packet::Connect(connect, ..)) =
        (acl.as_ref().and_then(|a| a.namespace()), &mut packet)
    {
        if !connect.client_id.is_empty() {
            connect.client_id = format!("{}@{ns}", connect.client_id);
        }
    }

    // Ok((connect, props, lastwill, lastwill_props))
    Ok((packet, acl))
}

/// Gemba patch: the most payload bytes one hand-over to the ingest hook gathers from the socket
/// beyond its first read ([`RemoteLink::read_ready`]).
const STAGED_BYTES: usize = 1 << 20;

fn payload_len(packet: &Packet) -> usize {
    match packet {
        Packet::Publish(p, _) => p.payload.len(),
        _ => 0,
    }
}

/// Polls `f` once: its output if it is ready now, `None` if it would wait (then it is dropped;
/// `Network::read` keeps what it read in its buffer).
async fn poll_once<F: Future>(f: F) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match f.as_mut().poll(cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

/// Whether the router accepts a client id: none of `+ $ # /` (Gemba patch; the router's own
/// check is `validate_clientid`).
pub(crate) fn valid_client_id(client_id: &str) -> bool {
    !client_id.contains(['+', '$', '#', '/'])
}

async fn handle_auth(
    config: Arc<ConnectionSettings>,
    login: Option<&Login>,
    client_id: &str,
) -> Result<(), Error> {
    if config.auth.is_none() && config.external_auth.is_none() {
        return Ok(());
    }

    // if authentication is configured and connect packet doesn't have login details
    // return an error
    let Some(login) = login else {
        return Err(Error::InvalidAuth);
    };

    let username = &login.username;
    let password = &login.password;

    if let Some(auth) = &config.external_auth {
        if !auth(
            client_id.to_owned(),
            username.to_owned(),
            password.to_owned(),
        )
        .await
        {
            return Err(Error::InvalidAuth);
        }

        return Ok(());
    }

    if let Some(pairs) = &config.auth {
        if let Some(stored_password) = pairs.get(username) {
            if stored_password.as_bytes().ct_eq(password.as_bytes()).into() {
                return Ok(());
            }
        }

        return Err(Error::InvalidAuth);
    }

    Err(Error::InvalidAuth)
}

#[cfg(test)]
mod tests {
    use std::{collections::HashMap, sync::Arc};

    use crate::{protocol::Login, ConnectionSettings};

    use super::handle_auth;

    fn config() -> ConnectionSettings {
        ConnectionSettings {
            connection_timeout_ms: 0,
            max_payload_size: 0,
            max_inflight_count: 0,
            auth: None,
            external_auth: None,
            acl_handler: None,
            ingest_handler: None,
            dynamic_filters: false,
        }
    }

    fn login() -> Login {
        Login {
            username: "u".to_owned(),
            password: "p".to_owned(),
        }
    }

    #[tokio::test]
    async fn no_login_no_auth() {
        let cfg = Arc::new(config());
        let r = handle_auth(cfg, None, "").await;
        assert!(r.is_ok());
    }

    #[tokio::test]
    async fn some_login_no_auth() {
        let cfg = Arc::new(config());
        let login = login();
        let r = handle_auth(cfg, Some(&login), "").await;
        assert!(r.is_ok());
    }

    #[tokio::test]
    async fn login_matches_static_auth() {
        let login = login();
        let mut map = HashMap::<String, String>::new();
        map.insert(login.username.clone(), login.password.clone());

        let mut cfg = config();
        cfg.auth = Some(map);

        let r = handle_auth(Arc::new(cfg), Some(&login), "").await;
        assert!(r.is_ok());
    }

    #[tokio::test]
    async fn login_fails_static_no_external() {
        let login = login();
        let mut map = HashMap::<String, String>::new();
        map.insert("wrong".to_owned(), "wrong".to_owned());

        let mut cfg = config();
        cfg.auth = Some(map);

        let r = handle_auth(Arc::new(cfg), Some(&login), "").await;
        assert!(r.is_err());
    }

    #[tokio::test]
    async fn login_fails_static_matches_external() {
        let login = login();

        let mut map = HashMap::<String, String>::new();
        map.insert("wrong".to_owned(), "wrong".to_owned());

        let dynamic = |_: String, _: String, _: String| async { true };

        let mut cfg = config();
        cfg.auth = Some(map);
        cfg.set_auth_handler(dynamic);

        let r = handle_auth(Arc::new(cfg), Some(&login), "").await;
        assert!(r.is_ok());
    }

    #[tokio::test]
    async fn login_fails_static_fails_external() {
        let login = login();

        let mut map = HashMap::<String, String>::new();
        map.insert("wrong".to_owned(), "wrong".to_owned());

        let dynamic = |_: String, _: String, _: String| async { false };

        let mut cfg = config();
        cfg.auth = Some(map);
        cfg.set_auth_handler(dynamic);

        let r = handle_auth(Arc::new(cfg), Some(&login), "").await;
        assert!(r.is_err());
    }

    #[tokio::test]
    async fn external_auth_clousre_or_fnptr_type_check_or_fail_compile() {
        let closure = |_: String, _: String, _: String| async { false };
        async fn fnptr(_: String, _: String, _: String) -> bool {
            true
        }

        let mut cfg = config();
        cfg.set_auth_handler(closure);
        cfg.set_auth_handler(fnptr);
    }
}
