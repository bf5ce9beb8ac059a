//! VIP add / remove over rtnetlink. Both are idempotent: adding a present address and
//! removing an absent one succeed. IPv6 VIPs are added with NODAD so they answer at once.
use std::net::IpAddr;

use futures_util::TryStreamExt;
use rtnetlink::{
    packet_route::{
        address::{AddressAttribute, AddressFlags, AddressMessage},
        AddressFamily,
    },
    Handle,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vip {
    pub addr: IpAddr,
    pub prefix: u8,
    pub ifindex: u32,
    pub label: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum VipError {
    #[error("adding {addr}/{prefix}: {source}")]
    Add {
        addr: IpAddr,
        prefix: u8,
        source: rtnetlink::Error,
    },
    #[error("removing {addr}: {source}")]
    Remove {
        addr: IpAddr,
        source: rtnetlink::Error,
    },
    #[error("netlink connection: {0}")]
    Connect(#[from] std::io::Error),
}

/// An rtnetlink handle with its connection task running on the current runtime.
pub fn connect() -> Result<Handle, VipError> {
    let (conn, handle, _) = rtnetlink::new_connection()?;
    tokio::spawn(conn);
    Ok(handle)
}

pub async fn add(handle: &Handle, vip: &Vip) -> Result<(), VipError> {
    let mut req = handle
        .address()
        .add(vip.ifindex, vip.addr, vip.prefix)
        .replace();
    let msg = req.message_mut();
    if vip.addr.is_ipv6() {
        msg.attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    if let (Some(label), IpAddr::V4(_)) = (&vip.label, vip.addr) {
        msg.attributes.push(AddressAttribute::Label(label.clone()));
    }
    req.execute().await.map_err(|source| VipError::Add {
        addr: vip.addr,
        prefix: vip.prefix,
        source,
    })
}

/// The address messages for `vip` on its interface (none, or one).
fn find(
    handle: &Handle,
    vip: &Vip,
) -> impl futures_util::Stream<
    Item = Result<rtnetlink::packet_route::address::AddressMessage, rtnetlink::Error>,
> {
    handle
        .address()
        .get()
        .set_link_index_filter(vip.ifindex)
        .set_address_filter(vip.addr)
        .execute()
}

/// Removes `vip` with one request naming it (address and prefix): no dump of every
/// address on the host, which made releasing N VIPs cost N² (1 000 VIPs: the last
/// priority-0 advert of a stopping agent went out 0.6 s after the first). An address
/// the request does not find (absent, or added by hand with another prefix) is looked
/// up and removed as it is.
pub async fn remove(handle: &Handle, vip: &Vip) -> Result<(), VipError> {
    let mut msg = AddressMessage::default();
    msg.header.family = if vip.addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    msg.header.prefix_len = vip.prefix;
    msg.header.index = vip.ifindex;
    // IPv4 matches IFA_LOCAL alone (any prefix); IPv6 matches address and prefix.
    msg.attributes.push(if vip.addr.is_ipv4() {
        AddressAttribute::Local(vip.addr)
    } else {
        AddressAttribute::Address(vip.addr)
    });
    match handle.address().del(msg).execute().await {
        Ok(()) => Ok(()),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EADDRNOTAVAIL => {
            remove_as_found(handle, vip).await
        }
        Err(source) => Err(VipError::Remove {
            addr: vip.addr,
            source,
        }),
    }
}

/// Removes every address message for `vip` on its interface, whatever its prefix.
async fn remove_as_found(handle: &Handle, vip: &Vip) -> Result<(), VipError> {
    let mut found = std::pin::pin!(find(handle, vip));
    while let Some(msg) = found.try_next().await.map_err(|source| VipError::Remove {
        addr: vip.addr,
        source,
    })? {
        match handle.address().del(msg).execute().await {
            Ok(()) => {}
            // Already gone (raced with another remover): that is the goal.
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EADDRNOTAVAIL => {}
            Err(source) => {
                return Err(VipError::Remove {
                    addr: vip.addr,
                    source,
                })
            }
        }
    }
    Ok(())
}
