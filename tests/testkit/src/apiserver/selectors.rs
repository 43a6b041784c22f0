//! `labelSelector` and `fieldSelector` as kube-apiserver parses them. Clients narrow
//! lists and watches with these (kubectl `-l`, `delete --wait` with
//! `metadata.name=`, kubelets with `spec.nodeName=`), and an unsupported field must be
//! a 400, not silently everything.

use serde_json::Value;

use super::status::{ApiError, ApiResult};

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
    Gt(i64),
    Lt(i64),
}

#[derive(Debug, Clone, PartialEq)]
struct Requirement {
    key: String,
    op: Op,
}

/// A parsed label or field selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selector {
    labels: Vec<Requirement>,
    fields: Vec<Requirement>,
}

/// Splits at commas outside parentheses.
fn terms(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(s[start..].trim());
    out.into_iter().filter(|t| !t.is_empty()).collect()
}

fn set_values(rest: &str, term: &str) -> ApiResult<Vec<String>> {
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| ApiError::bad_request(format!("unable to parse requirement: {term:?}")))?;
    Ok(inner.split(',').map(|v| v.trim().to_string()).collect())
}

fn parse_label_term(term: &str) -> ApiResult<Requirement> {
    let bad = || ApiError::bad_request(format!("unable to parse requirement: {term:?}"));
    let req = |key: &str, op| Requirement {
        key: key.trim().to_string(),
        op,
    };
    if let Some(key) = term.strip_prefix('!') {
        return Ok(req(key, Op::NotExists));
    }
    if let Some((key, v)) = term.split_once("!=") {
        return Ok(req(key, Op::NotEq(v.trim().into())));
    }
    if let Some((key, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return Ok(req(key, Op::Eq(v.trim().into())));
    }
    for (sep, gt) in [('>', true), ('<', false)] {
        if let Some((key, v)) = term.split_once(sep) {
            let n = v.trim().parse().map_err(|_| bad())?;
            return Ok(req(key, if gt { Op::Gt(n) } else { Op::Lt(n) }));
        }
    }
    let mut words = term.splitn(2, char::is_whitespace);
    let key = words.next().unwrap_or_default();
    let rest = words.next().unwrap_or_default().trim_start();
    if rest.is_empty() {
        return Ok(req(key, Op::Exists));
    }
    if let Some(r) = rest.strip_prefix("notin") {
        return Ok(req(key, Op::NotIn(set_values(r, term)?)));
    }
    if let Some(r) = rest.strip_prefix("in") {
        return Ok(req(key, Op::In(set_values(r, term)?)));
    }
    Err(bad())
}

/// Fields selectable on every kind, plus the per-kind ones the real server supports.
fn field_supported(kind: &str, field: &str) -> bool {
    matches!(field, "metadata.name" | "metadata.namespace")
        || match kind {
            "Pod" => matches!(
                field,
                "spec.nodeName"
                    | "spec.restartPolicy"
                    | "spec.schedulerName"
                    | "spec.serviceAccountName"
                    | "spec.hostNetwork"
                    | "status.phase"
                    | "status.podIP"
                    | "status.nominatedNodeName"
            ),
            "Node" => field == "spec.unschedulable",
            "Secret" => field == "type",
            "Namespace" => field == "status.phase",
            "Event" => {
                field.starts_with("involvedObject.")
                    || matches!(field, "reason" | "source" | "type" | "reportingComponent")
            }
            _ => false,
        }
}

impl Selector {
    /// Parses the two query parameters for objects of `kind`.
    pub fn parse(kind: &str, labels: Option<&str>, fields: Option<&str>) -> ApiResult<Selector> {
        let labels = terms(labels.unwrap_or(""))
            .into_iter()
            .map(parse_label_term)
            .collect::<ApiResult<Vec<_>>>()?;
        let mut parsed = Vec::new();
        for term in terms(fields.unwrap_or("")) {
            let r = parse_label_term(term)?;
            if !matches!(r.op, Op::Eq(_) | Op::NotEq(_)) {
                return Err(ApiError::bad_request(format!(
                    "invalid field selector {term:?}: only =, == and != are supported"
                )));
            }
            if !field_supported(kind, &r.key) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {}",
                    r.key
                )));
            }
            parsed.push(r);
        }
        Ok(Selector {
            labels,
            fields: parsed,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    /// The single name selected with `metadata.name=`, if any (narrows etcd reads).
    pub fn name(&self) -> Option<&str> {
        self.fields.iter().find_map(|r| match &r.op {
            Op::Eq(v) if r.key == "metadata.name" => Some(v.as_str()),
            _ => None,
        })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        let label_ok = self.labels.iter().all(|r| {
            let v = labels.and_then(|l| l.get(&r.key)).and_then(Value::as_str);
            test(&r.op, v)
        });
        label_ok
            && self.fields.iter().all(|r| {
                let v = field_value(obj, &r.key);
                test(&r.op, Some(&v))
            })
    }
}

/// A field's value as a selector compares it: missing is "", booleans are words.
fn field_value(obj: &Value, path: &str) -> String {
    let pointer = format!("/{}", path.replace('.', "/"));
    match obj.pointer(&pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Null) | None => match path {
            "spec.unschedulable" | "spec.hostNetwork" => "false".into(),
            _ => String::new(),
        },
        Some(other) => other.to_string(),
    }
}

fn test(op: &Op, v: Option<&str>) -> bool {
    match op {
        Op::Eq(want) => v == Some(want.as_str()),
        Op::NotEq(want) => v != Some(want.as_str()),
        Op::In(set) => v.is_some_and(|v| set.iter().any(|s| s == v)),
        Op::NotIn(set) => v.is_none_or(|v| set.iter().all(|s| s != v)),
        Op::Exists => v.is_some(),
        Op::NotExists => v.is_none(),
        Op::Gt(n) => v
            .and_then(|v| v.parse::<i64>().ok())
            .is_some_and(|x| x > *n),
        Op::Lt(n) => v
            .and_then(|v| v.parse::<i64>().ok())
            .is_some_and(|x| x < *n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({"metadata": {"name": "p", "namespace": "kube-system",
            "labels": {"tier": "control-plane", "k8s-app": "kube-apiserver"}},
            "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}})
    }

    fn sel(l: &str, f: &str) -> Selector {
        Selector::parse("Pod", Some(l), Some(f)).unwrap()
    }

    #[test]
    fn label_operators() {
        let p = pod();
        assert!(sel("tier=control-plane", "").matches(&p));
        assert!(sel("tier==control-plane,k8s-app", "").matches(&p));
        assert!(!sel("tier!=control-plane", "").matches(&p));
        assert!(sel("k8s-app in (a, kube-apiserver)", "").matches(&p));
        assert!(!sel("k8s-app notin (a,kube-apiserver),tier", "").matches(&p));
        assert!(sel("!missing,missing notin (x)", "").matches(&p));
        assert!(!sel("missing", "").matches(&p));
        assert!(sel("", "").is_empty());
    }

    #[test]
    fn field_selectors() {
        let p = pod();
        assert!(sel("", "spec.nodeName=n1,status.phase!=Pending").matches(&p));
        assert!(!sel("", "metadata.namespace=default").matches(&p));
        assert_eq!(sel("", "metadata.name=p").name(), Some("p"));
        assert!(sel("", "spec.schedulerName=").matches(&p));
        assert!(Selector::parse("Pod", None, Some("spec.foo=1")).is_err());
        assert!(Selector::parse("Pod", Some("a in b"), None).is_err());
        assert!(Selector::parse("Pod", Some("a<x"), None).is_err());
    }
}
