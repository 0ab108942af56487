//! Compiles `zkid/v1/*.proto` with protox (a pure-Rust protobuf compiler,
//! so no system `protoc` is needed), writes the file descriptor set that
//! server reflection serves, and generates prost messages and tonic
//! clients and servers from it.

use std::{env, fs, io, path::PathBuf};

use prost::Message;

const PROTOS: &[&str] = &[
    "zkid/v1/common.proto",
    "zkid/v1/enrollment.proto",
    "zkid/v1/verification.proto",
    "zkid/v1/device.proto",
    "zkid/v1/audit.proto",
    "zkid/v1/keys.proto",
    "zkid/v1/operator.proto",
];

fn main() -> io::Result<()> {
    println!("cargo:rerun-if-changed=build.rs");
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors =
        protox::compile(PROTOS, ["."]).map_err(|e| io::Error::other(format!("{e:?}")))?;
    let out_dir =
        PathBuf::from(env::var_os("OUT_DIR").ok_or_else(|| io::Error::other("OUT_DIR unset"))?);
    fs::write(
        out_dir.join("zkid_v1_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .emit_rerun_if_changed(false)
        .compile_fds(descriptors)
}
