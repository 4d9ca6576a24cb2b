//! The `host` feature holds every dependency beyond the cancellation
//! primitive's, so `default-features = false` builds `apphost::cancel` on
//! tokio and tracing alone. (`.ci/run` also builds and lints that
//! configuration and checks its dependency tree.)

#[test]
fn only_tokio_and_tracing_are_not_behind_the_host_feature() {
    let manifest: toml::Table =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
            .unwrap()
            .parse()
            .unwrap();
    let host: Vec<&str> = manifest["features"]["host"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(
        manifest["features"]["default"].as_array().unwrap()[0].as_str(),
        Some("host")
    );
    for (name, spec) in manifest["dependencies"].as_table().unwrap() {
        let optional = spec
            .as_table()
            .and_then(|t| t.get("optional"))
            .and_then(|o| o.as_bool())
            .unwrap_or(false);
        match name.as_str() {
            "tokio" | "tracing" => assert!(!optional, "{name} is the primitive's"),
            _ => {
                assert!(optional, "{name} must be optional");
                assert!(
                    host.contains(&format!("dep:{name}").as_str()),
                    "{name} must be enabled by the host feature"
                );
            }
        }
    }
}
