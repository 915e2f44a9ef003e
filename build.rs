//! Generates Rust types for proto/storage.proto without a system protoc.
//!
//! protox parses the .proto file into a descriptor set; prost-build turns it
//! into message types for the server (`bytes` fields as `Bytes`), and
//! tonic-prost-build emits client stubs (no server) into a separate folder for
//! the integration tests. The server itself never links tonic.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/storage.proto");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let fds = protox::compile(["proto/storage.proto"], ["proto"])?;

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
