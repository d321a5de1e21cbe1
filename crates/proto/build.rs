//! Generates the message types from `proto/ddm.proto` at build time, with
//! protox (a protobuf compiler in Rust) and prost-build: the schema is the
//! one source of truth and no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const SCHEMA: &str = "proto/ddm.proto";
    println!("cargo:rerun-if-changed={SCHEMA}");
    let descriptors = protox::compile([SCHEMA], ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
