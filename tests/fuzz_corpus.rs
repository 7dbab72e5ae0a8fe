//! Replays every file of the fuzz corpus (`fuzz/corpus/`) through the same
//! entry points the fuzz targets use, so a regression fails here without a
//! fuzzer installed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use tavern::fuzzing::{SessionHarness, decode_in_chunks};

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    files
}

#[test]
fn the_frame_decoder_corpus_decodes_within_its_rules() {
    for file in corpus("frame_decoder") {
        decode_in_chunks(&std::fs::read(&file).unwrap());
    }
}

#[test]
fn the_session_corpus_runs_through_real_actors() {
    let harness = SessionHarness::new();
    for file in corpus("session_input") {
        harness.run(&std::fs::read(&file).unwrap());
    }
}
