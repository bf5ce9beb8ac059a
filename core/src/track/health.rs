//! Pure tracker arithmetic: rise/fall hysteresis and the effective priority, with
//! keepalived's meaning of weights.

/// Rise/fall hysteresis over a stream of check results.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    rise: u32,
    fall: u32,
    healthy: bool,
    /// Consecutive results disagreeing with `healthy`.
    streak: u32,
}

impl Health {
    /// `healthy` is the assumed state before the first result (keepalived assumes a
    /// script is good unless `init_fail` is set).
    pub fn new(rise: u32, fall: u32, healthy: bool) -> Self {
        Self {
            rise: rise.max(1),
            fall: fall.max(1),
            healthy,
            streak: 0,
        }
    }

    pub fn healthy(&self) -> bool {
        self.healthy
    }

    /// Feeds one result; returns the new status when it changed.
    pub fn observe(&mut self, ok: bool) -> Option<bool> {
        if ok == self.healthy {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = if ok { self.rise } else { self.fall };
        if self.streak >= needed {
            self.healthy = ok;
            self.streak = 0;
            return Some(ok);
        }
        None
    }

    /// A failure that needs no confirmation (the connection to mysqld closed): fails now.
    pub fn fail_now(&mut self) -> Option<bool> {
        self.streak = 0;
        if self.healthy {
            self.healthy = false;
            return Some(false);
        }
        None
    }
}

/// What a tracker contributes to an instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Contribution {
    /// keepalived semantics: positive weight added while healthy, negative weight added
    /// while failed, 0 = a failure puts the instance in Fault.
    pub weight: i32,
    /// Reverses the direction of the adjustment.
    pub reverse: bool,
    pub healthy: bool,
    /// For file trackers: the value read, multiplied by the weight instead.
    pub file_value: Option<i64>,
}

/// The instance's state from its trackers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effective {
    Fault,
    Priority(u8),
}

/// Base priority plus tracker adjustments, clamped to 1–254 (an owner, 255, is not
/// adjusted). Any weight-0 tracker that is failing means Fault.
pub fn effective(base: u8, trackers: &[Contribution]) -> Effective {
    let mut delta: i64 = 0;
    for t in trackers {
        if let Some(v) = t.file_value {
            if t.weight == 0 {
                if v != 0 {
                    return Effective::Fault;
                }
                continue;
            }
            delta += v * t.weight as i64 * if t.reverse { -1 } else { 1 };
            continue;
        }
        if t.weight == 0 {
            if !t.healthy {
                return Effective::Fault;
            }
            continue;
        }
        let applies = if t.weight > 0 { t.healthy } else { !t.healthy };
        if applies {
            delta += t.weight as i64 * if t.reverse { -1 } else { 1 };
        }
    }
    if base == 255 {
        return Effective::Priority(255);
    }
    Effective::Priority((base as i64 + delta).clamp(1, 254) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(weight: i32, healthy: bool) -> Contribution {
        Contribution {
            weight,
            reverse: false,
            healthy,
            file_value: None,
        }
    }

    #[test]
    fn rise_and_fall_hold_the_status_against_flapping() {
        let mut h = Health::new(3, 2, false);
        assert!(!h.healthy());
        assert_eq!(h.observe(true), None);
        assert_eq!(h.observe(true), None);
        assert_eq!(h.observe(true), Some(true));
        // Alternating results never reach fall = 2.
        for _ in 0..10 {
            assert_eq!(h.observe(false), None);
            assert_eq!(h.observe(true), None);
        }
        assert!(h.healthy());
        assert_eq!(h.observe(false), None);
        assert_eq!(h.observe(false), Some(false));
        assert_eq!(h.fail_now(), None);
    }

    #[test]
    fn fail_now_skips_the_fall_count() {
        let mut h = Health::new(1, 5, false);
        h.observe(true);
        assert_eq!(h.fail_now(), Some(false));
    }

    #[test]
    fn keepalived_weight_semantics() {
        assert_eq!(effective(100, &[c(20, true)]), Effective::Priority(120));
        assert_eq!(effective(100, &[c(20, false)]), Effective::Priority(100));
        assert_eq!(effective(100, &[c(-60, false)]), Effective::Priority(40));
        assert_eq!(effective(100, &[c(-60, true)]), Effective::Priority(100));
        assert_eq!(effective(100, &[c(0, false)]), Effective::Fault);
        assert_eq!(
            effective(100, &[c(0, true), c(-10, false)]),
            Effective::Priority(90)
        );
        let rev = Contribution {
            reverse: true,
            ..c(20, true)
        };
        assert_eq!(effective(100, &[rev]), Effective::Priority(80));
    }

    #[test]
    fn priority_is_clamped_and_owner_untouched() {
        assert_eq!(effective(250, &[c(50, true)]), Effective::Priority(254));
        assert_eq!(effective(10, &[c(-50, false)]), Effective::Priority(1));
        assert_eq!(effective(255, &[c(-50, false)]), Effective::Priority(255));
    }

    #[test]
    fn file_value_times_weight() {
        let f = |v, w| Contribution {
            weight: w,
            reverse: false,
            healthy: true,
            file_value: Some(v),
        };
        assert_eq!(effective(100, &[f(3, -10)]), Effective::Priority(70));
        assert_eq!(effective(100, &[f(0, -10)]), Effective::Priority(100));
        assert_eq!(effective(100, &[f(1, 0)]), Effective::Fault);
        assert_eq!(effective(100, &[f(0, 0)]), Effective::Priority(100));
    }
}
