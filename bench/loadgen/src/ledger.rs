//! Exactly-once accounting for the `recover` scenario: the sequence numbers one client received
//! from one target (its user room, or its shared room) over the whole run, checked at the end
//! against the sequence numbers the server accepted for that target. A connection cut in the
//! middle must change nothing: every accepted push seen once, none missing, none twice.

use serde::Serialize;

/// The sequence numbers one client received from one target, in arrival order.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    seqs: Vec<u32>,
}

/// How a ledger compares with what was expected.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Account {
    /// Expected pushes received (once or more).
    pub received: u64,
    /// Expected pushes never received.
    pub missing: u64,
    /// Receipts beyond the first of the same push.
    pub duplicated: u64,
    /// Pushes received that were not expected (refused by the server, or another target's).
    pub unexpected: u64,
    /// The first few missing sequence numbers (for the report of an unclean client).
    #[serde(skip)]
    pub missing_seqs: Vec<u64>,
    /// The first few duplicated sequence numbers.
    #[serde(skip)]
    pub duplicated_seqs: Vec<u64>,
}

/// How many anomalous sequence numbers an account keeps.
const KEPT: usize = 8;

impl Account {
    /// Add another account.
    pub fn add(&mut self, other: &Account) {
        self.received += other.received;
        self.missing += other.missing;
        self.duplicated += other.duplicated;
        self.unexpected += other.unexpected;
    }
}

impl Ledger {
    /// Note one received push.
    pub fn record(&mut self, seq: u64) {
        self.seqs.push(u32::try_from(seq).unwrap_or(u32::MAX));
    }

    /// Pushes received so far, duplicates included.
    pub fn len(&self) -> usize {
        self.seqs.len()
    }

    /// The sequence numbers in arrival order.
    pub fn seqs(&self) -> &[u32] {
        &self.seqs
    }

    /// Compare with `expected` (the accepted sequence numbers, ascending, each once).
    pub fn account(&self, expected: impl IntoIterator<Item = u64>) -> Account {
        let mut seen = self.seqs.clone();
        seen.sort_unstable();
        let mut account = Account::default();
        for pair in seen.windows(2).filter(|p| p[0] == p[1]) {
            account.duplicated += 1;
            if account.duplicated_seqs.len() < KEPT {
                account.duplicated_seqs.push(u64::from(pair[0]));
            }
        }
        seen.dedup();
        let mut seen = seen.into_iter().map(u64::from).peekable();
        for want in expected {
            while seen.next_if(|s| *s < want).is_some() {
                account.unexpected += 1;
            }
            if seen.next_if_eq(&want).is_some() {
                account.received += 1;
            } else {
                account.missing += 1;
                if account.missing_seqs.len() < KEPT {
                    account.missing_seqs.push(want);
                }
            }
        }
        account.unexpected += seen.count() as u64;
        account
    }
}

/// The sequence numbers of `0..sent` the server accepted, where `failed` lists the refused
/// ones (in any order).
pub fn accepted(sent: u64, failed: &[u64]) -> impl Iterator<Item = u64> {
    let mut failed = failed.to_vec();
    failed.sort_unstable();
    (0..sent).filter(move |k| failed.binary_search(k).is_err())
}

/// The sequence numbers user `user` of `users` was sent when push `k` of `0..sent` went to user
/// `k % users` with sequence number `k / users`, without the refused pushes `failed` (their `k`).
pub fn accepted_for_user(
    user: usize,
    users: usize,
    sent: u64,
    failed: &[u64],
) -> impl Iterator<Item = u64> {
    let (user, users) = (user as u64, users.max(1) as u64);
    let count = sent / users + u64::from(user < sent % users);
    let failed: Vec<u64> = failed
        .iter()
        .filter(|k| *k % users == user)
        .map(|k| k / users)
        .collect();
    accepted(count, &failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger(seqs: &[u64]) -> Ledger {
        let mut l = Ledger::default();
        for &s in seqs {
            l.record(s);
        }
        l
    }

    #[test]
    fn a_clean_cut_is_exactly_once() {
        // Live 0..3, cut, the replay 3..5 then live 5..8: each once.
        let l = ledger(&[0, 1, 2, 3, 4, 5, 6, 7]);
        let a = l.account(0..8);
        assert_eq!(
            a,
            Account {
                received: 8,
                ..Account::default()
            }
        );
        assert_eq!(l.len(), 8);
    }

    #[test]
    fn a_gap_across_the_cut_is_missing_and_a_replay_of_seen_pushes_is_duplicated() {
        // 3 and 4 were sent during the cut and never replayed; 1 and 2 replayed again.
        let a = ledger(&[0, 1, 2, 1, 2, 5, 6]).account(0..7);
        assert_eq!(
            (a.received, a.missing, a.duplicated, a.unexpected),
            (5, 2, 2, 0)
        );
        assert_eq!(
            (a.missing_seqs, a.duplicated_seqs),
            (vec![3, 4], vec![1, 2])
        );
        // Out of order is still once each.
        assert_eq!(ledger(&[2, 0, 1]).account(0..3).received, 3);
    }

    #[test]
    fn refused_pushes_are_not_expected_but_counted_when_they_arrive() {
        let expected: Vec<u64> = accepted(6, &[4, 1]).collect();
        assert_eq!(expected, [0, 2, 3, 5]);
        let a = ledger(&[0, 1, 2, 3, 5, 9]).account(expected);
        assert_eq!((a.received, a.missing, a.unexpected), (4, 0, 2));
        // Nothing received: all missing.
        assert_eq!(Ledger::default().account(0..4).missing, 4);
    }

    #[test]
    fn user_pushes_round_robin() {
        // 10 pushes over 4 users: user 1 gets k = 1, 5, 9 (seq 0, 1, 2); k = 5 refused.
        let got: Vec<u64> = accepted_for_user(1, 4, 10, &[5, 6]).collect();
        assert_eq!(got, [0, 2]);
        let got: Vec<u64> = accepted_for_user(3, 4, 10, &[]).collect();
        assert_eq!(got, [0, 1]);
    }
}
