//! When a room's pushes go out to which of its members: the coalescing window, staggered over
//! groups of members. Pure code (no actor, no clock of its own);
//! [`RoomState`](crate::room::RoomState) drives it.
//!
//! With a window `w`, a member gets at most one write per `w` while its room is busy, and a
//! push waits at most `w`: a push that finds a member's group quiet (nothing delivered to it in
//! the last `w`) goes out to that group at once; the pushes that follow wait until `w` has
//! passed since that group's last delivery and then go out together.
//!
//! The members are spread over [`GROUPS`] groups whose deliveries are staggered by `w /`
//! [`GROUPS`]: when a busy room went quiet and a push wakes it, every group gets that push at
//! once, but group `g`'s window is then counted as if it had started `g * w / GROUPS` earlier,
//! so the groups' next deliveries fall at evenly spaced times instead of all at the same
//! instant. A worker thread then writes to an eighth of a big room's members at a time, every
//! `w / 8`, instead of to all of them at once every `w`: the same writes, but no burst that
//! makes the last members of the room wait for the writes to all the others (and, on a machine
//! whose clients share the server's cores, for those clients to read them). The price is one
//! extra write per member of groups after the first when a quiet room turns busy.
//!
//! Without a window there is one group and every push goes out at once. A window that changes
//! with the room's load ([`Coalescer::adaptive`], [`crate::adaptive_window`]) keeps the groups
//! while it is zero (every push then goes out to all of them at once), and staggers them as it
//! turns non-zero.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytestring::ByteString;

use crate::messages::{Packets, PushStamp};

/// Groups of members a coalescing room staggers its deliveries over.
pub const GROUPS: usize = 8;

/// At most this many pushes wait for one group: a room pushed to faster than that per window
/// delivers early rather than build huge writes.
pub const MAX_BATCH: usize = 128;

/// One group's state.
#[derive(Debug, Clone, Default)]
struct Group {
    /// Members in the group.
    members: usize,
    /// The sequence number of the first push the group has not had.
    next: u64,
    /// When the group's current window started (its last delivery, or that shifted by its
    /// stagger).
    window_start: Option<Instant>,
}

/// A room's pushes not yet delivered to every group, and each group's window.
#[derive(Debug)]
pub struct Coalescer {
    window: Duration,
    groups: Vec<Group>,
    /// Pushes some group has not had yet, with their stamps (when each was accepted, ...);
    /// `log[0]` is push number `first`.
    log: VecDeque<(ByteString, PushStamp)>,
    first: u64,
}

impl Coalescer {
    /// A coalescer for a room with a window of `window` (zero: no coalescing).
    pub fn new(window: Duration) -> Self {
        let groups = if window.is_zero() { 1 } else { GROUPS };
        Coalescer {
            window,
            groups: vec![Group::default(); groups],
            log: VecDeque::new(),
            first: 0,
        }
    }

    /// A coalescer whose window starts at zero and is set before each push
    /// ([`Coalescer::set_window`]): its members are grouped even while the window is zero.
    pub fn adaptive() -> Self {
        Coalescer {
            groups: vec![Group::default(); GROUPS],
            ..Coalescer::new(Duration::ZERO)
        }
    }

    /// Use `window` from now on. A window turning non-zero staggers the groups' windows as a
    /// quiet push would: group `g`'s counts as started `g * window / groups` earlier.
    pub fn set_window(&mut self, window: Duration) {
        if self.window.is_zero() && !window.is_zero() {
            let staggered = window / self.groups.len() as u32;
            for (g, group) in self.groups.iter_mut().enumerate() {
                if let Some(start) = group.window_start {
                    let shift = staggered * g as u32;
                    group.window_start = Some(start.checked_sub(shift).unwrap_or(start));
                }
            }
        }
        self.window = window;
    }

    /// How many groups there are (group numbers are below it).
    pub fn groups(&self) -> usize {
        self.groups.len()
    }

    /// The sequence number the next push gets.
    fn end(&self) -> u64 {
        self.first + self.log.len() as u64
    }

    /// The group a new member joins: the smallest one. Deliver that group's waiting pushes
    /// ([`Coalescer::take`]) before adding the member (they were accepted before it joined),
    /// then call [`Coalescer::joined`].
    pub fn group_for_newcomer(&self) -> usize {
        (0..self.groups.len())
            .min_by_key(|&g| self.groups[g].members)
            .expect("at least one group")
    }

    /// A member was added to group `g`.
    pub fn joined(&mut self, g: usize) {
        self.groups[g].members += 1;
    }

    /// A member left group `g` (after the group's waiting pushes were delivered).
    pub fn left(&mut self, g: usize) {
        let group = &mut self.groups[g];
        group.members = group.members.saturating_sub(1);
    }

    /// Accept a push at `now`: the groups it must go out to at once (quiet groups, and groups
    /// whose batch is full). The others get it when [`Coalescer::due`] says so.
    pub fn push(&mut self, packet: ByteString, stamp: PushStamp, now: Instant) -> Vec<usize> {
        self.log.push_back((packet, stamp));
        let end = self.end();
        let window = self.window;
        let staggered = window / self.groups.len() as u32;
        let mut now_groups = Vec::new();
        for (g, group) in self.groups.iter_mut().enumerate() {
            if group.members == 0 {
                // Nobody to deliver to: the group is never behind.
                group.next = end;
                continue;
            }
            let window_over = group
                .window_start
                .is_none_or(|start| now.duration_since(start) >= window);
            if window_over {
                // Quiet (nothing waiting before this push): staggered, the group's next
                // delivery falls `g` steps earlier than a full window from now. Busy (its
                // timer is about to fire): its window just ended, the next starts now.
                let quiet = end - group.next == 1;
                let shift = if quiet {
                    staggered * g as u32
                } else {
                    Duration::ZERO
                };
                group.window_start = Some(now.checked_sub(shift).unwrap_or(now));
                now_groups.push(g);
            } else if end - group.next >= MAX_BATCH as u64 {
                group.window_start = Some(now);
                now_groups.push(g);
            }
        }
        now_groups
    }

    /// When the next group's window ends with pushes waiting for it, if any does.
    pub fn next_due(&self) -> Option<Instant> {
        let end = self.end();
        self.groups
            .iter()
            .filter(|group| group.members > 0 && group.next < end)
            .filter_map(|group| group.window_start.map(|start| start + self.window))
            .min()
    }

    /// The groups whose window has ended by `now` with pushes waiting for them; each starts
    /// its next window now.
    pub fn due(&mut self, now: Instant) -> Vec<usize> {
        let (end, window) = (self.end(), self.window);
        let mut due = Vec::new();
        for (g, group) in self.groups.iter_mut().enumerate() {
            let ended = group.window_start.is_none_or(|start| start + window <= now);
            if group.members > 0 && group.next < end && ended {
                group.window_start = Some(now);
                due.push(g);
            }
        }
        due
    }

    /// The pushes each of `groups` has not had yet, now counted as delivered to them, indexed
    /// by group (`None`: none, or not asked for; groups that had the same pushes share one
    /// batch), and the acceptance times of the pushes that every group has now had (for the
    /// fan-out latency metric), which are dropped.
    pub fn take(&mut self, groups: &[usize]) -> (Vec<Option<Arc<Packets>>>, Vec<Instant>) {
        let end = self.end();
        let mut batches: Vec<Option<Arc<Packets>>> = vec![None; self.groups.len()];
        // The batches made so far, by the sequence number they start at.
        let mut made: Vec<(u64, Arc<Packets>)> = Vec::new();
        for &g in groups {
            let next = self.groups[g].next;
            if next < end {
                let batch = match made.iter().find(|(from, _)| *from == next) {
                    Some((_, batch)) => batch.clone(),
                    None => {
                        let from = (next - self.first) as usize;
                        let batch: Arc<Packets> =
                            Arc::new(self.log.range(from..).cloned().collect());
                        made.push((next, batch.clone()));
                        batch
                    }
                };
                batches[g] = Some(batch);
            }
            self.groups[g].next = end;
        }
        let behind = self
            .groups
            .iter()
            .filter(|group| group.members > 0)
            .map(|group| group.next)
            .min()
            .unwrap_or(end);
        let done = (behind - self.first) as usize;
        self.first = behind;
        let delivered = self.log.drain(..done).map(|(_, s)| s.accepted.at).collect();
        (batches, delivered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_millis(80);
    const STEP: Duration = Duration::from_millis(10); // W / GROUPS

    fn packet(s: &str) -> ByteString {
        ByteString::from(s.to_owned())
    }

    fn stamp(at: Instant) -> PushStamp {
        use crate::messages::{Accepted, PushEvent, PushSource};
        PushStamp {
            event: PushEvent::Message,
            accepted: Accepted {
                source: PushSource::Http,
                at,
            },
        }
    }

    fn texts(packets: &Option<Arc<Packets>>) -> Vec<String> {
        packets
            .as_ref()
            .map_or(vec![], |f| f.iter().map(|f| f.to_string()).collect())
    }

    /// What one group is waiting for, taken.
    fn take_one(c: &mut Coalescer, g: usize) -> (Option<Arc<Packets>>, Vec<Instant>) {
        let (mut batches, delivered) = c.take(&[g]);
        (batches[g].take(), delivered)
    }

    /// An adaptive coalescer (window zero) with one member in each group, and all the groups.
    fn adaptive_with_a_member_per_group() -> (Coalescer, Vec<usize>) {
        let mut c = Coalescer::adaptive();
        for _ in 0..GROUPS {
            let g = c.group_for_newcomer();
            c.joined(g);
        }
        (c, (0..GROUPS).collect())
    }

    /// A coalescer with one member in each of the first `members` groups.
    fn with_members(window: Duration, members: usize) -> Coalescer {
        let mut c = Coalescer::new(window);
        for _ in 0..members {
            let g = c.group_for_newcomer();
            c.joined(g);
        }
        c
    }

    #[test]
    fn without_a_window_every_push_goes_to_everyone_at_once() {
        let mut c = with_members(Duration::ZERO, 3);
        let t = Instant::now();
        for k in 0..3 {
            assert_eq!(c.push(packet(&k.to_string()), stamp(t), t), vec![0]);
            let (packets, delivered) = take_one(&mut c, 0);
            assert_eq!(texts(&packets), [k.to_string()]);
            assert_eq!(delivered.len(), 1);
            assert_eq!(c.next_due(), None);
        }
    }

    #[test]
    fn a_quiet_room_delivers_at_once_then_staggers_its_groups() {
        let mut c = with_members(W, GROUPS);
        let t0 = Instant::now();
        // Quiet: every group at once.
        let all: Vec<usize> = (0..GROUPS).collect();
        assert_eq!(c.push(packet("1"), stamp(t0), t0), all);
        for g in 0..GROUPS {
            assert_eq!(texts(&take_one(&mut c, g).0), ["1"]);
        }
        // Busy: the next push waits, group g until W - g * STEP after t0.
        let t1 = t0 + Duration::from_millis(1);
        assert!(c.push(packet("2"), stamp(t1), t1).is_empty());
        for g in (0..GROUPS).rev() {
            let due_at = t0 + W - STEP * g as u32;
            assert_eq!(c.next_due(), Some(due_at), "group {g}");
            assert!(c.due(due_at - Duration::from_micros(1)).is_empty());
            assert_eq!(c.due(due_at), vec![g]);
            assert_eq!(texts(&take_one(&mut c, g).0), ["2"]);
        }
        assert_eq!(c.next_due(), None);
        // Each group's next window is a full W after its last delivery: still staggered.
        let t2 = t0 + W + Duration::from_millis(1);
        assert!(c.push(packet("3"), stamp(t2), t2).is_empty());
        assert_eq!(c.next_due(), Some(t0 + W - STEP * 7 + W));
    }

    #[test]
    fn a_busy_room_delivers_within_the_window_and_once_per_window() {
        let mut c = with_members(W, 20);
        let mut now = Instant::now();
        let mut accepted: Vec<Instant> = Vec::new();
        let mut seen = [0u64; GROUPS];
        let mut deliveries = [0u64; GROUPS];
        // A push every 3 ms for a second; whatever is due is delivered every millisecond.
        for ms in 0..1000u64 {
            let mut groups = Vec::new();
            if ms % 3 == 0 {
                accepted.push(now);
                groups = c.push(packet(&ms.to_string()), stamp(now), now);
            }
            for pass in 0..2 {
                if pass == 1 {
                    groups = c.due(now);
                }
                for &g in &groups {
                    seen[g] += take_one(&mut c, g).0.map_or(0, |f| f.len() as u64);
                    deliveries[g] += 1;
                }
            }
            // Every group has had every push older than the window.
            let old = accepted
                .iter()
                .filter(|at| now.duration_since(**at) >= W)
                .count();
            for (g, seen) in seen.iter().enumerate() {
                assert!(*seen >= old as u64, "group {g} at {ms} ms: {seen} < {old}");
            }
            now += Duration::from_millis(1);
        }
        // One delivery per window, plus the one at once when the room was quiet.
        for (g, n) in deliveries.iter().enumerate() {
            assert!(*n <= 1000 / 80 + 2, "group {g}: {n} deliveries");
        }
    }

    #[test]
    fn a_full_batch_goes_out_before_the_window_ends() {
        let mut c = with_members(W, 1);
        let t = Instant::now();
        assert_eq!(c.push(packet("first"), stamp(t), t), vec![0]);
        take_one(&mut c, 0);
        for k in 1..MAX_BATCH {
            assert!(c.push(packet(&k.to_string()), stamp(t), t).is_empty());
        }
        assert_eq!(c.push(packet("full"), stamp(t), t), vec![0]);
        let (packets, delivered) = take_one(&mut c, 0);
        assert_eq!(packets.unwrap().len(), MAX_BATCH);
        assert_eq!(delivered.len(), MAX_BATCH);
    }

    #[test]
    fn the_log_keeps_what_some_group_still_needs_and_only_that() {
        let mut c = with_members(W, 2); // groups 0 and 1
        let t = Instant::now();
        assert_eq!(c.push(packet("a"), stamp(t), t), vec![0, 1]);
        assert_eq!(take_one(&mut c, 0).1.len(), 0, "group 1 has not had it yet");
        assert_eq!(take_one(&mut c, 1).1.len(), 1, "now everyone has");
        let t1 = t + Duration::from_millis(1);
        assert!(c.push(packet("b"), stamp(t1), t1).is_empty());
        assert!(c.push(packet("c"), stamp(t1), t1).is_empty());
        let (packets, delivered) = take_one(&mut c, 1);
        assert_eq!(texts(&packets), ["b", "c"]);
        assert!(delivered.is_empty());
        let (packets, delivered) = take_one(&mut c, 0);
        assert_eq!(texts(&packets), ["b", "c"]);
        assert_eq!(delivered.len(), 2);
        assert_eq!(take_one(&mut c, 0).0.map(|f| f.len()), None, "nothing left");
    }

    #[test]
    fn newcomers_fill_the_smallest_group_and_empty_groups_never_hold_the_log() {
        let mut c = with_members(W, GROUPS + 1);
        assert_eq!(c.group_for_newcomer(), 1);
        for g in 1..GROUPS {
            c.left(g);
        }
        // Only group 0 (two members) is left.
        let t = Instant::now();
        assert_eq!(c.push(packet("x"), stamp(t), t), vec![0]);
        let (packets, delivered) = take_one(&mut c, 0);
        assert_eq!(texts(&packets), ["x"]);
        assert_eq!(delivered.len(), 1);
        assert_eq!(c.group_for_newcomer(), 1);
    }

    #[test]
    fn an_adaptive_coalescer_at_zero_sends_every_push_to_every_group_at_once() {
        let (mut c, all) = adaptive_with_a_member_per_group();
        let t = Instant::now();
        for k in 0..3 {
            let now = t + Duration::from_micros(k);
            assert_eq!(c.push(packet(&k.to_string()), stamp(now), now), all);
            let (batches, delivered) = c.take(&all);
            let first = batches[0].clone().expect("group 0 has it");
            for batch in &batches {
                let batch = batch.as_ref().expect("every group has it");
                assert!(Arc::ptr_eq(batch, &first), "one batch shared by all groups");
            }
            assert_eq!(texts(&batches[0]), [k.to_string()]);
            assert_eq!(delivered.len(), 1);
            assert_eq!(c.next_due(), None);
        }
    }

    #[test]
    fn a_window_turning_non_zero_staggers_the_groups() {
        let (mut c, all) = adaptive_with_a_member_per_group();
        let t0 = Instant::now();
        assert_eq!(c.push(packet("1"), stamp(t0), t0), all);
        c.take(&all);
        c.set_window(W);
        // Group g's window counts as started g * STEP before t0.
        let t1 = t0 + Duration::from_millis(1);
        assert!(c.push(packet("2"), stamp(t1), t1).is_empty());
        assert_eq!(c.next_due(), Some(t0 + W - STEP * (GROUPS as u32 - 1)));
        // Back to zero: what waits is due at once, and the next push goes out at once.
        c.set_window(Duration::ZERO);
        assert_eq!(c.next_due().map(|due| due <= t1), Some(true));
        assert_eq!(c.push(packet("3"), stamp(t1), t1), all);
        let (batches, delivered) = c.take(&all);
        assert_eq!(texts(&batches[3]), ["2", "3"]);
        assert_eq!(delivered.len(), 2);
    }
}
