//! Generates the message types from `proto/ddm.proto` at build time, with
//! protox (a protobuf compiler in Rust) and prost-build: the schema is the
//! one source of truth and no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const SCHEMA: &str = "proto/ddm.proto";
    println!("cargo:rerun-if-changed={SCHEMA}");
    let descriptors = protox::compile([SCHEMA], ["proto"])?;
    // The largest variants are boxed, so that a request or a reply in
    // flight (held in every session's task) stays as small as the common
    // ones: these would double it.
    prost_build::Config::new()
        .boxed(".ddm.v1.ClientMessage.body.history")
        .boxed(".ddm.v1.ClientMessage.body.uptime")
        .boxed(".ddm.v1.Reply.result.journal")
        .compile_fds(descriptors)?;
    Ok(())
}
