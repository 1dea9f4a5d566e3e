//! The top-level modules import each other without a cycle (`scripts/module_cycles.py`): the
//! crypto core knows nothing of config, sinks or the spool, and each layer only uses those
//! below it.

#[test]
fn no_import_cycle_between_top_level_modules() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = std::process::Command::new("python3")
        .arg(format!("{root}/scripts/module_cycles.py"))
        .arg(format!("{root}/src"))
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("no cycle between top-level modules"),
        "{text}"
    );
}
