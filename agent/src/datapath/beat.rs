//! The self-fence's heartbeat (see the XDP program's `refuse` module): a write instance's
//! master beats with every advert the pacer sends for it, and a beat that comes more
//! than the bound after the one before finds a host that stood still (a freeze, a
//! stopped VM, a starved pacer): long enough for the peer to have taken over.
//!
//! The datapath finds the same from the other side (a client segment that late after
//! the last beat); whichever comes first marks the instance stalled, and clients are
//! refused at its VIPs until the write role, having heard the peer out, clears the mark
//! ([`crate::role::Action::ClearStall`]). Only userspace clears it.
use std::sync::{
    atomic::{AtomicU64, Ordering},
    Mutex,
};

use aya::maps::{HashMap, Map, MapData};
use tokio::sync::mpsc::UnboundedSender;
use xvrrpd_common::Liveness;

use super::{absent_ok, map_err, DatapathError};

/// Both maps, owned by this beat (their own file descriptors: the pacer thread writes
/// them without the datapath's lock).
struct Maps {
    live: HashMap<MapData, u32, Liveness>,
    stalled: HashMap<MapData, u32, u64>,
}

/// One write instance's heartbeat, shared by the main loop and the pacer thread.
pub struct Beat {
    maps: Mutex<Maps>,
    /// The instance's id (its key in both maps).
    instance: u32,
    bound_ns: u64,
    /// The last beat (monotonic ns).
    last: AtomicU64,
    /// Where a stall found here is reported: (instance id, how long the beats stopped,
    /// ns).
    stalls: UnboundedSender<(u64, u64)>,
}

impl Beat {
    pub(super) fn new(
        live: &MapData,
        stalled: &MapData,
        instance: u32,
        bound_ns: u64,
        now: u64,
        stalls: UnboundedSender<(u64, u64)>,
    ) -> Result<Self, DatapathError> {
        use std::os::fd::AsFd;
        let own = |m: &MapData, name: &'static str| -> Result<MapData, DatapathError> {
            let fd = m
                .fd()
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| DatapathError::Dup {
                    map: name,
                    source: e,
                })?;
            MapData::from_fd(fd).map_err(map_err(name))
        };
        let live = HashMap::try_from(Map::HashMap(own(live, "LIVE")?)).map_err(map_err("LIVE"))?;
        let stalled = HashMap::try_from(Map::HashMap(own(stalled, "STALLED")?))
            .map_err(map_err("STALLED"))?;
        let beat = Self {
            maps: Mutex::new(Maps { live, stalled }),
            instance,
            bound_ns,
            last: AtomicU64::new(now),
            stalls,
        };
        {
            let mut m = beat.maps.lock().unwrap_or_else(|p| p.into_inner());
            // A new mastership starts unstalled, beating now.
            absent_ok(m.stalled.remove(&instance), "STALLED")?;
            m.live
                .insert(
                    instance,
                    Liveness {
                        beat_ns: now,
                        bound_ns,
                    },
                    0,
                )
                .map_err(map_err("LIVE"))?;
        }
        Ok(beat)
    }

    /// An advert just went out at `now` (pacer thread). A beat later than the bound
    /// marks the instance stalled first, then beats: never the other way round, or the
    /// datapath could see a fresh beat and let a client through before the mark.
    pub fn beat(&self, now: u64) {
        let last = self.last.swap(now, Ordering::AcqRel);
        let mut m = self.maps.lock().unwrap_or_else(|p| p.into_inner());
        let gap = now.saturating_sub(last);
        if gap > self.bound_ns {
            let _ = m.stalled.insert(self.instance, now, 0);
            let _ = self.stalls.send((u64::from(self.instance), gap));
        }
        let _ = m.live.insert(
            self.instance,
            Liveness {
                beat_ns: now,
                bound_ns: self.bound_ns,
            },
            0,
        );
    }

    /// Is the instance marked stalled (by the datapath or by [`Self::beat`])?
    pub fn stalled(&self) -> bool {
        let m = self.maps.lock().unwrap_or_else(|p| p.into_inner());
        m.stalled.get(&self.instance, 0).is_ok()
    }

    /// The last beat the pacer wrote (monotonic ns).
    pub fn last(&self) -> u64 {
        self.last.load(Ordering::Acquire)
    }

    /// The write role heard the peer out: clients may reach the VIPs again.
    pub fn clear(&self) -> Result<(), DatapathError> {
        let mut m = self.maps.lock().unwrap_or_else(|p| p.into_inner());
        absent_ok(m.stalled.remove(&self.instance), "STALLED")
    }

    /// The mastership ended: no beat, no mark.
    pub fn end(&self) -> Result<(), DatapathError> {
        let mut m = self.maps.lock().unwrap_or_else(|p| p.into_inner());
        absent_ok(m.live.remove(&self.instance), "LIVE")?;
        absent_ok(m.stalled.remove(&self.instance), "STALLED")
    }
}
