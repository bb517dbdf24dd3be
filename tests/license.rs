//! The `LICENSE` file is the license every crate of the repository declares.

use std::path::Path;

fn manifest(path: &str) -> toml::Table {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    text.parse().unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn every_crate_declares_the_license_in_the_license_file() {
    let root = manifest("Cargo.toml");
    let license = root["workspace"]["package"]["license"].as_str().unwrap();
    assert_eq!(license, "MIT");
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("LICENSE"))
        .expect("a LICENSE file");
    assert!(text.starts_with("MIT License\n"), "{text}");
    let members = root["workspace"]["members"].as_array().unwrap();
    let excluded = root["workspace"]["exclude"].as_array().unwrap();
    for dir in members.iter().chain(excluded).map(|m| m.as_str().unwrap()) {
        let path = format!("{dir}/Cargo.toml");
        let package = manifest(&path)["package"].clone();
        let declared = &package["license"];
        let ok = declared.as_str() == Some(license)
            || declared.get("workspace").and_then(toml::Value::as_bool) == Some(true);
        assert!(ok, "{path}: license {declared:?}");
    }
}
