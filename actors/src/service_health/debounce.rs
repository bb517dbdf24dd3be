//! Which status changes admins are told about: a service instance's status that changes and
//! changes back within the debounce window (`CONSUL_DEBOUNCE_MS`) is not pushed. A change is
//! announced once the window that its first divergence opened has passed and the status still
//! differs from the last one announced; the announced statuses are what the snapshot lists.
//!
//! The first state observed is taken as it is (nothing to announce: a joining admin gets it in
//! the snapshot). Later, an instance that appears is announced with no old status, one that
//! disappears (deregistered) with no new status.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::health_state::{Check, HealthState, Instance, InstanceKey, Status};

/// One announced change of an instance's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The instance.
    pub key: InstanceKey,
    /// The status last announced; `None` for an instance that appeared.
    pub old_status: Option<Status>,
    /// The status now; `None` for an instance that is gone.
    pub new_status: Option<Status>,
    /// Its checks now (none when it is gone).
    pub checks: Vec<Check>,
}

/// The debounce state: what was announced, what is observed, what is waiting.
#[derive(Debug)]
pub struct Debounce {
    window: Duration,
    /// `None` until the first state is observed.
    announced: Option<HealthState>,
    observed: HealthState,
    /// Instances whose observed status differs from the announced one, since when.
    pending: BTreeMap<InstanceKey, Instant>,
}

impl Debounce {
    /// A debounce with the given window.
    pub fn new(window: Duration) -> Self {
        Debounce {
            window,
            announced: None,
            observed: HealthState::new(),
            pending: BTreeMap::new(),
        }
    }

    /// Take in a new state observed at `now`.
    pub fn observe(&mut self, state: HealthState, now: Instant) {
        let Some(announced) = self.announced.as_mut() else {
            self.announced = Some(state.clone());
            self.observed = state;
            return;
        };
        let keys: Vec<InstanceKey> = announced.keys().chain(state.keys()).cloned().collect();
        for key in keys {
            let was = announced.get(&key).map(|i| i.status);
            match state.get(&key) {
                Some(now_is) if Some(now_is.status) == was => {
                    // Same status (back within the window, or its checks' output changed):
                    // nothing to announce, the snapshot shows the fresh checks.
                    self.pending.remove(&key);
                    announced.insert(key, now_is.clone());
                }
                _ => {
                    self.pending.entry(key).or_insert(now);
                }
            }
        }
        self.observed = state;
    }

    /// The changes whose window has passed by `now`, in key order; they count as announced.
    pub fn due(&mut self, now: Instant) -> Vec<Transition> {
        let Some(announced) = self.announced.as_mut() else {
            return Vec::new();
        };
        let window = self.window;
        let due: Vec<InstanceKey> = self
            .pending
            .iter()
            .filter(|(_, since)| now.saturating_duration_since(**since) >= window)
            .map(|(key, _)| key.clone())
            .collect();
        let mut transitions = Vec::new();
        for key in due {
            self.pending.remove(&key);
            let old = announced.get(&key).map(|i| i.status);
            let current: Option<&Instance> = self.observed.get(&key);
            let new = current.map(|i| i.status);
            if old == new {
                continue;
            }
            transitions.push(Transition {
                key: key.clone(),
                old_status: old,
                new_status: new,
                checks: current.map(|i| i.checks.clone()).unwrap_or_default(),
            });
            match current {
                Some(instance) => announced.insert(key, instance.clone()),
                None => announced.remove(&key),
            };
        }
        transitions
    }

    /// When the next pending change falls due, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending
            .values()
            .min()
            .map(|since| *since + self.window)
    }

    /// The announced state (empty before the first observation).
    pub fn announced(&self) -> impl Iterator<Item = (&InstanceKey, &Instance)> {
        self.announced.iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_millis(2000);

    fn state(statuses: &[(&str, Status)]) -> HealthState {
        statuses
            .iter()
            .map(|(id, status)| {
                let key = InstanceKey {
                    service: "web".into(),
                    service_id: (*id).into(),
                    node: "n1".into(),
                };
                let check = Check {
                    name: "http".into(),
                    status: *status,
                    output: format!("{status:?}"),
                };
                let instance = Instance {
                    status: *status,
                    checks: vec![check],
                };
                (key, instance)
            })
            .collect()
    }

    fn ms(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn the_first_state_is_taken_as_it_is() {
        let t0 = Instant::now();
        let mut d = Debounce::new(WINDOW);
        d.observe(state(&[("a", Status::Critical)]), t0);
        assert_eq!(d.next_deadline(), None);
        assert!(d.due(ms(t0, 10_000)).is_empty());
        assert_eq!(d.announced().count(), 1);
    }

    #[test]
    fn a_change_that_lasts_the_window_is_announced_once() {
        let t0 = Instant::now();
        let mut d = Debounce::new(WINDOW);
        d.observe(state(&[("a", Status::Passing)]), t0);
        d.observe(state(&[("a", Status::Critical)]), ms(t0, 100));
        assert_eq!(d.next_deadline(), Some(ms(t0, 2100)));
        assert!(d.due(ms(t0, 2099)).is_empty(), "not before the window ends");
        let pushed = d.due(ms(t0, 2100));
        assert_eq!(pushed.len(), 1);
        assert_eq!(pushed[0].old_status, Some(Status::Passing));
        assert_eq!(pushed[0].new_status, Some(Status::Critical));
        assert_eq!(pushed[0].checks[0].output, "Critical");
        assert!(d.due(ms(t0, 9000)).is_empty(), "announced once");
        assert_eq!(d.announced().next().unwrap().1.status, Status::Critical);
    }

    #[test]
    fn a_flap_within_the_window_is_not_announced() {
        let t0 = Instant::now();
        let mut d = Debounce::new(WINDOW);
        d.observe(state(&[("a", Status::Passing)]), t0);
        d.observe(state(&[("a", Status::Critical)]), ms(t0, 100));
        d.observe(state(&[("a", Status::Passing)]), ms(t0, 1500));
        assert_eq!(d.next_deadline(), None);
        assert!(d.due(ms(t0, 5000)).is_empty());
    }

    #[test]
    fn the_window_runs_from_the_first_divergence_and_announces_the_latest_status() {
        let t0 = Instant::now();
        let mut d = Debounce::new(WINDOW);
        d.observe(state(&[("a", Status::Passing)]), t0);
        d.observe(state(&[("a", Status::Warning)]), ms(t0, 100));
        d.observe(state(&[("a", Status::Critical)]), ms(t0, 1900));
        let pushed = d.due(ms(t0, 2100));
        assert_eq!(pushed.len(), 1);
        assert_eq!(
            (pushed[0].old_status, pushed[0].new_status),
            (Some(Status::Passing), Some(Status::Critical))
        );
    }

    #[test]
    fn instances_that_appear_or_go_are_announced_without_the_missing_side() {
        let t0 = Instant::now();
        let mut d = Debounce::new(WINDOW);
        d.observe(state(&[("a", Status::Passing)]), t0);
        d.observe(state(&[("b", Status::Warning)]), ms(t0, 10));
        let mut pushed = d.due(ms(t0, 3000));
        pushed.sort_by(|x, y| x.key.cmp(&y.key));
        assert_eq!(pushed.len(), 2);
        assert_eq!(
            (pushed[0].old_status, pushed[0].new_status),
            (Some(Status::Passing), None)
        );
        assert!(pushed[0].checks.is_empty());
        assert_eq!(
            (pushed[1].old_status, pushed[1].new_status),
            (None, Some(Status::Warning))
        );
        let ids: Vec<_> = d.announced().map(|(k, _)| k.service_id.as_str()).collect();
        assert_eq!(ids, ["b"]);
    }

    #[test]
    fn a_changed_output_with_the_same_status_updates_the_snapshot_silently() {
        let t0 = Instant::now();
        let mut d = Debounce::new(WINDOW);
        d.observe(state(&[("a", Status::Passing)]), t0);
        let mut fresh = state(&[("a", Status::Passing)]);
        fresh.values_mut().next().unwrap().checks[0].output = "200 OK".into();
        d.observe(fresh, ms(t0, 10));
        assert!(d.due(ms(t0, 3000)).is_empty());
        assert_eq!(d.announced().next().unwrap().1.checks[0].output, "200 OK");
    }
}
