//! A client's whole byte stream through a real Session, World and Rooms.
#![no_main]

use std::sync::LazyLock;

use tavern::fuzzing::SessionHarness;

static HARNESS: LazyLock<SessionHarness> = LazyLock::new(SessionHarness::new);

libfuzzer_sys::fuzz_target!(|data: &[u8]| HARNESS.run(data));
