//! Style checked mechanically (after TigerBeetle's tidy.zig): the dependency direction between
//! modules, no leftover debugging, and line length.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Which `crate::` modules each module may not use (DESIGN.md's layout table).
const FORBIDDEN: &[(&str, &[&str])] = &[
    (
        "model",
        &["storage", "protocol", "server", "broker", "client", "cli", "shard", "group", "cluster", "replication"],
    ),
    ("storage", &["protocol", "server", "broker", "client", "cli", "group", "cluster", "replication"]),
    ("protocol", &["storage", "server", "broker", "client", "cli", "shard"]),
    ("client", &["storage", "server", "broker", "group", "cluster", "replication", "shard", "bench", "cli"]),
    ("bench", &["storage", "server", "broker", "group", "cluster", "replication", "shard", "cli"]),
    ("group", &["server", "broker", "client", "cli", "bench", "cluster", "replication", "shard"]),
];

#[test]
fn modules_depend_only_downwards() {
    let mut violations = Vec::new();
    for (module, forbidden) in FORBIDDEN {
        for file in rust_files(&src().join(module)) {
            let text = std::fs::read_to_string(&file).expect("read source");
            for (n, line) in text.lines().enumerate() {
                for target in *forbidden {
                    if line.contains(&format!("crate::{target}::")) || line.contains(&format!("crate::{target}}}")) {
                        violations.push(format!("{}:{}: {module} uses crate::{target}", file.display(), n + 1));
                    }
                }
            }
        }
    }
    assert!(violations.is_empty(), "dependency direction broken:\n{}", violations.join("\n"));
}

#[test]
fn no_leftover_debugging_and_short_lines() {
    let mut problems = Vec::new();
    for file in rust_files(&src()) {
        let text = std::fs::read_to_string(&file).expect("read source");
        for (n, line) in text.lines().enumerate() {
            let at = format!("{}:{}", file.display(), n + 1);
            for marker in ["dbg!(", "FIXME", "XXX", "todo!(", "unimplemented!("] {
                if line.contains(marker) {
                    problems.push(format!("{at}: {marker}"));
                }
            }
            if line.chars().count() > 120 {
                problems.push(format!("{at}: line longer than 120 characters"));
            }
        }
    }
    assert!(problems.is_empty(), "tidy:\n{}", problems.join("\n"));
}
