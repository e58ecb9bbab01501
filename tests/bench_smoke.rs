//! Smoke test of the benchmark suite: `luna-bench --quick` runs every
//! workload end to end and prints a `BENCH` line for each. Speed is not
//! checked here.

use std::process::Command;

#[test]
fn quick_run_prints_every_workload() {
    let output = Command::new(env!("CARGO_BIN_EXE_luna-bench"))
        .arg("--quick")
        .arg("--luna")
        .arg(env!("CARGO_BIN_EXE_luna"))
        .output()
        .expect("run luna-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "luna-bench --quick failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    for workload in ["W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "W9", "W10"] {
        let printed = stdout.lines().any(|line| {
            line.strip_prefix("BENCH ")
                .and_then(|rest| rest.strip_prefix(workload))
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('.'))
        });
        assert!(printed, "no BENCH line for {workload}:\n{stdout}\n{stderr}");
    }
    // Figures that share a workload with others (issues 14 and 15).
    for figure in [
        "W3.trace",
        "W4.publish",
        "W5.routed",
        "W9.hash",
        "W9.target",
        "W9.broadcast",
        "W9.reregister",
        "W9.mem_per_id",
        "W10.file",
    ] {
        let printed = stdout.lines().any(|line| line.starts_with(&format!("BENCH {figure} ")));
        assert!(printed, "no BENCH line for {figure}:\n{stdout}\n{stderr}");
    }
    assert!(!stdout.contains(" failed: "), "a workload failed:\n{stdout}\n{stderr}");
}
