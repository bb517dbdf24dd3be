//! How the supervisor registers a stream (a session that is not a Socket.IO client, e.g. a
//! Server-Sent Events stream): in its rooms at once, and, when its client names the last push
//! it got, with the pushes after it from the recovery history.
//!
//! A stream has no kept session to come back to: its client only knows an offset. So from the
//! first stream on, the push log holds every push, even one no live session receives (a
//! stream's client may be away and come back for it), and an offset is resumed from only when
//! every push after it was logged. A push that was not logged takes no position, so an offset
//! from before the first stream cannot tell whether one was skipped after it.

use actix::prelude::*;

use super::RoomSupervisor;
use crate::messages::{JoinRoom, RegisterSession, RegisterStream, StreamStart};

impl Handler<RegisterStream> for RoomSupervisor {
    type Result = StreamStart;

    fn handle(&mut self, msg: RegisterStream, ctx: &mut Self::Context) -> StreamStart {
        let register = RegisterSession {
            session: msg.session,
            inbox: msg.inbox,
            going_away: msg.going_away,
            sid: String::new(),
            pid: None,
            user_id: msg.user_id,
            recover: None,
        };
        // Through the session handlers themselves: a stream is registered and joins its rooms
        // exactly as a Socket.IO session does.
        <Self as Handler<RegisterSession>>::handle(self, register, ctx);
        for room in &msg.rooms {
            let join = JoinRoom {
                session: msg.session,
                room: room.clone(),
            };
            <Self as Handler<JoinRoom>>::handle(self, join, ctx);
        }
        let Some(store) = &self.recovery else {
            return match msg.resume_after {
                None => StreamStart::Live,
                Some(_) => StreamStart::HistoryLost,
            };
        };
        // Every push after this position is logged; pushes between it and the first stream
        // may not have been, unseen: only an offset after it has every later push in the log.
        let complete_after = *self
            .logs_every_push_since
            .get_or_insert_with(|| store.log.head());
        let Some(offset) = msg.resume_after else {
            return StreamStart::Live;
        };
        let is_member = |room: &str| msg.rooms.iter().any(|r| r == room);
        match store.log.position(&offset) {
            Some(after) if after > complete_after => store
                .log
                .pushes_after(after, &is_member)
                .map_or(StreamStart::HistoryLost, |missed| StreamStart::Resumed {
                    missed,
                }),
            _ => StreamStart::HistoryLost,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use actix::prelude::*;

    use crate::messages::*;
    use crate::metrics::Metrics;
    use crate::room_supervisor::tests::{push, register, settle};
    use crate::testing::{ProbeSession, Received};
    use crate::RoomSupervisor;

    /// Encodes a push as `<payload>@<offset>`.
    fn encode(_event: &str, payload: &str, offset: Option<&str>) -> String {
        format!("{payload}@{}", offset.unwrap_or("-"))
    }

    fn supervisor(recovery: bool) -> Addr<RoomSupervisor> {
        let sup = RoomSupervisor::new(encode, Arc::new(Metrics::new()));
        let window = Duration::from_secs(if recovery { 60 } else { 0 });
        sup.with_recovery(window, 1 << 20).start()
    }

    /// Register stream `session` of user `a` in `user:a`, resuming after `offset`; what it
    /// gets live goes to `seen`.
    fn stream(
        session: SessionId,
        offset: Option<&str>,
        seen: &Arc<Mutex<Vec<String>>>,
    ) -> RegisterStream {
        let seen = seen.clone();
        let (probe, inbox) = ProbeSession::start(move |received| {
            if let Received::Packets(packets) = received {
                seen.lock().unwrap().extend(packets);
            }
        });
        RegisterStream {
            session,
            inbox,
            going_away: probe.recipient(),
            user_id: "a".into(),
            rooms: vec!["user:a".into()],
            resume_after: offset.map(str::to_owned),
        }
    }

    /// The offset of a packet made by [`encode`].
    fn offset_of(packet: &str) -> String {
        packet.split_once('@').unwrap().1.to_owned()
    }

    #[actix::test]
    async fn a_stream_resumes_after_its_offset_with_what_its_rooms_got_while_it_was_away() {
        let sup = supervisor(true);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let start = sup.send(stream(1, None, &seen)).await.unwrap();
        assert_eq!(start, StreamStart::Live);
        assert_eq!(sup.send(push("user:a", "1")).await.unwrap(), 1);
        settle().await;
        let first = seen.lock().unwrap()[0].clone();
        sup.do_send(UnregisterSession {
            session: 1,
            keep: false,
        });
        // Nobody receives these live, and no session is kept: logged all the same.
        for (room, payload) in [("user:a", "2"), ("user:b", "3"), ("user:a", "4")] {
            assert_eq!(sup.send(push(room, payload)).await.unwrap(), 0);
        }
        let again = Arc::new(Mutex::new(Vec::new()));
        let start = sup
            .send(stream(2, Some(&offset_of(&first)), &again))
            .await
            .unwrap();
        let StreamStart::Resumed { missed } = start else {
            panic!("not resumed: {start:?}");
        };
        let missed: Vec<&str> = missed.iter().map(|p| &p[..1]).collect();
        assert_eq!(missed, ["2", "4"], "its own room's, in order");
        assert_eq!(sup.send(push("user:a", "5")).await.unwrap(), 1, "and live");
    }

    #[actix::test]
    async fn an_offset_from_before_every_push_was_logged_or_unknown_is_history_lost() {
        let sup = supervisor(true);
        let seen = Arc::new(Mutex::new(Vec::new()));
        // A push before any stream, received by a live Socket.IO-like session: logged.
        sup.do_send(register(9, &seen));
        sup.do_send(JoinRoom {
            session: 9,
            room: "user:a".into(),
        });
        sup.send(push("user:a", "1")).await.unwrap();
        settle().await;
        let early = offset_of(&seen.lock().unwrap()[0]);
        // Pushes nobody received before the first stream were not logged: an offset from then
        // may have gaps after it.
        sup.do_send(UnregisterSession {
            session: 9,
            keep: false,
        });
        sup.send(push("user:a", "2")).await.unwrap();
        let lost = sup.send(stream(1, Some(&early), &seen)).await.unwrap();
        assert_eq!(lost, StreamStart::HistoryLost);
        for unknown in ["0-1", "not an offset"] {
            let start = sup.send(stream(2, Some(unknown), &seen)).await.unwrap();
            assert_eq!(start, StreamStart::HistoryLost, "{unknown}");
        }
    }

    #[actix::test]
    async fn without_recovery_a_stream_is_live_and_an_offset_is_history_lost() {
        let sup = supervisor(false);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let start = sup.send(stream(1, None, &seen)).await.unwrap();
        assert_eq!(start, StreamStart::Live);
        let start = sup.send(stream(2, Some("1-1"), &seen)).await.unwrap();
        assert_eq!(start, StreamStart::HistoryLost);
        assert_eq!(sup.send(push("user:a", "x")).await.unwrap(), 2);
        settle().await;
        assert_eq!(*seen.lock().unwrap(), ["x@-", "x@-"], "no offsets");
    }
}
