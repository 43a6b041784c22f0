use super::*;

fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let p = d.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    d
}

const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: kube-system}\n";

fn labels(ms: &[Manifest]) -> Vec<String> {
    ms.iter()
        .map(|m| format!("{} {}", m.origin(), m.label()))
        .collect()
}

#[test]
fn walks_sorted_skips_dot_entries_and_other_extensions() {
    let d = tree(&[
        ("b.yaml", CM),
        ("a-b.yml", CM),
        (
            "a/z.json",
            r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"}}"#,
        ),
        (".hidden.yaml", "garbage: ["),
        (".dot/x.yaml", "garbage: ["),
        ("a/.git/y.yaml", "garbage: ["),
        ("..data/cm.yaml", "garbage: ["),
        ("README.md", "not yaml"),
        ("c.yaml.orig", "garbage: ["),
    ]);
    let ms = load_dir(d.path()).unwrap();
    assert_eq!(
        labels(&ms),
        [
            "a/z.json#1 Secret s",
            "a-b.yml#1 ConfigMap kube-system/c",
            "b.yaml#1 ConfigMap kube-system/c"
        ]
    );
    assert_eq!(ms[0].namespace(), None);
    assert_eq!(ms[1].api_version(), "v1");
}

#[test]
fn a_dot_directory_holding_the_dir_is_not_a_reason_to_skip() {
    let d = tree(&[(".assets/manifests/cm.yaml", CM)]);
    let ms = load_dir(&d.path().join(".assets/manifests")).unwrap();
    assert_eq!(labels(&ms), ["cm.yaml#1 ConfigMap kube-system/c"]);
}

#[test]
fn multi_document_yaml_json_streams_nulls_and_lists() {
    let list = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace, metadata: {name: x}}\n- {apiVersion: v1, kind: ServiceAccount, metadata: {name: sa, namespace: x}}\n";
    let d = tree(&[
        (
            "1.yaml",
            &format!("---\n{CM}---\n---\nnull\n---\n# comment\n---\n{list}"),
        ),
        (
            "2.json",
            r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a"}} null {"apiVersion":"v1","kind":"Namespace","metadata":{"name":"b"}}"#,
        ),
    ]);
    let ms = load_dir(d.path()).unwrap();
    let got = labels(&ms);
    assert_eq!(got.len(), 5, "{got:?}");
    assert_eq!(got[0], "1.yaml#1 ConfigMap kube-system/c");
    assert!(got[1].ends_with("item 0 Namespace x"), "{got:?}");
    assert!(got[2].ends_with("item 1 ServiceAccount x/sa"), "{got:?}");
    assert_eq!(got[3], "2.json#1 Namespace a");
    assert_eq!(got[4], "2.json#3 Namespace b");
}

#[test]
fn files_without_objects_are_errors() {
    for text in [
        "",
        "---\n",
        "null\n",
        "# only a comment\n",
        "---\nnull\n---\n",
    ] {
        let d = tree(&[("empty.yaml", text)]);
        let e = load_dir(d.path()).unwrap_err().to_string();
        assert!(e.contains("empty.yaml: no object"), "{text:?}: {e}");
    }
    let d = tree(&[("empty.json", " ")]);
    assert!(matches!(
        load_dir(d.path()),
        Err(ManifestError::Empty { .. })
    ));
}

#[test]
fn bad_documents_name_file_document_and_problem() {
    let cases = [
        (
            "x.yaml",
            format!("{CM}---\nkind: [\n"),
            "x.yaml: document 2: not valid YAML",
        ),
        (
            "x.json",
            "{\"apiVersion\": ".into(),
            "x.json: document 1: not valid JSON",
        ),
        (
            "x.yaml",
            "- a\n- b\n".into(),
            "document 1: expected an object (a mapping), found a list",
        ),
        (
            "x.yaml",
            "kind: ConfigMap\nmetadata: {name: c}\n".into(),
            "apiVersion is missing",
        ),
        (
            "x.yaml",
            "apiVersion: v1\nmetadata: {name: c}\n".into(),
            "kind is missing",
        ),
        (
            "x.yaml",
            "apiVersion: v1\nkind: ConfigMap\n".into(),
            "metadata.name is missing",
        ),
        (
            "x.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {generateName: c-}\n".into(),
            "metadata.name is missing",
        ),
        (
            "x.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ''}\n".into(),
            "metadata.name is empty",
        ),
        (
            "x.yaml",
            "apiVersion: 1\nkind: ConfigMap\nmetadata: {name: c}\n".into(),
            "apiVersion is a number, not a string",
        ),
        (
            "x.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: [a]}\n".into(),
            "metadata.namespace is a list",
        ),
        (
            "x.yaml",
            "apiVersion: v1\nkind: List\nitems: [{kind: Secret}]\n".into(),
            "document 1: List item 0: apiVersion is missing",
        ),
    ];
    for (file, text, want) in cases {
        let d = tree(&[(file, &text)]);
        let e = load_dir(d.path()).unwrap_err().to_string();
        assert!(e.contains(want), "{text:?}: {e}");
        assert!(e.contains(file) && !e.contains('\n'), "{e}");
    }
    let d = tree(&[("bin.yaml", "")]);
    std::fs::write(d.path().join("bin.yaml"), [0xff, 0xfe, 0]).unwrap();
    let e = load_dir(d.path()).unwrap_err().to_string();
    assert!(e.contains("bin.yaml: document 1: not UTF-8"), "{e}");
}

#[test]
fn a_missing_dir_is_an_io_error_naming_it() {
    let d = tempfile::tempdir().unwrap();
    let e = load_dir(&d.path().join("nope")).unwrap_err().to_string();
    assert!(e.starts_with("read dir ") && e.contains("nope"), "{e}");
}

#[test]
fn phases_keep_path_order_within_each_phase() {
    let ns = |n: &str| format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {n}}}\n");
    let crd = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: foos.example.com}\n";
    let other_ns = "apiVersion: example.com/v1\nkind: Namespace\nmetadata: {name: notcore}\n";
    let d = tree(&[
        ("0.yaml", CM),
        ("1.yaml", &ns("b")),
        ("2.yaml", crd),
        ("3.yaml", &format!("{}---\n{other_ns}", ns("a"))),
    ]);
    let p = phases(load_dir(d.path()).unwrap());
    assert_eq!(p.len(), 5);
    let names = |ms: &[Manifest]| ms.iter().map(|m| m.name().to_string()).collect::<Vec<_>>();
    assert_eq!(names(&p.namespaces), ["b", "a"]);
    assert_eq!(names(&p.crds), ["foos.example.com"]);
    assert_eq!(names(&p.rest), ["c", "notcore"]);
    assert!(phases(Vec::new()).is_empty());
}
