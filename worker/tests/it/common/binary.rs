//! The `prostream` binary (the API and the client commands), for tests that run it as a process.

use std::{path::PathBuf, process::Command, sync::OnceLock};

/// The `prostream` binary of this build profile, built once per test process
/// (this crate cannot name another package's binary directly). The build blocks
/// the test's one runtime thread, so each test calls this before it starts the
/// API and a worker: a worker whose heartbeats stall for the length of a build
/// was seen never to poll again.
pub fn prostream_bin() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // target/<profile>/deps/it-<hash>
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let profile = profile_dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "--quiet", "-p", "prostream", "--bin", "prostream"]);
        if profile != "debug" {
            build.args(["--profile", &profile]);
        }
        assert!(
            build.status().unwrap().success(),
            "building prostream failed"
        );
        profile_dir.join("prostream")
    })
}
