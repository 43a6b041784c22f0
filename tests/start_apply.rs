//! `start`'s step 4 against the fake api-server (real etcd behind it): `manifests/`
//! is created namespaces first, a second run updates instead of failing, edits reach
//! the server, bad objects fail naming file and object, an api-server that is not up
//! yet is waited for, and a deadline says what it waited for.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use kubeboot::start::apply::{ApplyError, ApplyOptions, ApplySummary, create_all};
use kubeboot::start::manifests::{Phases, load_dir, phases};
use kubeboot_testkit::apiserver::Fault;
use kubeboot_testkit::apiserver::harness::{Harness, write_kubeconfig};
use serde_json::Value;

const TEST_DEADLINE: Duration = Duration::from_secs(120);

async fn client(kubeconfig: &Path) -> Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await?;
    config.connect_timeout = Some(Duration::from_secs(2));
    Ok(kube::Client::try_from(config)?)
}

fn write(dir: &Path, files: &[(&str, &str)]) -> Result<()> {
    for (path, text) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().context("parent")?)?;
        std::fs::write(p, text)?;
    }
    Ok(())
}

fn opts(secs: u64) -> ApplyOptions {
    ApplyOptions {
        backoff_max: Duration::from_millis(500),
        unknown_kind_grace: Duration::ZERO,
        ..ApplyOptions::until(Instant::now() + Duration::from_secs(secs))
    }
}

/// Loads `dir` and creates it; returns the summary and the progress lines.
async fn run(
    c: &kube::Client,
    dir: &Path,
    o: &ApplyOptions,
) -> Result<(ApplySummary, Vec<String>), ApplyError> {
    let ps: Phases = phases(load_dir(dir).expect("manifests load"));
    let mut lines = Vec::new();
    let s = create_all(c, &ps, o, &mut |l: &str| lines.push(l.to_string())).await?;
    Ok((s, lines))
}

async fn get(h: &Harness, path: &str) -> Result<Value> {
    let (code, body) = h.request("GET", path, None).await?;
    anyhow::ensure!(code == 200, "GET {path}: {code} {body}");
    Ok(serde_json::from_str(&body)?)
}

fn bounded<F: Future<Output = Result<()>>>(f: F) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        tokio::time::timeout(TEST_DEADLINE, f)
            .await
            .context("test deadline")?
    })
}

const APP: &str = "\
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: team-a}
data: {mode: one}
---
apiVersion: v1
kind: Secret
metadata: {name: token, namespace: team-a}
stringData: {token: abc}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: worker}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: team-a, labels: {app: web}}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: 'registry.k8s.io/pause:3.10'}
";

/// Path order puts the ConfigMap's file before the Namespace's: phases fix that.
const NS: &str = "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}\n";

#[test]
fn objects_in_a_new_namespace_are_created_then_updated_on_a_second_run() -> Result<()> {
    bounded(async {
        let h = Harness::start().await?;
        let c = client(&h.kubeconfig).await?;
        let dir = tempfile::tempdir()?;
        write(dir.path(), &[("10-app.yaml", APP), ("20-ns.yaml", NS)])?;

        let (first, lines) = run(&c, dir.path(), &opts(60)).await?;
        assert_eq!((first.created, first.updated, first.unchanged), (5, 0, 0));
        assert_eq!(lines[0], "created Namespace team-a");
        assert!(lines.contains(&"created Deployment team-a/web".to_string()));
        assert!(lines.contains(&"created ServiceAccount default/worker".to_string()));
        get(&h, "/api/v1/namespaces/default/serviceaccounts/worker").await?;
        get(&h, "/apis/apps/v1/namespaces/team-a/deployments/web").await?;

        let (second, lines) = run(&c, dir.path(), &opts(60)).await?;
        assert_eq!(second.created, 0, "{lines:?}");
        assert_eq!(second.updated + second.unchanged, 5, "{lines:?}");
        assert!(lines.contains(&"unchanged ConfigMap team-a/settings".to_string()));

        write(
            dir.path(),
            &[("10-app.yaml", &APP.replace("mode: one", "mode: two"))],
        )?;
        let (third, lines) = run(&c, dir.path(), &opts(60)).await?;
        assert!(lines.contains(&"updated ConfigMap team-a/settings".to_string()));
        assert_eq!(third.created, 0);
        let cm = get(&h, "/api/v1/namespaces/team-a/configmaps/settings").await?;
        assert_eq!(cm["data"]["mode"], "two");
        Ok(())
    })
}

#[test]
fn bad_objects_fail_naming_file_object_and_reason() -> Result<()> {
    bounded(async {
        let h = Harness::start().await?;
        let c = client(&h.kubeconfig).await?;
        let cases = [
            (
                "apiVersion: apps/v1\nkind: Deploymnet\nmetadata: {name: x, namespace: kube-system}\n",
                "Deploymnet kube-system/x from bad.yaml#1: the api-server does not serve kind Deploymnet of apps/v1",
            ),
            (
                "apiVersion: nope.example.com/v1\nkind: Thing\nmetadata: {name: x}\n",
                "Thing x from bad.yaml#1: the api-server does not serve kind Thing of nope.example.com/v1: GET /apis/nope.example.com/v1: HTTP 404",
            ),
            (
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name, namespace: kube-system}\n",
                "ConfigMap kube-system/Bad_Name from bad.yaml#1: refused by the api-server: HTTP 422 Invalid",
            ),
        ];
        for (text, want) in cases {
            let dir = tempfile::tempdir()?;
            write(dir.path(), &[("bad.yaml", text)])?;
            let started = Instant::now();
            let e = run(&c, dir.path(), &opts(60)).await.unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(want), "{msg}");
            assert!(!msg.contains('\n'), "{msg}");
            assert!(started.elapsed() < Duration::from_secs(10), "failed fast");
        }
        Ok(())
    })
}

#[test]
fn transient_answers_are_retried_and_refusals_are_not() -> Result<()> {
    bounded(async {
        let h = Harness::start_with(|c, _| {
            for rule in [
                "POST:/api/v1/namespaces/kube-system/configmaps=503:2",
                "GET:/apis/apps/v1=500:1",
                "POST:/api/v1/namespaces/kube-system/secrets=403",
            ] {
                c.faults.push(Fault::parse(rule)?);
            }
            Ok(())
        })
        .await?;
        let c = client(&h.kubeconfig).await?;
        let dir = tempfile::tempdir()?;
        let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: kube-system}\n";
        let dep = APP.split("---\n").last().context("deployment")?;
        write(
            dir.path(),
            &[
                ("a.yaml", cm),
                ("b.yaml", &dep.replace("team-a", "kube-system")),
            ],
        )?;
        let (s, lines) = run(&c, dir.path(), &opts(60)).await?;
        assert_eq!(s.created, 2, "{lines:?}");

        let secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: kube-system}\n";
        write(dir.path(), &[("c.yaml", secret)])?;
        let started = Instant::now();
        let msg = run(&c, dir.path(), &opts(60))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains(
                "Secret kube-system/s from c.yaml#1: refused by the api-server: HTTP 403 Forbidden"
            ),
            "{msg}"
        );
        assert!(started.elapsed() < Duration::from_secs(10), "failed fast");
        Ok(())
    })
}

#[test]
fn an_api_server_that_comes_up_late_is_waited_for() -> Result<()> {
    bounded(async {
        let h = Harness::start().await?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let upstream = h.server.url().trim_start_matches("https://").to_string();
        let kubeconfig = h.dir.path().join("late-kubeconfig");
        write_kubeconfig(&kubeconfig, &format!("https://127.0.0.1:{port}"), &h.pki)?;
        // A TCP relay to the api-server that only starts listening after 1.5 s.
        let relay = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let l = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
            loop {
                let (mut down, _) = l.accept().await?;
                let up = upstream.clone();
                tokio::spawn(async move {
                    if let Ok(mut up) = tokio::net::TcpStream::connect(up).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
            }
            #[allow(unreachable_code)]
            Ok::<(), std::io::Error>(())
        });
        let dir = tempfile::tempdir()?;
        write(dir.path(), &[("ns.yaml", NS)])?;
        let c = client(&kubeconfig).await?;
        let started = Instant::now();
        let (s, _) = run(&c, dir.path(), &opts(60)).await?;
        assert_eq!(s.created, 1);
        assert!(started.elapsed() >= Duration::from_millis(1400));
        relay.abort();
        get(&h, "/api/v1/namespaces/team-a").await?;
        Ok(())
    })
}

#[test]
fn a_deadline_says_what_it_waited_for() -> Result<()> {
    bounded(async {
        let h = Harness::start().await?;
        let c = client(&h.kubeconfig).await?;
        // Nothing creates this namespace: the api-server answers 404 until the deadline.
        let dir = tempfile::tempdir()?;
        write(
            dir.path(),
            &[(
                "cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: nowhere}\n",
            )],
        )?;
        let e = run(&c, dir.path(), &opts(2)).await.unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, ApplyError::Deadline { .. }), "{msg}");
        assert!(
            msg.contains("waiting for the api-server to accept ConfigMap nowhere/c from cm.yaml#1"),
            "{msg}"
        );
        assert!(msg.contains("HTTP 404") && msg.contains("nowhere"), "{msg}");

        // An api-server that never answers.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let kubeconfig = h.dir.path().join("dead-kubeconfig");
        write_kubeconfig(&kubeconfig, &format!("https://127.0.0.1:{port}"), &h.pki)?;
        write(dir.path(), &[("cm.yaml", NS)])?;
        let started = Instant::now();
        let e = run(&client(&kubeconfig).await?, dir.path(), &opts(2))
            .await
            .unwrap_err();
        let msg = e.to_string();
        assert!(started.elapsed() < Duration::from_secs(6), "{msg}");
        assert!(msg.contains("gave up at the deadline waiting for"), "{msg}");
        assert!(msg.contains("GET /api/v1: "), "names the endpoint: {msg}");
        Ok(())
    })
}

const CRD: &str = "\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
";

#[test]
fn crds_are_established_before_their_custom_resources() -> Result<()> {
    bounded(async {
        let h = Harness::start().await?;
        let c = client(&h.kubeconfig).await?;
        let dir = tempfile::tempdir()?;
        let cr =
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 3}\n";
        // The custom resource's file sorts first.
        write(dir.path(), &[("a-widget.yaml", cr), ("b-crd.yaml", CRD)])?;
        let (s, lines) = run(&c, dir.path(), &opts(60)).await?;
        assert_eq!(s.created, 2, "{lines:?}");
        assert_eq!(
            lines,
            [
                "created CustomResourceDefinition widgets.example.com",
                "established CustomResourceDefinition widgets.example.com",
                "created Widget default/w1",
            ]
        );
        let w = get(&h, "/apis/example.com/v1/namespaces/default/widgets/w1").await?;
        assert_eq!(w["spec"]["size"], 3);
        let (again, lines) = run(&c, dir.path(), &opts(60)).await?;
        assert_eq!(again.created, 0, "{lines:?}");
        Ok(())
    })
}

#[test]
fn rendered_manifests_are_all_created_and_a_second_run_updates() -> Result<()> {
    bounded(async {
        let h = Harness::start().await?;
        let c = client(&h.kubeconfig).await?;
        let work = tempfile::tempdir()?;
        let assets = work.path().join("assets");
        let rendered =
            kubeboot::newcluster::render_new(&kubeboot::newcluster::NewClusterOptions::default())?;
        kubeboot::assets::write(&assets, &rendered, false)?;
        let manifests = assets.join("manifests");
        let total = phases(load_dir(&manifests)?).len();
        assert!(total > 20, "{total} objects");

        let (first, lines) = run(&c, &manifests, &opts(60)).await?;
        // kube-system exists already in any api-server.
        assert_eq!(first.created + first.unchanged, total, "{lines:?}");
        assert!(first.created >= total - 1, "{lines:?}");
        assert!(lines.contains(&"created Deployment kube-system/kube-scheduler".to_string()));
        get(
            &h,
            "/apis/apps/v1/namespaces/kube-system/deployments/kube-scheduler",
        )
        .await?;
        get(
            &h,
            "/apis/apps/v1/namespaces/kube-system/daemonsets/kube-apiserver",
        )
        .await?;

        let (second, lines) = run(&c, &manifests, &opts(60)).await?;
        assert_eq!(second.created, 0, "{lines:?}");
        assert_eq!(second.updated + second.unchanged, total, "{lines:?}");
        Ok(())
    })
}
