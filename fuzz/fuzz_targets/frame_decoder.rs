//! Arbitrary bytes, cut into arbitrary reads, through the frame decoder as
//! both ends see them: it must return messages or errors, never panic, and
//! never buffer past its limit.
#![no_main]

use ddm_proto::frame::FrameDecoder;
use ddm_proto::message::{ClientMessage, ServiceMessage};
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 4096;

fn drain<M: ddm_proto::prost::Message + Default>(bytes: &[u8]) {
    let (cuts, stream) = bytes.split_at(bytes.len().min(1));
    let step = usize::from(cuts.first().copied().unwrap_or(7)).max(1);
    let mut decoder = FrameDecoder::new(LIMIT);
    for chunk in stream.chunks(step) {
        decoder.extend(chunk);
        loop {
            match decoder.next_message::<M>() {
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}

fuzz_target!(|bytes: &[u8]| {
    drain::<ClientMessage>(bytes);
    drain::<ServiceMessage>(bytes);
});
