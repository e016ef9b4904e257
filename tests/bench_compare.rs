//! `facegate bench --compare` end to end: it builds bench/.venv (python3 -m venv + pip install of
//! bench/requirements.txt), runs the onnxruntime side on one frame of each kind and prints the
//! comparison table.
//!
//! Ignored by default: it needs python3 with the venv module and access to PyPI on first run
//! (about a minute here), which `cargo test` must not depend on. Run it with
//! `cargo test --locked --test bench_compare -- --ignored`.

mod common;

#[test]
#[ignore = "needs python3-venv and PyPI (creates bench/.venv); run with --ignored"]
fn compare_runs_on_one_frame_and_prints_the_table() {
    let data = data_or_skip!();
    let out = common::facegate()
        .args(["bench", "--compare", "--frames", "1", "--runs", "1"])
        .args(["--gallery-size", "100", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    eprintln!("{stdout}");
    assert!(stdout.contains("| frames"), "{stdout}");
    for stage in [
        "pnet", "rnet", "onet", "liveness", "embed", "search", "total",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("| one face") && l.contains(&format!("| {stage}"))),
            "no {stage} row:\n{stdout}"
        );
    }
    // The fairness line: faces found on each side, matched by IoU, and thread-count identity.
    let line = stdout
        .lines()
        .find(|l| l.starts_with("same faces:"))
        .unwrap_or_else(|| panic!("no agreement line:\n{stdout}"));
    assert!(line.contains("/2 frames with the same count"), "{line}");
    assert!(line.contains("= one-thread facegate: yes"), "{line}");
    // Both sides score liveness with the same nets on (nearly) the same boxes.
    let live = stdout
        .lines()
        .find(|l| l.starts_with("liveness (v2+v1se): |facegate"))
        .unwrap_or_else(|| panic!("no liveness agreement line:\n{stdout}"));
    assert!(live.contains("max"), "{live}");
}
