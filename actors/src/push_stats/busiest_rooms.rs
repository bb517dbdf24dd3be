//! The busiest rooms of the last minute: deliveries (sessions reached) and pushes per room in
//! a sliding window of [`STEPS`] steps of [`STEP`] each, in bounded memory. Pure code: the
//! caller passes the clock.
//!
//! Rooms are ranked by deliveries, since a delivery is what a push costs (one write per
//! receiving session); pushes break ties. A push counts in the step of the moment it was
//! recorded; the window is the current step and the [`STEPS`]` - 1` before it, so a room
//! leaves the ranking between 50 and 60 s after its last push, and is always gone once it has
//! been quiet for over a minute.
//!
//! Each step tracks at most [`MAX_ROOMS_PER_STEP`] rooms. When a step is full, a new room takes
//! the place of its least busy one if it is at least as busy with this push; otherwise it is
//! not tracked in that step (a busy room is soon tracked again: every push to it gets a chance).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The length of one step of the window.
pub const STEP: Duration = Duration::from_secs(10);
/// The steps in the window: a minute.
pub const STEPS: usize = 6;
/// At most this many rooms are tracked per step.
pub const MAX_ROOMS_PER_STEP: usize = 1024;

/// A room's activity in the window.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RoomActivity {
    /// The room's name.
    pub room: String,
    /// Pushes to it.
    pub pushes: u64,
    /// Sessions those pushes reached.
    pub deliveries: u64,
}

/// One step's counts: (pushes, deliveries) by room.
#[derive(Default)]
struct Step {
    /// Which step of time it counts (steps since the window's origin).
    number: u64,
    rooms: HashMap<String, (u64, u64)>,
}

/// Per-room pushes and deliveries over the last minute.
pub struct BusiestRooms {
    origin: Instant,
    steps: Vec<Step>,
}

impl BusiestRooms {
    /// An empty window whose steps are counted from `origin`.
    pub fn new(origin: Instant) -> Self {
        BusiestRooms {
            origin,
            steps: (0..STEPS).map(|_| Step::default()).collect(),
        }
    }

    fn step_number(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.origin).as_nanos() / STEP.as_nanos()) as u64
    }

    /// Count one push to `room` reaching `deliveries` sessions at `now`.
    pub fn record(&mut self, room: &str, deliveries: u64, now: Instant) {
        let number = self.step_number(now);
        let step = &mut self.steps[(number % STEPS as u64) as usize];
        if step.number != number {
            step.number = number;
            step.rooms.clear();
        }
        if let Some((pushes, delivered)) = step.rooms.get_mut(room) {
            *pushes += 1;
            *delivered += deliveries;
            return;
        }
        if step.rooms.len() >= MAX_ROOMS_PER_STEP {
            let least = step
                .rooms
                .iter()
                .min_by_key(|(_, &(pushes, delivered))| (delivered, pushes))
                .map(|(name, &(_, delivered))| (name.clone(), delivered));
            match least {
                Some((name, delivered)) if delivered <= deliveries => {
                    step.rooms.remove(&name);
                }
                _ => return,
            }
        }
        step.rooms.insert(room.to_owned(), (1, deliveries));
    }

    /// The `n` busiest rooms of the window ending at `now`, busiest first (by deliveries, then
    /// pushes, then name).
    pub fn top(&self, n: usize, now: Instant) -> Vec<RoomActivity> {
        let current = self.step_number(now);
        let first = current.saturating_sub(STEPS as u64 - 1);
        let mut totals: HashMap<&str, (u64, u64)> = HashMap::new();
        for step in &self.steps {
            if step.number < first || step.number > current {
                continue;
            }
            for (room, &(pushes, delivered)) in &step.rooms {
                let total = totals.entry(room).or_default();
                total.0 += pushes;
                total.1 += delivered;
            }
        }
        let mut ranked: Vec<RoomActivity> = totals
            .into_iter()
            .map(|(room, (pushes, deliveries))| RoomActivity {
                room: room.to_owned(),
                pushes,
                deliveries,
            })
            .collect();
        ranked.sort_by(|a, b| {
            (b.deliveries, b.pushes)
                .cmp(&(a.deliveries, a.pushes))
                .then_with(|| a.room.cmp(&b.room))
        });
        ranked.truncate(n);
        ranked
    }

    /// How many room entries the steps hold (for the memory bound).
    pub fn tracked(&self) -> usize {
        self.steps.iter().map(|s| s.rooms.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn names(top: &[RoomActivity]) -> Vec<&str> {
        top.iter().map(|r| r.room.as_str()).collect()
    }

    #[test]
    fn rooms_are_ranked_by_deliveries_then_pushes_and_limited() {
        let t0 = Instant::now();
        let mut w = BusiestRooms::new(t0);
        for i in 0..15u64 {
            // Room i: i pushes of 10 deliveries each.
            for _ in 0..i {
                w.record(&format!("r{i:02}"), 10, t0 + secs(i));
            }
        }
        w.record("few-pushes", 140, t0 + secs(20)); // as many deliveries as r14, fewer pushes
        w.record("many-pushes", 75, t0 + secs(20));
        w.record("many-pushes", 75, t0 + secs(21));
        let top = w.top(10, t0 + secs(30));
        assert_eq!(top.len(), 10);
        assert_eq!(
            names(&top),
            [
                "many-pushes",
                "r14",
                "few-pushes",
                "r13",
                "r12",
                "r11",
                "r10",
                "r09",
                "r08",
                "r07"
            ]
        );
        assert_eq!(
            top[1],
            RoomActivity {
                room: "r14".into(),
                pushes: 14,
                deliveries: 140
            }
        );
        assert_eq!(top[0].pushes, 2);
    }

    #[test]
    fn a_room_quiet_for_over_a_minute_drops_out() {
        let t0 = Instant::now();
        let mut w = BusiestRooms::new(t0);
        w.record("early", 5, t0 + secs(1));
        w.record("early", 5, t0 + secs(25));
        w.record("late", 1, t0 + secs(45));
        let at = |s| w.top(10, t0 + secs(s));
        assert_eq!(at(50)[0].deliveries, 10, "both pushes within the minute");
        assert_eq!(names(&at(62)), ["early", "late"]);
        assert_eq!(
            at(62)[0].deliveries,
            5,
            "the first push's step has left the window"
        );
        assert_eq!(names(&at(86)), ["late"], "quiet for 61 s");
        assert!(at(106).is_empty(), "all quiet for over a minute");
        // Steps are reused as time goes on: a new push there counts alone.
        w.record("new", 3, t0 + secs(121));
        let now = w.top(10, t0 + secs(121));
        assert_eq!(now.len(), 1);
        assert_eq!((now[0].pushes, now[0].deliveries), (1, 3));
    }

    #[test]
    fn memory_is_bounded_with_many_rooms_and_busy_rooms_still_rank() {
        let t0 = Instant::now();
        let mut w = BusiestRooms::new(t0);
        for i in 0..20_000u64 {
            let at = t0 + Duration::from_millis(i * 3); // one minute of pushes
            w.record(&format!("user:{i}"), 1, at);
            if i % 100 == 0 {
                w.record("admin", 50, at);
            }
        }
        assert!(
            w.tracked() <= STEPS * MAX_ROOMS_PER_STEP,
            "{} entries",
            w.tracked()
        );
        let top = w.top(10, t0 + secs(59));
        assert_eq!(top.len(), 10);
        assert_eq!(top[0].room, "admin");
        assert_eq!(top[0].pushes, 200);
        assert_eq!(top[0].deliveries, 200 * 50);
    }
}
