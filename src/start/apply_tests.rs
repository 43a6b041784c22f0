use super::*;
use serde_json::json;

#[test]
fn contains_ignores_server_added_fields_but_not_changes() {
    let live = json!({"metadata": {"name": "a", "uid": "u", "labels": {"x": "1", "y": "2"}},
        "spec": {"replicas": 1.0, "containers": [{"name": "c", "imagePullPolicy": "Always"}]}});
    let same = json!({"metadata": {"name": "a", "labels": {"x": "1"}, "creationTimestamp": null},
        "spec": {"replicas": 1, "containers": [{"name": "c"}], "absent": null}});
    assert!(contains(&live, &same));
    for changed in [
        json!({"metadata": {"labels": {"x": "2"}}}),
        json!({"spec": {"containers": [{"name": "c"}, {"name": "d"}]}}),
        json!({"spec": {"new": 1}}),
        json!({"spec": []}),
    ] {
        assert!(!contains(&live, &changed), "{changed}");
    }
}

#[test]
fn served_resource_is_the_first_served_version() {
    let crd = json!({"spec": {"group": "example.com", "names": {"kind": "Widget", "plural": "widgets"},
        "versions": [{"name": "v1alpha1", "served": false}, {"name": "v1", "served": true}]}});
    let ar = served_resource(&crd).unwrap();
    assert_eq!(
        DynamicObject::url_path(&ar, None),
        "/apis/example.com/v1/widgets"
    );
    let beta = json!({"spec": {"group": "g", "version": "v1beta1", "names": {"kind": "K", "plural": "ks"}}});
    assert_eq!(served_resource(&beta).unwrap().api_version, "g/v1beta1");
    assert!(served_resource(&json!({"spec": {"group": "g"}})).is_none());
}

#[test]
fn transient_answers_are_retried_refusals_are_not() {
    let m = Manifest {
        source: "x.yaml".into(),
        doc: 2,
        item: None,
        object: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
    };
    let status = |code| {
        let s: Status =
            serde_json::from_value(json!({"code": code, "reason": "R", "message": "m"})).unwrap();
        CallError::Status(Box::new(s), "POST /api/v1/x".into())
    };
    for code in [404, 409, 429, 500, 502, 503, 504] {
        assert!(
            matches!(judge(&m, "l", status(code)), Fail::Retry(_)),
            "{code}"
        );
    }
    assert!(matches!(
        judge(&m, "l", CallError::Transport("refused".into())),
        Fail::Retry(_)
    ));
    for code in [400, 401, 403, 405, 422] {
        let Fail::Stop(e) = judge(&m, "ConfigMap default/c", status(code)) else {
            panic!("{code} retried");
        };
        assert_eq!(
            e.to_string(),
            format!(
                "ConfigMap default/c from x.yaml#2: refused by the api-server: HTTP {code} R: m"
            )
        );
    }
}
