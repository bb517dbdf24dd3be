//! The container build's essentials, read from `Dockerfile` and `.dockerignore` (the test
//! machines have no Docker daemon to build with): dependencies compiled in a layer of their own
//! before the sources are copied, every workspace member's manifest in it, a non-root runtime,
//! container defaults (every interface, the broker not on 127.0.0.1), no `RUST_LOG` that
//! would bring the noisy spans back, no probe tool missing from the image, and no nested build
//! outputs in the build context.

use std::path::Path;

/// The Dockerfile's instructions, continuation lines joined, comments dropped.
fn instructions() -> Vec<String> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile"))
        .expect("Dockerfile");
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    out
}

fn position(lines: &[String], what: impl Fn(&str) -> bool) -> Option<usize> {
    lines.iter().position(|l| what(l))
}

#[test]
fn dependencies_build_in_their_own_layer_before_the_sources() {
    let lines = instructions();
    let from: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with("FROM "))
        .collect();
    assert!(from.len() >= 2, "a multi-stage build: {lines:?}");
    let sources = position(&lines, |l| l == "COPY src src").expect("COPY src src");
    let deps_build = position(&lines, |l| {
        l.starts_with("RUN") && l.contains("cargo build")
    })
    .expect("a cargo build");
    assert!(
        deps_build < sources,
        "dependencies built before the sources are copied"
    );
    // Every workspace member's manifest, before that build.
    let manifest: toml::Table =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .unwrap()
            .parse()
            .unwrap();
    let members = manifest["workspace"]["members"].as_array().unwrap();
    for member in members.iter().map(|m| m.as_str().unwrap()) {
        let path = match member {
            "." => "Cargo.toml".to_owned(),
            m => format!("{m}/Cargo.toml"),
        };
        let copied = position(&lines, |l| {
            l.starts_with("COPY ") && l.split_whitespace().any(|w| w == path)
        })
        .unwrap_or_else(|| panic!("{path} is not copied: {lines:?}"));
        assert!(
            copied < deps_build,
            "{path} copied before the dependency build"
        );
    }
}

#[test]
fn the_runtime_has_container_defaults() {
    let lines = instructions();
    let last_from = lines.iter().rposition(|l| l.starts_with("FROM ")).unwrap();
    let runtime = &lines[last_from..];
    let user = runtime
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER in the runtime stage");
    assert!(!matches!(user.trim(), "root" | "0"), "non-root: {user}");
    let env: Vec<&str> = runtime
        .iter()
        .filter_map(|l| l.strip_prefix("ENV "))
        .flat_map(str::split_whitespace)
        .collect();
    assert!(env.contains(&"HOST=0.0.0.0"), "{env:?}");
    let broker = env
        .iter()
        .find_map(|e| e.strip_prefix("RABBITMQ_URL="))
        .expect("a RABBITMQ_URL for the container");
    assert!(
        !broker.contains("127.0.0.1") && !broker.contains("localhost"),
        "the broker is another container: {broker}"
    );
    assert!(
        !env.iter().any(|e| e.starts_with("RUST_LOG=")),
        "the built-in filter keeps the noisy spans out: {env:?}"
    );
    // A HEALTHCHECK must not call a tool the slim image lacks.
    for l in runtime.iter().filter(|l| l.starts_with("HEALTHCHECK")) {
        assert!(!l.contains("curl") && !l.contains("wget"), "{l}");
    }
}

#[test]
fn the_build_context_leaves_out_nested_build_outputs() {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(".dockerignore"))
        .expect(".dockerignore");
    let patterns: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    for needed in ["**/target", "**/node_modules", ".git", "**/.env"] {
        assert!(patterns.contains(&needed), "{needed} in {patterns:?}");
    }
}
