//! Fuzz target: every decoder of the protocol codec on arbitrary bytes, and every encoder's
//! output decoded again.
//!
//! Run with `cargo fuzz run decode` (nightly), or on stable with
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run decode`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pushgate::protocol::engineio::{self, EioPacket};
use pushgate::protocol::socketio::{self, Decoder, Packet};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    // A WebSocket binary frame, and one arriving when no attachment is expected.
    assert_eq!(
        engineio::decode_binary(data),
        EioPacket::Binary(data.into())
    );
    assert!(Decoder::new().feed_binary(data.to_vec()).is_err());

    // The polling form of binary data.
    let b64 = engineio::encode_binary_for_polling(data);
    assert_eq!(
        engineio::decode_text(&b64),
        Ok(EioPacket::Binary(data.into()))
    );

    let Ok(text) = engineio::payload_str(data) else {
        return;
    };

    // A polling payload: split, decode each record, re-encode, decode again.
    let records: Vec<&str> = engineio::split_payload(text).collect();
    assert_eq!(engineio::encode_payload(&records), text);
    for record in records {
        if let Ok(packet) = engineio::decode_text(record) {
            let again = packet.to_text();
            assert_eq!(engineio::decode_text(&again).as_ref(), Ok(&packet));
            if let EioPacket::Message(message) = packet {
                socketio_round_trip(message);
            }
        }
    }

    // The whole input as one Socket.IO packet, and through the stateful decoder with the
    // rest of the input cut into attachments.
    socketio_round_trip(text);
    let mut decoder = Decoder::new();
    if let Ok(None) = decoder.feed_text(text) {
        for chunk in data.chunks(data.len().div_ceil(socketio::MAX_ATTACHMENTS).max(1)) {
            match decoder.feed_binary(chunk.to_vec()) {
                Ok(Some(full)) => {
                    let (header, frames) = full.encode();
                    assert_eq!(frames.len(), full.attachments.len());
                    socketio_round_trip(&header);
                    break;
                }
                Ok(None) => {}
                Err(_) => break,
            }
        }
    }

    // Hot-path encoders with an arbitrary event name.
    let message = socketio::encode_event_message(text, "");
    assert_eq!(
        message,
        format!("42[{}]", serde_json::to_string(text).unwrap())
    );
    match socketio::decode(&message[1..]) {
        Ok(packet) => assert_eq!(packet.event_name().as_deref(), Some(text)),
        Err(e) => assert!(socketio::RESERVED_EVENTS.contains(&text), "{e}"),
    }
    let id = data.len() as u64 * 7_919;
    let ack = socketio::encode_ack_message(id, "");
    assert_eq!(socketio::decode(&ack[1..]).map(|p| p.id), Ok(Some(id)));
});

/// Whatever decodes must re-encode into text that decodes to the same packet.
fn socketio_round_trip(text: &str) {
    let Ok(packet) = socketio::decode(text) else {
        return;
    };
    let encoded = packet.encode();
    let again = socketio::decode(&encoded)
        .unwrap_or_else(|e| panic!("{text:?} -> {encoded:?} does not decode: {e}"));
    assert!(same_packet(&packet, &again), "{text:?} -> {encoded:?}");
}

fn same_packet(a: &Packet, b: &Packet) -> bool {
    a.kind == b.kind
        && a.nsp == b.nsp
        && a.id == b.id
        && a.attachments == b.attachments
        && match (&a.data, &b.data) {
            (None, None) => true,
            (Some(x), Some(y)) => same_value(x, y),
            _ => false,
        }
}

/// Equality, except that floats may differ in the last bits: serde_json's default float
/// parser is best-effort, so a float does not always survive a text round trip exactly.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            x == y || (x - y).abs() <= x.abs().max(y.abs()) * 1e-15
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_value(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((kx, vx), (ky, vy))| kx == ky && same_value(vx, vy))
        }
        _ => a == b,
    }
}
