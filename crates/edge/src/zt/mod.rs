//! Zero-trust clients (`burrow client`): enrolled devices that connect to
//! the tunnel endpoint like connectors (QUIC), register as the client role
//! with their device credentials, and then open one stream per
//! flow toward the edge. A destination inside a network routed to a tunnel
//! in the client's virtual network goes through that tunnel (the connector
//! dials it); anything else leaves to the Internet from this colo, from
//! the source address the first matching egress policy picks. Each
//! finished flow writes one network session log record.

pub(crate) mod flow;
pub(crate) mod identity;
pub(crate) mod private;

use crate::context::Ctx;
use burrow_proto::v2::{Registration, Role};
use burrow_proto::{Refusal, RefuseCode};
use burrow_transport::{BoxStream, EdgeConn};
use identity::Identity;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};

/// The virtual network a client names in its registration, if its user
/// may use it (the default vnet: everyone; any other: the users and
/// groups its access lists name).
pub(crate) fn requested_vnet(
    ctx: &Ctx,
    vnet: Option<&str>,
    email: &str,
    groups: &[String],
) -> Result<Option<(uuid::Uuid, String)>, Refusal> {
    let Some(name) = vnet else {
        return Ok(None);
    };
    let tables = ctx.tables.now();
    let nets = &tables.private;
    let Some(v) = nets.vnets.get(name).and_then(|id| nets.rows.get(id)) else {
        return Err(Refusal {
            code: RefuseCode::UnknownTunnel,
            message: format!(
                "virtual network '{name}' does not exist on this edge (see burrow vnet list)"
            ),
        });
    };
    if !v.allows(email, groups) {
        return Err(Refusal {
            code: RefuseCode::BadSecret,
            message: format!(
                "{email} may not use virtual network '{name}' (an operator allows it with \
                 `burrow vnet allow {name} --user EMAIL | --group GROUP`)"
            ),
        });
    }
    Ok(Some((v.id, name.to_owned())))
}

pub(crate) async fn authenticate(ctx: &Ctx, reg: &Registration) -> Result<Identity, Refusal> {
    let refuse = |code, message: String| Refusal { code, message };
    let Role::Client { device_id, vnet } = &reg.role else {
        return Err(refuse(RefuseCode::Internal, "not a client".into()));
    };
    let device_id = uuid::Uuid::from_bytes(*device_id);
    let (d, groups) = device_and_groups(ctx, device_id)
        .await
        .map_err(|e| refuse(RefuseCode::Internal, format!("edge state unavailable: {e}")))?;
    let Some(d) = d else {
        return Err(refuse(
            RefuseCode::UnknownTunnel,
            format!("device {device_id} is not enrolled on this edge"),
        ));
    };
    let secret_ok = burrow_store::secret::verify(&d.secret, reg.secret.expose());
    if !secret_ok || ctx.id.account_id.as_bytes() != &reg.account_id {
        return Err(refuse(
            RefuseCode::BadSecret,
            format!("device secret does not match for device {device_id}"),
        ));
    }
    if d.revoked {
        return Err(refuse(
            RefuseCode::BadSecret,
            format!("device {device_id} is revoked"),
        ));
    }
    let groups = groups.ok_or_else(|| {
        refuse(
            RefuseCode::BadSecret,
            format!("the user of device {device_id} no longer exists"),
        )
    })?;
    let vnet = requested_vnet(ctx, vnet.as_deref(), &d.user_email, &groups)?;
    Ok(Identity {
        device_id,
        device_name: d.name,
        email: d.user_email,
        groups,
        vnet,
        secret: crate::authz::digest(&d.secret),
        live: None,
    })
}

/// A device and its user's groups (`None`: no such user), from the store,
/// or as last read while the store is away (a query would first wait for
/// the pool).
async fn device_and_groups(
    ctx: &Ctx,
    device_id: uuid::Uuid,
) -> Result<(Option<burrow_store::Device>, Option<Vec<String>>), String> {
    let read = async {
        let Some(d) = ctx.store.device(device_id).await? else {
            return Ok((None, None));
        };
        let groups = ctx.store.user(&d.user_email).await?.map(|u| u.groups);
        Ok::<_, burrow_store::StoreError>((Some(d), groups))
    };
    let read = if ctx.telemetry.metrics.store_up.get() == 1 {
        read.await.map_err(|e| e.to_string())
    } else {
        Err("the state store is away".to_owned())
    };
    match read {
        Ok((d, groups)) => {
            let row = d.clone().map(|d| (d, groups.clone()));
            ctx.known_devices.learn(device_id, row.as_ref());
            Ok((d, groups))
        }
        Err(e) => match ctx.known_devices.get(device_id) {
            Some((d, groups)) => {
                tracing::warn!(%device_id, error = %e, "the state store is unreachable; checking the device as last read");
                Ok((Some(d), groups))
            }
            None => Err(e),
        },
    }
}

/// Serves a registered client connection until it closes.
pub(crate) async fn serve(
    ctx: Arc<Ctx>,
    conn: EdgeConn,
    mut control: BoxStream,
    hello: crate::tunnel::handshake::Hello,
    peer: SocketAddr,
    shutdown: CancellationToken,
    pre: crate::tunnel::handshake::PreAuth,
) {
    let mut identity = match authenticate(&ctx, &hello.reg).await {
        Ok(i) => i,
        Err(refusal) => {
            warn!(client = %peer, reason = %refusal.message, "client refused");
            crate::tunnel::handshake::refuse(&mut control, &conn, refusal.code, &refusal.message)
                .await;
            return;
        }
    };
    if matches!(conn, EdgeConn::H2(_)) {
        let why =
            "zero-trust clients over HTTP/2 must use ALPN burrow-h2c/1 (they open the streams)";
        crate::tunnel::handshake::refuse(&mut control, &conn, RefuseCode::Internal, why).await;
        return;
    }
    if !crate::tunnel::handshake::accept_registration(&mut control, &conn, &ctx.id, hello.wire, pre)
        .await
    {
        return;
    }
    let (admitted, superseded) = ctx.grants.admit(crate::authz::Grant::Client {
        device: identity.device_id,
        email: identity.email.clone(),
        secret: identity.secret,
        vnet: identity.vnet.as_ref().map(|v| v.0),
    });
    if superseded > 0 {
        ctx.telemetry
            .metrics
            .revoked
            .get_or_create(&crate::telemetry::metrics::RevokedLabels {
                party: "client",
                reason: crate::authz::Revocation::Superseded.label(),
            })
            .inc_by(u64::try_from(superseded).unwrap_or(u64::MAX));
    }
    identity.live = Some(admitted.live.clone());
    info!(client = %peer, device_id = %identity.device_id, user = %identity.email, "client connected");
    let identity = Arc::new(identity);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = conn.closed() => break,
            why = admitted.live.revoked() => {
                warn!(
                    client = %peer, device_id = %identity.device_id, user = %identity.email,
                    reason = why.message(), "access revoked; closing the client connection and its flows"
                );
                crate::tunnel::handshake::refuse(&mut control, &conn, RefuseCode::BadSecret, why.message()).await;
                break;
            }
            s = crate::apps::refusal::accept_flow_stream(&ctx, &conn, "client") => match s {
                Some((fds, stream)) => {
                    let span = tracing::info_span!("client_flow", user = %identity.email);
                    let flow = flow::run(ctx.clone(), identity.clone(), stream, peer);
                    ctx.tasks.spawn_flow_holding(fds, flow.instrument(span));
                }
                None => break,
            },
        }
    }
    info!(client = %peer, device_id = %identity.device_id, "client disconnected");
}
