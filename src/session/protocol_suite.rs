//! What sessions do only for the official protocol test suites (the test-only server
//! `src/bin/protocol-suite-server.rs`, [`Mode::ProtocolTestSuite`](super::Mode)): no auth, a
//! second namespace, an `auth` event echoing the CONNECT payload, and echoed events. The
//! gateway never runs this code.

use serde_json::{json, Value};

use super::{random_id, socket_packet, Outbound};
use crate::protocol::socketio::{BinaryPacket, Packet, PacketKind};

/// The namespace the suite connects to besides `/`.
pub const CUSTOM_NAMESPACE: &str = "/custom";

/// Accept a CONNECT to `packet.nsp` without auth: its answer goes in `out`, the `auth` event
/// carrying the CONNECT payload in `deferred` (written a moment later, see
/// [`SocketSession::take_deferred`](super::SocketSession::take_deferred)).
pub fn accept_connect(packet: &Packet, out: &mut Vec<Outbound>, deferred: &mut Vec<Outbound>) {
    let auth = packet.data.clone().unwrap_or_else(|| json!({}));
    let ack = Packet::connect_ok(packet.nsp.clone(), &random_id());
    out.push(socket_packet(ack.encode()));
    let auth = Packet::event(packet.nsp.clone(), json!(["auth", auth]), None);
    deferred.push(socket_packet(auth.encode()));
}

/// `message` is answered with `message-back` carrying the same arguments,
/// `message-with-ack` with an ack carrying them; attachments go back as they came.
pub fn echo(complete: BinaryPacket, out: &mut Vec<Outbound>) {
    let BinaryPacket {
        packet,
        attachments,
    } = complete;
    let binary = !attachments.is_empty();
    let args = packet.args().to_vec();
    let (kind, id, data) = match (packet.event_name().as_deref(), packet.id) {
        (Some("message"), _) => {
            let mut data = vec![json!("message-back")];
            data.extend(args);
            (PacketKind::Event, None, data)
        }
        (Some("message-with-ack"), Some(id)) => (PacketKind::Ack, Some(id), args),
        _ => return,
    };
    let kind = match (kind, binary) {
        (PacketKind::Event, true) => PacketKind::BinaryEvent,
        (PacketKind::Ack, true) => PacketKind::BinaryAck,
        (kind, _) => kind,
    };
    let reply = Packet {
        kind,
        nsp: packet.nsp.clone(),
        id,
        data: Some(Value::Array(data)),
        attachments: attachments.len(),
    };
    out.push(socket_packet(reply.encode()));
    out.extend(attachments.into_iter().map(Outbound::Binary));
}
