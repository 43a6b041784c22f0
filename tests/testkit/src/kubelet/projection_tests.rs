use super::*;

fn vol(y: &str) -> Volume {
    serde_yaml_ng::from_str(y).unwrap()
}

fn data(kv: &[(&str, &str)]) -> Fetched {
    Fetched::Data(
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect(),
    )
}

fn files(r: Result<Option<Vec<File>>, String>) -> Vec<(String, String, u32)> {
    r.unwrap()
        .unwrap()
        .into_iter()
        .map(|f| (f.path, String::from_utf8(f.data).unwrap(), f.mode))
        .collect()
}

fn pod() -> Pod {
    serde_yaml_ng::from_str(
        "metadata: {name: p, namespace: ns, labels: {b: '2', a: 'x\"y'}, annotations: {k: v}}\nspec: {containers: []}",
    )
    .unwrap()
}

#[test]
fn secret_items_modes_and_optional() {
    let objs = Objects::from([
        (Ref::Secret("s".into()), data(&[("a", "A"), ("b", "B")])),
        (Ref::Secret("gone".into()), Fetched::Missing),
    ]);
    let v = vol(
        "name: v\nsecret: {secretName: s, defaultMode: 288, items: [{key: a, path: x/a}, {key: b, path: b, mode: 384}]}",
    );
    assert_eq!(refs(&v), [Ref::Secret("s".into())]);
    assert_eq!(
        files(render(&v, &objs, &pod())),
        [
            ("x/a".into(), "A".into(), 0o440),
            ("b".into(), "B".into(), 0o600)
        ]
    );
    let all = vol("name: v\nsecret: {secretName: s}");
    assert_eq!(files(render(&all, &objs, &pod())).len(), 2);
    let opt = vol("name: v\nsecret: {secretName: gone, optional: true}");
    assert!(files(render(&opt, &objs, &pod())).is_empty());
    let req = vol("name: v\nsecret: {secretName: gone}");
    assert!(
        render(&req, &objs, &pod())
            .unwrap_err()
            .contains("not found")
    );
    let nokey = vol("name: v\nsecret: {secretName: s, items: [{key: zz, path: z}]}");
    assert!(render(&nokey, &objs, &pod()).is_err());
    let failed = Objects::from([(Ref::Secret("s".into()), Fetched::Failed("boom".into()))]);
    let opt_failed = vol("name: v\nsecret: {secretName: s, optional: true}");
    assert!(render(&opt_failed, &failed, &pod()).is_err());
}

#[test]
fn config_map_binary_data_and_other_kinds() {
    let objs = Objects::from([(Ref::ConfigMap("c".into()), data(&[("kubeconfig", "K")]))]);
    let v = vol("name: v\nconfigMap: {name: c}");
    assert_eq!(
        files(render(&v, &objs, &pod())),
        [("kubeconfig".into(), "K".into(), 0o644)]
    );
    let host = vol("name: v\nhostPath: {path: /x}");
    assert!(render(&host, &objs, &pod()).unwrap().is_none());
    assert!(refs(&host).is_empty());
}

#[test]
fn downward_api_fields() {
    let v = vol(
        "name: v\ndownwardAPI: {items: [{path: name, fieldRef: {fieldPath: metadata.name}}, {path: labels, fieldRef: {fieldPath: metadata.labels}}, {path: k, fieldRef: {fieldPath: \"metadata.annotations['k']\"}}, {path: cpu, resourceFieldRef: {resource: limits.cpu}}]}",
    );
    assert_eq!(
        files(render(&v, &Objects::new(), &pod())),
        [
            ("name".into(), "p".into(), 0o644),
            ("labels".into(), "a=\"x\\\"y\"\nb=\"2\"".into(), 0o644),
            ("k".into(), "v".into(), 0o644)
        ]
    );
}

#[test]
fn projected_sources_share_default_mode() {
    let v = vol(
        "name: v\nprojected: {defaultMode: 420, sources: [{serviceAccountToken: {path: token, expirationSeconds: 3607}}, {configMap: {name: c, items: [{key: ca.crt, path: ca.crt}]}}, {downwardAPI: {items: [{path: namespace, fieldRef: {fieldPath: metadata.namespace}}]}}]}",
    );
    let tok = Ref::Token {
        audience: String::new(),
        seconds: 3607,
    };
    assert_eq!(refs(&v), [tok.clone(), Ref::ConfigMap("c".into())]);
    let mut objs = Objects::from([
        (tok.clone(), data(&[("token", "T")])),
        (Ref::ConfigMap("c".into()), data(&[("ca.crt", "CA")])),
    ]);
    assert_eq!(
        files(render(&v, &objs, &pod())),
        [
            ("token".into(), "T".into(), 0o644),
            ("ca.crt".into(), "CA".into(), 0o644),
            ("namespace".into(), "ns".into(), 0o644)
        ]
    );
    objs.insert(tok, Fetched::Failed("404".into()));
    assert!(render(&v, &objs, &pod()).unwrap_err().contains("404"));
}
