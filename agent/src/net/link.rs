//! Link state from rtnetlink events (RTNLGRP_LINK), not polling: a link is usable when it
//! is administratively up and has carrier (IFF_UP and IFF_RUNNING).
use futures_util::{StreamExt, TryStreamExt};
use rtnetlink::{
    packet_core::NetlinkPayload,
    packet_route::{
        link::{LinkFlags, LinkMessage},
        RouteNetlinkMessage,
    },
    sys::AsyncSocket,
};
use tokio::sync::mpsc::UnboundedSender;
use tracing::warn;

/// RTNLGRP_LINK: the multicast group of link changes.
const RTNLGRP_LINK: u32 = 1;

/// (ifindex, usable) for a link message.
pub fn usable(msg: &LinkMessage) -> (u32, bool) {
    let f = msg.header.flags;
    (
        msg.header.index,
        f.contains(LinkFlags::Up) && f.contains(LinkFlags::Running),
    )
}

/// Sends the current state of every link, then every change, as (ifindex, usable).
pub async fn watch(tx: UnboundedSender<(u32, bool)>) -> std::io::Result<()> {
    let (mut conn, handle, mut messages) = rtnetlink::new_connection()?;
    conn.socket_mut()
        .socket_ref()
        .add_membership(RTNLGRP_LINK)?;
    tokio::spawn(conn);
    let mut dump = handle.link().get().execute();
    loop {
        match dump.try_next().await {
            Ok(Some(msg)) => {
                let _ = tx.send(usable(&msg));
            }
            Ok(None) => break,
            Err(e) => {
                warn!(error = %e, "reading link states");
                break;
            }
        }
    }
    tokio::spawn(async move {
        while let Some((msg, _)) = messages.next().await {
            if let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) = msg.payload {
                if tx.send(usable(&link)).is_err() {
                    return;
                }
            }
        }
    });
    Ok(())
}
