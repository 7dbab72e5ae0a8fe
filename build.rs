//! Compiles `proto/tavern/v1/*.proto`, `proto/tavern/examples/v1/*.proto` and `proto/tavern/cluster/v1/*.proto` into Rust with the pure-Rust `protox`
//! parser feeding `prost-build`, so building needs no `protoc` on the machine.

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new("proto");
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in [
        root.join("tavern").join("v1"),
        root.join("tavern").join("examples").join("v1"),
        root.join("tavern").join("cluster").join("v1"),
    ] {
        println!("cargo:rerun-if-changed={}", dir.display());
        files.extend(
            std::fs::read_dir(&dir)?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|path| path.extension().is_some_and(|ext| ext == "proto")),
        );
    }
    files.sort();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let descriptors = protox::compile(&files, [root])?;
    // `bytes` fields (plugin data) as `Bytes`, so a frame's data is shared, not copied.
    // The cluster's messages carry the client protocol's types as they are:
    // generated against `crate::protocol::pb`, and first, so that the pass for
    // the client protocol's own files writes those.
    prost_build::Config::new()
        .bytes(["."])
        .extern_path(".tavern.v1", "crate::protocol::pb")
        .compile_fds(descriptors.clone())?;
    let mut own = descriptors;
    own.file.retain(|file| file.package() != "tavern.cluster.v1");
    prost_build::Config::new().bytes(["."]).compile_fds(own)?;
    Ok(())
}
