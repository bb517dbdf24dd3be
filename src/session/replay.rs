//! A recovered session's replay: the pushes it missed, handed to its transport a bounded
//! slice at a time instead of all at once.
//!
//! The missed packets come from the push history by reference count; framing them all at
//! once (WebSocket frames, or one polling payload) would make each recovered client hold its
//! whole replay as one more buffer, and a mass recovery all of them together. So the
//! transport takes [`REPLAY_SLICE_BYTES`] at a time: the WebSocket frames the next slice only
//! once the previous one is written to the socket, a polling session puts one slice in each
//! GET's answer. Whatever the session writes meanwhile (`welcome`, answers, live pushes)
//! waits behind the replay, under the session's usual slow-reader bound.

use bytestring::ByteString;

/// The most packet bytes of missed pushes one slice holds (one packet larger than this is a
/// slice of its own): what a recovered session holds framed but not yet written of its
/// replay, besides the frame headers.
pub const REPLAY_SLICE_BYTES: usize = 16 * 1024;

/// The missed pushes still to be written, oldest first.
#[derive(Debug)]
pub struct Replay {
    missed: std::vec::IntoIter<ByteString>,
}

impl Replay {
    /// A replay of `missed`, oldest first.
    pub fn new(missed: Vec<ByteString>) -> Self {
        Replay {
            missed: missed.into_iter(),
        }
    }

    /// Whether every missed push was handed out.
    pub fn is_done(&self) -> bool {
        self.missed.len() == 0
    }

    /// How many missed pushes are left.
    pub fn left(&self) -> usize {
        self.missed.len()
    }

    /// The next packets, in order: as many as fit in [`REPLAY_SLICE_BYTES`], and at least
    /// one while any is left (empty once the replay is done).
    pub fn next_slice(&mut self) -> Vec<ByteString> {
        let rest = self.missed.as_slice();
        let mut bytes = 0;
        let count = rest
            .iter()
            .take_while(|packet| {
                bytes += packet.len();
                bytes <= REPLAY_SLICE_BYTES
            })
            .count()
            .max(rest.len().min(1));
        self.missed.by_ref().take(count).collect()
    }
}

/// A replay as the session hands it to its transport (see
/// [`SocketSession::take_replay`](super::SocketSession::take_replay)): it goes after the
/// first `at` packets written with it (the CONNECT reply) and before the others.
#[derive(Debug)]
pub struct ReplayAt {
    /// How many of the packets written with it go before it.
    pub at: usize,
    /// The missed pushes.
    pub replay: Replay,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packets(sizes: &[usize]) -> Vec<ByteString> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, size)| ByteString::from(format!("{i:0size$}")))
            .collect()
    }

    #[test]
    fn slices_keep_the_order_and_stay_within_the_bound() {
        let missed = packets(&[100; 1000]);
        let mut replay = Replay::new(missed.clone());
        let mut got = Vec::new();
        loop {
            let slice = replay.next_slice();
            if slice.is_empty() {
                break;
            }
            let bytes: usize = slice.iter().map(|p| p.len()).sum();
            assert!(bytes <= REPLAY_SLICE_BYTES, "{bytes}");
            assert_eq!(
                slice.len(),
                (REPLAY_SLICE_BYTES / 100).min(1000 - got.len())
            );
            got.extend(slice);
        }
        assert!(replay.is_done());
        assert_eq!(got, missed, "every packet once, in order");
    }

    #[test]
    fn a_packet_larger_than_a_slice_is_a_slice_of_its_own() {
        let missed = packets(&[10, REPLAY_SLICE_BYTES + 1, 10, 10]);
        let mut replay = Replay::new(missed.clone());
        assert_eq!(replay.next_slice(), missed[..1]);
        assert_eq!(replay.next_slice(), missed[1..2]);
        assert_eq!(replay.left(), 2);
        assert_eq!(replay.next_slice(), missed[2..]);
        assert!(replay.next_slice().is_empty());
        assert!(Replay::new(Vec::new()).is_done());
    }
}
