//! CRDs, custom resources, RBAC and PriorityClasses on the fake api-server, checked with
//! the real kubectl (1.32) and against etcd: a CRD is established a moment after
//! `kubectl apply`, then its custom resources are served, stored as JSON under
//! `/registry/<group>/<plural>/`, and deleted with it; RBAC objects are stored as
//! protobuf like every other built-in kind.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use kubeboot_testkit::apiserver::harness::Harness;
use kubeboot_testkit::apiserver::kubectl::KUBECTL;
use serde_json::Value;

const TEST_DEADLINE: Duration = Duration::from_secs(180);

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;

const WIDGET: &str = r#"
apiVersion: example.com/v1
kind: Widget
metadata: {name: w1, namespace: default}
spec: {size: 3}
"#;

async fn kubectl(h: &Harness, args: &[&str]) -> Result<String> {
    kubeboot_testkit::apiserver::kubectl::run(h, args).await
}

async fn etcd_value(h: &Harness, key: &str) -> Result<Option<Vec<u8>>> {
    let mut c = h.etcd.client().await?;
    let resp = c.get(key, None).await?;
    Ok(resp.kvs().first().map(|kv| kv.value().to_vec()))
}

fn write(h: &Harness, name: &str, text: &str) -> Result<String> {
    let p = h.dir.path().join(name);
    std::fs::write(&p, text)?;
    Ok(p.to_str().context("path")?.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_a_crd_then_its_resources() -> Result<()> {
    if !Path::new(KUBECTL).exists() {
        println!("SKIPPED: {KUBECTL} is not installed");
        return Ok(());
    }
    tokio::time::timeout(TEST_DEADLINE, flow()).await?
}

async fn flow() -> Result<()> {
    let h = Harness::start().await?;
    let crd = write(&h, "crd.yaml", CRD)?;
    let out = kubectl(&h, &["apply", "-f", &crd]).await?;
    assert!(
        out.contains("customresourcedefinition.apiextensions.k8s.io/widgets.example.com created"),
        "{out}"
    );
    let fresh: Value = serde_json::from_str(
        &kubectl(&h, &["get", "crd", "widgets.example.com", "-o", "json"]).await?,
    )?;
    assert_eq!(fresh["status"]["storedVersions"], serde_json::json!(["v1"]));
    kubectl(
        &h,
        &[
            "wait",
            "--for=condition=Established",
            "crd/widgets.example.com",
            "--timeout=10s",
        ],
    )
    .await?;

    let widget = write(&h, "widget.yaml", WIDGET)?;
    let out = kubectl(&h, &["apply", "-f", &widget]).await?;
    assert!(out.contains("widget.example.com/w1 created"), "{out}");
    write(&h, "widget.yaml", &WIDGET.replace("size: 3", "size: 4"))?;
    let out = kubectl(&h, &["apply", "-f", &widget]).await?;
    assert!(out.contains("widget.example.com/w1 configured"), "{out}");
    let w: Value = serde_json::from_str(
        &kubectl(&h, &["get", "wd", "w1", "-n", "default", "-o", "json"]).await?,
    )?;
    assert_eq!(w["spec"]["size"], 4);
    assert_eq!(w["metadata"]["generation"], 2);
    let listed = kubectl(&h, &["get", "widgets", "-A", "-o", "name"]).await?;
    assert_eq!(listed.trim(), "widget.example.com/w1");

    let stored = etcd_value(&h, "/registry/example.com/widgets/default/w1")
        .await?
        .context("CR in etcd")?;
    let stored: Value =
        serde_json::from_slice(&stored).context("a custom resource is JSON in etcd")?;
    assert_eq!(stored["spec"]["size"], 4);
    let crd_value = etcd_value(
        &h,
        "/registry/apiextensions.k8s.io/customresourcedefinitions/widgets.example.com",
    )
    .await?
    .context("CRD in etcd")?;
    assert!(crd_value.starts_with(b"{"), "a CRD is JSON in etcd");

    let out = kubectl(
        &h,
        &[
            "create",
            "clusterrolebinding",
            "bob-admin",
            "--clusterrole=cluster-admin",
            "--user=bob",
        ],
    )
    .await?;
    assert!(
        out.contains("clusterrolebinding.rbac.authorization.k8s.io/bob-admin created"),
        "{out}"
    );
    let bindings = kubectl(&h, &["get", "clusterrolebindings"]).await?;
    assert!(
        bindings.lines().any(|l| l.starts_with("bob-admin")),
        "{bindings}"
    );
    let v = etcd_value(&h, "/registry/clusterrolebindings/bob-admin")
        .await?
        .context("binding in etcd")?;
    assert!(v.starts_with(b"k8s\0"), "RBAC is protobuf in etcd");
    kubectl(
        &h,
        &[
            "create",
            "role",
            "reader",
            "-n",
            "default",
            "--verb=get",
            "--resource=pods",
        ],
    )
    .await?;
    kubectl(
        &h,
        &[
            "create",
            "rolebinding",
            "r",
            "-n",
            "default",
            "--role=reader",
            "--user=bob",
        ],
    )
    .await?;
    kubectl(
        &h,
        &[
            "create",
            "clusterrole",
            "viewer",
            "--verb=list",
            "--resource=nodes",
        ],
    )
    .await?;
    kubectl(&h, &["create", "priorityclass", "high", "--value=1000"]).await?;
    let pc = kubectl(&h, &["get", "pc", "high", "-o", "name"]).await?;
    assert_eq!(pc.trim(), "priorityclass.scheduling.k8s.io/high");
    assert!(
        etcd_value(&h, "/registry/priorityclasses/high")
            .await?
            .is_some()
    );

    let out = kubectl(&h, &["delete", "crd", "widgets.example.com"]).await?;
    assert!(out.contains("deleted"), "{out}");
    assert!(
        etcd_value(&h, "/registry/example.com/widgets/default/w1")
            .await?
            .is_none()
    );
    let (code, _) = h
        .request(
            "GET",
            "/apis/example.com/v1/namespaces/default/widgets",
            None,
        )
        .await?;
    assert_eq!(code, 404);
    Ok(())
}
