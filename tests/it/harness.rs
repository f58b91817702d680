//! Shared helpers: where the binary is, temp dirs on the same filesystem as the build.

use std::path::PathBuf;

/// The `sluice` binary cargo built for these tests.
pub(crate) fn sluice_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sluice"))
}

/// A temp dir under the target dir, so direct I/O runs on a real disk filesystem even where
/// /tmp is a tmpfs.
pub(crate) fn temp_dir() -> tempfile::TempDir {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&base).expect("target tmpdir");
    tempfile::tempdir_in(base).expect("temp dir")
}
