//! The fake api-server checked with kube-rs, against its etcd, and for authentication:
//! list/create/replace/watch through a real client, optimistic concurrency, storage
//! exactly as kube-apiserver writes it, 410 on compacted watches, refused strangers.

use std::time::Duration;

use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kubeboot_testkit::apiserver::harness::{Harness, https_request};
use serde_json::{Value, json};

const TEST_DEADLINE: Duration = Duration::from_secs(120);

fn config_map(name: &str, value: &str) -> Result<ConfigMap> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "kube-system", "labels": {"tier": "control-plane"}},
        "data": {"k": value}
    }))?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_lists_creates_replaces_and_watches() -> Result<()> {
    tokio::time::timeout(TEST_DEADLINE, async {
        let h = Harness::start().await?;
        let cms: Api<ConfigMap> = Api::namespaced(h.kube_client().await?, "kube-system");
        assert!(cms.list(&ListParams::default()).await?.items.is_empty());

        let created = cms
            .create(&PostParams::default(), &config_map("a", "1")?)
            .await?;
        let rv = created
            .metadata
            .resource_version
            .clone()
            .context("no resourceVersion")?;
        assert!(created.metadata.uid.is_some());

        let mut fresh = created.clone();
        fresh.data = Some([("k".to_string(), "2".to_string())].into());
        let replaced = cms.replace("a", &PostParams::default(), &fresh).await?;
        assert_ne!(
            replaced.metadata.resource_version.as_deref(),
            Some(rv.as_str())
        );

        let mut stale = created.clone();
        stale.data = Some([("k".to_string(), "3".to_string())].into());
        match cms.replace("a", &PostParams::default(), &stale).await {
            Err(kube::Error::Api(s)) => {
                assert_eq!(s.code, 409);
                assert_eq!(s.reason, "Conflict");
            }
            other => panic!("stale replace should be a 409, got {other:?}"),
        }
        match cms
            .create(&PostParams::default(), &config_map("a", "1")?)
            .await
        {
            Err(kube::Error::Api(s)) => assert_eq!(s.reason, "AlreadyExists"),
            other => panic!("second create should be a 409, got {other:?}"),
        }

        let listed = cms
            .list(&ListParams::default().labels("tier in (control-plane)"))
            .await?;
        assert_eq!(listed.items.len(), 1);
        let none = cms
            .list(&ListParams::default().fields("metadata.name=b"))
            .await?;
        assert!(none.items.is_empty());

        let list_rv = listed.metadata.resource_version.context("list rv")?;
        let mut events = cms
            .watch(&WatchParams::default().timeout(20), &list_rv)
            .await?
            .boxed();
        cms.create(&PostParams::default(), &config_map("b", "1")?)
            .await?;
        cms.delete("a", &Default::default()).await?;
        let mut seen = Vec::new();
        while seen.len() < 2 {
            match events.try_next().await? {
                Some(WatchEvent::Added(cm)) => {
                    seen.push(format!("ADDED {}", cm.metadata.name.unwrap_or_default()))
                }
                Some(WatchEvent::Deleted(cm)) => {
                    seen.push(format!("DELETED {}", cm.metadata.name.unwrap_or_default()))
                }
                Some(WatchEvent::Bookmark(_) | WatchEvent::Modified(_)) => {}
                Some(WatchEvent::Error(e)) => panic!("watch error {e:?}"),
                None => break,
            }
        }
        assert_eq!(seen, ["ADDED b", "DELETED a"]);

        let pods: Api<Pod> = Api::all(h.kube_client().await?);
        assert!(pods.list(&ListParams::default()).await?.items.is_empty());
        anyhow::Ok(())
    })
    .await?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_are_stored_as_kube_apiserver_stores_them() -> Result<()> {
    tokio::time::timeout(TEST_DEADLINE, async {
        let h = Harness::start().await?;
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "kube-system"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
        let (code, body) = h
            .request(
                "POST",
                "/api/v1/namespaces/kube-system/pods",
                Some(&pod.to_string()),
            )
            .await?;
        assert_eq!(code, 201, "{body}");
        let served: Value = serde_json::from_str(&body)?;

        let mut etcd = h.etcd.client().await?;
        let key = "/registry/pods/kube-system/p";
        let resp = etcd.get(key, None).await?;
        let kv = resp.kvs().first().context("no etcd key")?;
        assert!(kv.value().starts_with(b"k8s\0"), "not protobuf-encoded");
        let decoded = kubeboot::codec::decode(key, kv.value())?.object;
        assert!(decoded["metadata"].get("resourceVersion").is_none());
        assert_eq!(
            served["metadata"]["resourceVersion"],
            kv.mod_revision().to_string()
        );
        let mut without_rv = served.clone();
        without_rv["metadata"]
            .as_object_mut()
            .context("meta")?
            .remove("resourceVersion");
        assert_eq!(decoded, without_rv);
        assert_eq!(decoded["status"]["phase"], "Pending");

        // A namespace that does not exist is a 404, as admission makes it; a body in
        // another namespace than the path is a 400.
        let (code, body) = h
            .request(
                "POST",
                "/api/v1/namespaces/nope/pods",
                Some(&pod.to_string()),
            )
            .await?;
        assert_eq!(code, 400, "{body}");
        let mut elsewhere = pod.clone();
        elsewhere["metadata"]["namespace"] = json!("nope");
        let (code, body) = h
            .request(
                "POST",
                "/api/v1/namespaces/nope/pods",
                Some(&elsewhere.to_string()),
            )
            .await?;
        assert_eq!(code, 404, "{body}");
        let (code, body) = h
            .request("POST", "/api/v1/namespaces/kube-system/pods", Some("{"))
            .await?;
        assert_eq!(code, 400, "{body}");
        assert_eq!(serde_json::from_str::<Value>(&body)?["kind"], "Status");
        anyhow::Ok(())
    })
    .await?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_watch_gets_410() -> Result<()> {
    tokio::time::timeout(TEST_DEADLINE, async {
        let h = Harness::start().await?;
        let cm = |v: &str| {
            json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c"}, "data": {"k": v}})
            .to_string()
        };
        let path = "/api/v1/namespaces/default/configmaps";
        let (code, body) = h.request("POST", path, Some(&cm("0"))).await?;
        assert_eq!(code, 201, "{body}");
        let first: Value = serde_json::from_str(&body)?;
        let old_rv = first["metadata"]["resourceVersion"]
            .as_str()
            .context("rv")?
            .to_string();
        for i in 1..4 {
            let (code, body) = h
                .request("PUT", &format!("{path}/c"), Some(&cm(&i.to_string())))
                .await?;
            assert_eq!(code, 200, "{body}");
        }
        let mut etcd = h.etcd.client().await?;
        let rev = etcd
            .get("x", None)
            .await?
            .header()
            .context("header")?
            .revision();
        etcd.compact(rev, None).await?;
        let (code, body) = h
            .request(
                "GET",
                &format!("{path}?watch=true&resourceVersion={old_rv}"),
                None,
            )
            .await?;
        assert_eq!(code, 200);
        assert!(
            body.contains(r#""type":"ERROR""#) && body.contains("410"),
            "{body}"
        );
        assert!(body.contains("Expired"), "{body}");
        anyhow::Ok(())
    })
    .await?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_without_a_trusted_certificate_are_refused() -> Result<()> {
    tokio::time::timeout(TEST_DEADLINE, async {
        let h = Harness::start().await?;
        let url = h.server.url();
        let ca = &h.pki.ca_cert;
        // No credentials is system:anonymous, whom RBAC grants nothing but health.
        let (code, body) = https_request(&url, ca, None, "GET", "/api/v1/pods", None).await?;
        assert_eq!(code, 403, "{body}");
        assert_eq!(
            serde_json::from_str::<Value>(&body)?["message"],
            r#"pods is forbidden: User "system:anonymous" cannot list resource "pods" in API group "" at the cluster scope"#
        );
        // Health probes stay anonymous, as kubelets need them.
        let (code, _) = https_request(&url, ca, None, "GET", "/readyz", None).await?;
        assert_eq!(code, 200);
        let stranger = Some((h.pki.stranger_cert.as_path(), h.pki.stranger_key.as_path()));
        let refused = https_request(&url, ca, stranger, "GET", "/api/v1/pods", None).await;
        assert!(
            refused.is_err(),
            "a certificate from another CA was accepted: {refused:?}"
        );
        let (code, _) = h.request("GET", "/api/v1/pods", None).await?;
        assert_eq!(code, 200);
        anyhow::Ok(())
    })
    .await?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_encrypted_at_rest_when_configured() -> Result<()> {
    tokio::time::timeout(TEST_DEADLINE, async {
        let h = Harness::start_with(|config, dir| {
            let path = dir.join("encryption.yaml");
            std::fs::write(
                &path,
                "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n\
                 resources:\n- resources: [secrets]\n  providers:\n  - aescbc:\n      keys:\n\
                 \x20     - name: key1\n        secret: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n\
                 \x20 - identity: {}\n",
            )?;
            config.encryption_provider_config = Some(path);
            Ok(())
        })
        .await?;
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "stringData": {"token": "hunter2"}});
        let (code, body) = h
            .request("POST", "/api/v1/namespaces/default/secrets", Some(&secret.to_string()))
            .await?;
        assert_eq!(code, 201, "{body}");
        let mut etcd = h.etcd.client().await?;
        let raw = etcd.get("/registry/secrets/default/s", None).await?;
        let value = raw.kvs().first().context("no secret in etcd")?.value().to_vec();
        assert!(value.starts_with(b"k8s:enc:aescbc:v1:key1:"), "{value:?}");
        let (code, body) = h.request("GET", "/api/v1/namespaces/default/secrets/s", None).await?;
        assert_eq!(code, 200, "{body}");
        assert_eq!(serde_json::from_str::<Value>(&body)?["data"]["token"], "aHVudGVyMg==");
        // Other resources stay plain protobuf.
        let ns = etcd.get("/registry/namespaces/default", None).await?;
        assert!(ns.kvs()[0].value().starts_with(b"k8s\0"));
        anyhow::Ok(())
    })
    .await?
}
