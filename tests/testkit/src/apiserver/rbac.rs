//! The RBAC authorizer: upstream's `plugin/pkg/auth/authorizer/rbac/rbac.go`
//! (`RBACAuthorizer.Authorize`, which visits the rules of every binding that applies to
//! the user until one allows, `DefaultRuleResolver.VisitRulesFor` in
//! `pkg/registry/rbac/validation/rule.go`) and `pkg/apis/rbac/v1/evaluation_helpers.go`
//! (`RuleAllows` and its matchers). Roles and bindings are read from etcd into a
//! [`Policy`] snapshot that is reloaded after any write this server makes to them and
//! after any change an etcd watch reports (another api-server's write), like the real
//! server's informer cache.
//!
//! Simplified: ClusterRole `aggregationRule` is not evaluated (no aggregation
//! controller fills the rules).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{RwLock, watch};

use super::authz::{Attributes, Decision};
use super::discovery;
use super::store::Store;

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// `rbacv1.PolicyRule`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct Rule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
    #[serde(rename = "nonResourceURLs")]
    pub non_resource_urls: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Subject {
    pub kind: String,
    pub name: String,
    pub namespace: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RoleRef {
    pub kind: String,
    pub name: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct Meta {
    name: String,
    namespace: String,
}

/// A Role or ClusterRole.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Role {
    metadata: Meta,
    pub rules: Vec<Rule>,
}

/// A RoleBinding or ClusterRoleBinding.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Binding {
    metadata: Meta,
    pub subjects: Vec<Subject>,
    pub role_ref: RoleRef,
}

/// Everything RBAC reads, at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub cluster_roles: Vec<Role>,
    pub roles: Vec<Role>,
    pub cluster_role_bindings: Vec<Binding>,
    pub role_bindings: Vec<Binding>,
}

/// `VerbMatches`, `APIGroupMatches`, `ResourceMatches`, `ResourceNameMatches` and
/// `NonResourceURLMatches` of `evaluation_helpers.go`, combined as `RuleAllows`.
pub fn rule_allows(a: &Attributes, rule: &Rule) -> bool {
    let any = |list: &[String], v: &str| list.iter().any(|x| x == "*" || x == v);
    if !any(&rule.verbs, &a.verb) {
        return false;
    }
    if !a.resource_request {
        return rule.non_resource_urls.iter().any(|u| {
            u == "*" || *u == a.path || u.strip_suffix('*').is_some_and(|p| a.path.starts_with(p))
        });
    }
    let combined = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let resource_ok = rule.resources.iter().any(|r| {
        r == "*"
            || *r == combined
            || (!a.subresource.is_empty() && r.strip_prefix("*/") == Some(a.subresource.as_str()))
    });
    let name_ok = rule.resource_names.is_empty() || rule.resource_names.contains(&a.name);
    any(&rule.api_groups, &a.api_group) && resource_ok && name_ok
}

/// `appliesToUser`: whether one subject names the user (a ServiceAccount subject
/// without namespace takes the binding's).
fn applies(a: &Attributes, s: &Subject, binding_ns: &str) -> bool {
    match s.kind.as_str() {
        "User" => a.user == s.name,
        "Group" => a.groups.contains(&s.name),
        "ServiceAccount" => {
            let ns = if s.namespace.is_empty() {
                binding_ns
            } else {
                &s.namespace
            };
            !ns.is_empty() && a.user == format!("system:serviceaccount:{ns}:{}", s.name)
        }
        _ => false,
    }
}

impl Snapshot {
    /// The rules of a binding's role, or the lister's NotFound message.
    fn role_rules(&self, r: &RoleRef, ns: &str) -> Result<&[Rule], String> {
        let (list, kind, want_ns) = match r.kind.as_str() {
            "ClusterRole" => (&self.cluster_roles, "clusterrole", ""),
            "Role" => (&self.roles, "role", ns),
            other => return Err(format!("unsupported role reference kind: {other:?}")),
        };
        list.iter()
            .find(|x| x.metadata.name == r.name && x.metadata.namespace == want_ns)
            .map(|x| x.rules.as_slice())
            .ok_or_else(|| format!("{kind}.{RBAC_GROUP} {:?} not found", r.name))
    }

    /// `VisitRulesFor` until a rule allows: cluster bindings, then (for a namespaced
    /// request) the namespace's bindings. Errors are the roles that could not be found.
    fn allows(&self, a: &Attributes) -> (bool, Vec<String>) {
        let mut errors = Vec::new();
        let cluster = self.cluster_role_bindings.iter().map(|b| (b, ""));
        let local = self
            .role_bindings
            .iter()
            .filter(|b| !a.namespace.is_empty() && b.metadata.namespace == a.namespace)
            .map(|b| (b, b.metadata.namespace.as_str()));
        for (b, ns) in cluster.chain(local) {
            if !b.subjects.iter().any(|s| applies(a, s, ns)) {
                continue;
            }
            match self.role_rules(&b.role_ref, ns) {
                Ok(rules) if rules.iter().any(|r| rule_allows(a, r)) => return (true, errors),
                Ok(_) => {}
                Err(e) => errors.push(e),
            }
        }
        (false, errors)
    }
}

/// `RBACAuthorizer.Authorize`: allow, or no opinion with `RBAC: <errors>` as reason.
pub fn authorize(s: &Snapshot, a: &Attributes) -> (Decision, String) {
    let (ok, errors) = s.allows(a);
    if ok {
        return (Decision::Allow, String::new());
    }
    let reason = match errors.as_slice() {
        [] => String::new(),
        [one] => format!("RBAC: {one}"),
        many => format!("RBAC: [{}]", many.join(", ")),
    };
    (Decision::NoOpinion, reason)
}

/// The snapshot cache.
pub struct Policy {
    current: RwLock<Arc<Snapshot>>,
    dirty: AtomicBool,
    /// The last reload failed (logged once until one succeeds).
    failing: AtomicBool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            current: RwLock::new(Arc::new(Snapshot::default())),
            dirty: AtomicBool::new(true),
            failing: AtomicBool::new(false),
        }
    }
}

/// The etcd prefixes of the four kinds (`kubeboot::registry` segments).
fn prefixes(store: &Store) -> Vec<String> {
    [
        "clusterroles",
        "roles",
        "clusterrolebindings",
        "rolebindings",
    ]
    .iter()
    .filter_map(|p| discovery::find(RBAC_GROUP, "v1", p, &[]))
    .map(|r| format!("{}/{}/", store.prefix, r.segment()))
    .collect()
}

/// Decodes stored objects; one that does not parse is left out (it grants nothing).
fn parse<T: serde::de::DeserializeOwned>(v: Vec<serde_json::Value>) -> Vec<T> {
    v.into_iter()
        .filter_map(|o| serde_json::from_value(o).ok())
        .collect()
}

async fn load(store: &Store) -> Result<Snapshot, String> {
    let mut lists = Vec::new();
    for p in prefixes(store) {
        let (items, _) = store
            .list(&p, None, 0)
            .await
            .map_err(|e| format!("listing {p}: {}", e.message))?;
        lists.push(items.into_iter().map(|s| s.object).collect::<Vec<_>>());
    }
    let [cr, r, crb, rb] = <[Vec<serde_json::Value>; 4]>::try_from(lists)
        .map_err(|l| format!("{} RBAC prefixes, not 4", l.len()))?;
    Ok(Snapshot {
        cluster_roles: parse(cr),
        roles: parse(r),
        cluster_role_bindings: parse(crb),
        role_bindings: parse(rb),
    })
}

/// A reload in progress: dropped before it stored a snapshot (it failed, or the request
/// it runs in went away because its client hung up), it marks the cache stale again, so
/// the next request reloads instead of trusting what is there (at first, nothing).
struct Reload<'a>(Option<&'a AtomicBool>);

impl Drop for Reload<'_> {
    fn drop(&mut self) {
        if let Some(dirty) = self.0 {
            dirty.store(true, Ordering::SeqCst);
        }
    }
}

impl Policy {
    /// Marks the snapshot stale (after a write to an RBAC object).
    pub fn invalidate(&self) {
        self.dirty.store(true, Ordering::SeqCst);
    }

    /// The current snapshot, reloaded from etcd first when stale. If etcd does not
    /// answer, or the request goes away meanwhile, the last snapshot is used and the
    /// reload done again next time.
    pub async fn snapshot(&self, store: &Store) -> Arc<Snapshot> {
        if self.dirty.swap(false, Ordering::SeqCst) {
            let mut reload = Reload(Some(&self.dirty));
            match load(store).await {
                Ok(s) => {
                    *self.current.write().await = Arc::new(s);
                    reload.0 = None;
                    if self.failing.swap(false, Ordering::SeqCst) {
                        crate::note!("fake-apiserver: RBAC policy loaded again");
                    }
                }
                Err(e) => {
                    if !self.failing.swap(true, Ordering::SeqCst) {
                        crate::note!("fake-apiserver: RBAC policy not loaded: {e}");
                    }
                }
            }
        }
        self.current.read().await.clone()
    }

    /// Follows etcd so that writes by other api-servers are seen: any event on an RBAC
    /// prefix marks the snapshot stale. Runs until `stop` changes.
    pub async fn follow(self: Arc<Self>, store: Arc<Store>, stop: watch::Receiver<bool>) {
        for prefix in prefixes(&store) {
            let (policy, store, mut stop) = (self.clone(), store.clone(), stop.clone());
            tokio::spawn(async move {
                let follow = async {
                    loop {
                        if let Ok(mut w) = store.watch(&prefix, 0).await {
                            policy.invalidate();
                            while let Ok(Some(_)) = w.message().await {
                                policy.invalidate();
                            }
                        }
                        policy.invalidate();
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                };
                tokio::select! {
                    () = follow => {}
                    _ = stop.changed() => {}
                }
            });
        }
    }
}

#[cfg(test)]
#[path = "rbac_tests.rs"]
mod tests;
