//! A session's part in the Socket.IO Admin UI (docs/admin-ui.md): the `/admin` namespace the UI
//! connects, and what a root-namespace socket tells the admin view and takes from it.
//!
//! When the admin UI is configured ([`crate::admin_ui`]), a CONNECT to `/admin` logs in: a
//! session id given earlier is accepted at once; a username and password are checked off the
//! session's thread, and the answer comes back as an [`AdminUiNotice`]. A login is answered
//! with the CONNECT reply, `session` (a new session id, after a password), and `config` (the
//! features the UI may use); the admin view then sends `all_sockets`, `server_stats` and every
//! change, which arrive as notices too. A refused login is a CONNECT_ERROR
//! `invalid credentials`, as the official server answers. The admin socket never registers
//! with the room supervisor: it gets no push and is no client in `pushgate_connected_clients`.
//!
//! A read-write UI's `join`, `leave` and `_disconnect` go to the view, which hands them to the
//! target sockets' sessions: a join within `MAX_ROOMS_PER_SOCKET` (the client's ACL does not
//! apply to an operator), a leave, or a disconnect (`admin_ui` in [`crate::disconnect`]: a
//! Socket.IO DISCONNECT, then the transport closes). A read-only UI's are ignored.

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use pushgate_actors::admin_view::{
    Operate, SocketClosed, SocketCommand, SocketOpened, TransportUpgraded, Unwatch, Watch,
};
use serde_json::{json, Value};

use super::{socket_packet, Outbound, SocketSession};
use crate::acl;
use crate::admin_ui::login::{self, Offered};
use crate::client_event_limit::Verdict;
use crate::disconnect::CloseReason;
use crate::protocol::socketio::Packet;

/// The namespace the admin UI connects.
pub const ADMIN_NAMESPACE: &str = "/admin";

/// What a refused login is told (the official server's words, which the UI shows).
const INVALID_CREDENTIALS: &str = "invalid credentials";

/// Something from the admin UI's side for a session, handled on the session's thread.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AdminUiNotice {
    /// What it is.
    pub notice: Notice,
}

/// The kinds of [`AdminUiNotice`].
pub enum Notice {
    /// The password check of this session's `/admin` CONNECT ended.
    LoginChecked {
        /// Whether the password matched.
        ok: bool,
    },
    /// An event for this logged-in UI, as the JSON array of a Socket.IO event.
    Event(Arc<str>),
    /// An operator's command for this root-namespace socket.
    Command(SocketCommand),
}

/// What a session keeps for the admin UI.
#[derive(Default)]
pub(super) struct AdminUiPart {
    /// The handshake as the UI shows it (only taken when the admin UI is on).
    handshake: Option<Value>,
    /// The transport it runs on now.
    transport: &'static str,
    /// The socket id the view knows the root-namespace socket by, once told.
    announced: Option<String>,
    /// `/admin` is logged in.
    watching: bool,
    /// A password check is running.
    checking: bool,
}

impl SocketSession {
    /// Keep the handshake the admin UI shows this socket with, and its `transport`
    /// (`polling` or `websocket`); called by the endpoint when the admin UI is on.
    pub fn describe_for_admin_ui(&mut self, handshake: Value, transport: &'static str) {
        self.admin_ui.handshake = Some(handshake);
        self.admin_ui.transport = transport;
    }

    /// The polling transport upgraded to WebSocket.
    pub fn upgraded(&mut self) {
        self.admin_ui.transport = "websocket";
        if let (Some(admin), Some(_)) = (&self.ctx.admin_ui, &self.admin_ui.announced) {
            admin.view.do_send(TransportUpgraded { session: self.id });
        }
    }

    /// Tell the admin view the root namespace connected as `sid`, in `rooms` already.
    pub(super) fn announce_to_admin_ui(&mut self, sid: &str, rooms: Vec<String>) {
        let (Some(admin), Some(handshake), Some(notices)) =
            (&self.ctx.admin_ui, &self.admin_ui.handshake, &self.notices)
        else {
            return;
        };
        let notices = notices.clone();
        admin.view.do_send(SocketOpened {
            session: self.id,
            sid: sid.to_owned(),
            client_id: format!("{:012x}", self.id),
            transport: self.admin_ui.transport,
            handshake: handshake.clone(),
            rooms,
            commands: Box::new(move |command| {
                notices.do_send(AdminUiNotice {
                    notice: Notice::Command(command),
                })
            }),
        });
        self.admin_ui.announced = Some(sid.to_owned());
    }

    /// Tell the admin view the root-namespace socket ended for `reason`, and that the UI's
    /// socket no longer watches; each once.
    pub(super) fn leave_admin_ui(&mut self, reason: &'static str) {
        self.forget_admin_ui_socket(reason);
        self.stop_watching();
    }

    /// Tell the admin view the root-namespace socket ended for `reason` (once).
    pub(super) fn forget_admin_ui_socket(&mut self, reason: &'static str) {
        if let (Some(admin), Some(_)) = (&self.ctx.admin_ui, self.admin_ui.announced.take()) {
            admin.view.do_send(SocketClosed {
                session: self.id,
                reason,
            });
        }
    }

    /// The UI's socket no longer watches (it left `/admin`, or the session ended).
    pub(super) fn stop_watching(&mut self) {
        let watching = std::mem::take(&mut self.admin_ui.watching);
        if let (Some(admin), true) = (&self.ctx.admin_ui, watching) {
            admin.view.do_send(Unwatch { watcher: self.id });
        }
    }

    /// A CONNECT to `/admin` (the admin UI is on): log in, or refuse.
    pub(super) fn on_admin_connect(
        &mut self,
        packet: &Packet,
        out: &mut Vec<Outbound>,
    ) -> Result<(), CloseReason> {
        let Some(admin) = self.ctx.admin_ui.clone() else {
            return Ok(());
        };
        if self.admin_ui.checking {
            return Ok(()); // the answer to the first one comes
        }
        let now = Instant::now();
        match Offered::read(packet.data.as_ref()) {
            Offered::Session(id) if admin.sessions.is_valid(id, now) => {
                self.admin_logged_in(None, out);
                Ok(())
            }
            Offered::Password { username, password } if username == admin.config.username => {
                if let Err(not_checked) = admin.throttle.begin(now) {
                    log::warn!(
                        "admin UI login from session {} refused: {not_checked}",
                        self.sid
                    );
                    return self.refuse_admin(out);
                }
                let (Some(notices), hash) =
                    (self.notices.clone(), admin.config.password_hash.clone())
                else {
                    return self.refuse_admin(out);
                };
                self.admin_ui.checking = true;
                let check = login::check_password(password.to_owned(), hash);
                actix::spawn(async move {
                    let ok = check.await;
                    notices.do_send(AdminUiNotice {
                        notice: Notice::LoginChecked { ok },
                    });
                });
                Ok(())
            }
            Offered::Password { .. } => {
                admin.throttle.failed(now);
                self.refuse_admin(out)
            }
            Offered::Session(_) | Offered::Nothing => self.refuse_admin(out),
        }
    }

    /// An [`AdminUiNotice`] for this session.
    pub fn on_admin_ui_notice(
        &mut self,
        notice: Notice,
        out: &mut Vec<Outbound>,
    ) -> Result<(), CloseReason> {
        if self.ended {
            return Ok(());
        }
        match notice {
            Notice::LoginChecked { ok } => {
                self.admin_ui.checking = false;
                let Some(admin) = self.ctx.admin_ui.clone() else {
                    return Ok(());
                };
                let now = Instant::now();
                admin.throttle.finished(ok, now);
                if !ok {
                    log::info!("admin UI login refused: invalid credentials");
                    return self.refuse_admin(out);
                }
                self.admin_logged_in(Some(admin.sessions.open(now)), out);
                Ok(())
            }
            Notice::Event(event) => {
                if self.admin_ui.watching {
                    out.push(admin_event(&event));
                }
                Ok(())
            }
            Notice::Command(command) => self.on_operator_command(command, out),
        }
    }

    /// The UI logged in (with a password when `new_session` is the session id it is given).
    fn admin_logged_in(&mut self, new_session: Option<String>, out: &mut Vec<Outbound>) {
        let (Some(admin), Some(notices)) = (self.ctx.admin_ui.clone(), self.notices.clone()) else {
            return;
        };
        self.limits.connect_accepted();
        self.namespaces.push(ADMIN_NAMESPACE.into());
        self.ever_connected = true;
        self.pending_slot = None;
        self.admin_ui.watching = true;
        let reply = Packet::connect_ok(ADMIN_NAMESPACE, &super::random_id());
        out.push(socket_packet(reply.encode()));
        if let Some(id) = new_session {
            out.push(admin_event(&json!(["session", id]).to_string()));
        }
        let config = json!(["config", {"supportedFeatures": admin.features()}]);
        out.push(admin_event(&config.to_string()));
        admin.view.do_send(Watch {
            watcher: self.id,
            feed: Box::new(move |event| {
                notices
                    .try_send(AdminUiNotice {
                        notice: Notice::Event(event),
                    })
                    .is_ok()
            }),
        });
        log::info!("session {}: admin UI logged in", self.sid);
    }

    fn refuse_admin(&mut self, out: &mut Vec<Outbound>) -> Result<(), CloseReason> {
        let refusal = Packet::connect_error(ADMIN_NAMESPACE, INVALID_CREDENTIALS);
        out.push(socket_packet(refusal.encode()));
        if self.limits.connect_refused() {
            return Err(CloseReason::ConnectRefused);
        }
        Ok(())
    }

    /// An event from the logged-in UI: an action when the UI may act, else nothing.
    pub(super) fn on_admin_event(&mut self, packet: &Packet) -> Result<(), CloseReason> {
        match self.limits.check_event(Instant::now()) {
            Verdict::Allow => {}
            Verdict::Drop { .. } => return Ok(()),
            Verdict::Disconnect => return Err(CloseReason::RateLimited),
        }
        let Some(admin) = &self.ctx.admin_ui else {
            return Ok(());
        };
        if admin.config.readonly {
            return Ok(());
        }
        if let (Some(name), args) = (packet.event_name(), packet.args()) {
            if let Some(operate) = operation(&name, args) {
                admin.view.do_send(operate);
            }
        }
        Ok(())
    }

    /// An operator's command for this root-namespace socket.
    fn on_operator_command(
        &mut self,
        command: SocketCommand,
        out: &mut Vec<Outbound>,
    ) -> Result<(), CloseReason> {
        if self.connection.is_none() {
            return Ok(());
        }
        match command {
            SocketCommand::Join(room) => {
                if !acl::is_valid_room_name(&room) {
                    return Ok(());
                }
                if self.limits.may_join(&room).is_err() {
                    self.ctx.metrics.room_joins_refused.inc();
                    return Ok(());
                }
                self.join(room);
            }
            SocketCommand::Leave(room) => self.leave(room),
            SocketCommand::Disconnect => {
                out.push(socket_packet(Packet::disconnect("/").encode()));
                return Err(CloseReason::AdminUi);
            }
        }
        Ok(())
    }
}

/// An admin-namespace event packet around `event` (the JSON array of a Socket.IO event).
fn admin_event(event: &str) -> Outbound {
    Outbound::Text(format!("42{ADMIN_NAMESPACE},{event}").into())
}

/// The action the UI asks for with event `name` (`join` and `leave`: namespace, room and an
/// optional filter; `_disconnect`: namespace, whether to close the connection, an optional
/// filter); `None` for anything else or malformed.
fn operation(name: &str, args: &[Value]) -> Option<Operate> {
    let text = |i: usize| args.get(i).and_then(Value::as_str).map(str::to_owned);
    let nsp = text(0)?;
    let (command, filter) = match name {
        "join" => (SocketCommand::Join(text(1)?), text(2)),
        "leave" => (SocketCommand::Leave(text(1)?), text(2)),
        // Whether the UI asks to close the whole connection or only the namespace, the
        // socket's connection closes: it has no other namespace.
        "_disconnect" => (SocketCommand::Disconnect, text(2)),
        _ => return None,
    };
    Some(Operate {
        nsp,
        filter: filter.filter(|f| !f.is_empty()),
        command,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_uis_actions_are_read_and_anything_else_is_not() {
        let join = operation("join", &[json!("/"), json!("admin"), json!("abc")]).unwrap();
        assert_eq!(
            (join.nsp.as_str(), join.filter.as_deref(), join.command),
            ("/", Some("abc"), SocketCommand::Join("admin".into()))
        );
        let clear = operation("leave", &[json!("/"), json!("room")]).unwrap();
        assert_eq!(clear.filter, None);
        let kick = operation("_disconnect", &[json!("/"), json!(false), json!("abc")]).unwrap();
        assert_eq!(kick.command, SocketCommand::Disconnect);
        assert!(operation("emit", &[json!("/"), json!("x")]).is_none());
        assert!(operation("join", &[json!("/")]).is_none());
        assert!(operation("join", &[json!(1), json!("r")]).is_none());
        assert!(operation("join", &[]).is_none());
    }
}
