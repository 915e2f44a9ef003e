//! Generates the `storage` protobuf types, the tonic client and the tonic
//! server trait from ../proto/storage.proto without a system protoc: protox
//! parses the file into a descriptor set and tonic-prost-build emits the code.
//! `bytes` fields become `bytes::Bytes` so values are shared, not copied, and
//! default stubs answer UNIMPLEMENTED for every RPC the reference server
//! leaves out.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=../proto/storage.proto");
    let fds = protox::compile(["../proto/storage.proto"], ["../proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .bytes(".")
        .generate_default_stubs(true)
        .compile_fds(fds)?;
    Ok(())
}
