//! `render --cert-validity`/`--ca-validity` and `kubeboot certs check` through the real
//! binary (issue 15, finding 16): rendered certificates last what the flags say, and
//! the check lists every certificate of an asset dir (files and kubeconfigs) or a
//! kubeconfig, failing with one line when one expires within `--warn-within`.

mod common;

use common::{assert_fails, kubeboot, stderr, stdout};

#[test]
fn certs_check_reports_expiry_and_fails_within_the_threshold() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("assets");
    let d = dir.to_str().unwrap();
    let out = kubeboot(&[
        "render",
        "--asset-dir",
        d,
        "--cert-validity",
        "20d",
        "--node-names",
        "m1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));

    // 20 days (from the day before the render): inside the default 30 days.
    let out = kubeboot(&["certs", "check", d]);
    assert_fails(&out, 1, "certificate(s) expire within 30d");
    let listed = stdout(&out);
    for want in [
        "tls/apiserver.crt",
        "tls/ca.crt",
        "auth/kubeconfig (user kubeboot-admin)",
        "auth/kubelets/m1.kubeconfig (user system:node:m1)",
    ] {
        assert!(listed.contains(want), "{want}: {listed}");
    }
    // The in-cluster kubeconfig names a CA inside pods: said, passed over.
    assert!(
        stderr(&out).contains("is not on this host"),
        "{}",
        stderr(&out)
    );

    let out = kubeboot(&["certs", "check", d, "--warn-within", "10d", "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["warnWithinDays"], 10);
    assert_eq!(v["expiring"], serde_json::json!([]));
    let certs = v["certificates"].as_array().unwrap();
    let leaf = certs
        .iter()
        .find(|c| c["source"] == "tls/apiserver.crt")
        .unwrap();
    let days = leaf["daysLeft"].as_i64().unwrap();
    assert!((17..=20).contains(&days), "{leaf}");
    let ca = certs.iter().find(|c| c["source"] == "tls/ca.crt").unwrap();
    assert_eq!(ca["ca"], true);
    assert!(ca["daysLeft"].as_i64().unwrap() > 3600, "{ca}");

    // A kubeconfig alone.
    let kc = dir.join("auth/kubeconfig");
    let out = kubeboot(&[
        "certs",
        "check",
        "--kubeconfig",
        kc.to_str().unwrap(),
        "--warn-within",
        "1d",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 2, "{}", stdout(&out));
}

#[test]
fn lifetimes_are_checked_as_usage_errors() {
    let work = tempfile::tempdir().unwrap();
    let d = work.path().join("a");
    let d = d.to_str().unwrap();
    let out = kubeboot(&["render", "--asset-dir", d, "--cert-validity", "11y"]);
    assert_fails(
        &out,
        2,
        "--cert-validity \"11y\": outlives the CA that signs it (--ca-validity 10y)",
    );
    assert!(!std::path::Path::new(d).exists(), "nothing written");
    let out = kubeboot(&["render", "--asset-dir", d, "--cert-validity", "1w"]);
    assert_fails(&out, 2, "is not a lifetime like 90d or 2y");
    let out = kubeboot(&["certs", "check"]);
    assert_fails(
        &out,
        2,
        "give an asset dir or certificate file, or --kubeconfig",
    );
    let out = kubeboot(&["certs", "check", work.path().join("none").to_str().unwrap()]);
    assert_fails(&out, 2, "none");
}
