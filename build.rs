//! Generates Rust types for the node's .proto files without a system protoc.
//!
//! protox parses proto/storage.proto and the gRPC health and reflection
//! protocols (proto/grpc/) into one descriptor set; prost-build turns it
//! into message types for the server (`bytes` fields as `Bytes`), and
//! tonic-prost-build emits client stubs (no server) into a separate folder
//! for the integration tests. The server itself never links tonic. The
//! descriptor set is also written out whole (`descriptors.bin`) and embedded
//! in the binary, for server reflection.
use prost::Message;
use std::path::PathBuf;

/// Every file the node serves a service of; their imports come along.
const PROTOS: [&str; 4] = [
    "proto/storage.proto",
    "proto/grpc/health/v1/health.proto",
    "proto/grpc/reflection/v1/reflection.proto",
    "proto/grpc/reflection/v1alpha/reflection.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let fds = protox::compile(PROTOS, ["proto"])?;
    std::fs::write(out.join("descriptors.bin"), fds.encode_to_vec())?;

    let server_dir = out.join("server");
    std::fs::create_dir_all(&server_dir)?;
    let mut config = prost_build::Config::new();
    config.out_dir(&server_dir);
    config.bytes(["."]);
    config.compile_fds(fds.clone())?;

    let client_dir = out.join("client");
    std::fs::create_dir_all(&client_dir)?;
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        .out_dir(&client_dir)
        .compile_fds(fds)?;
    Ok(())
}
