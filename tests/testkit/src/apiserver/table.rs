//! Server-side printing (`Accept: application/json;as=Table;...`), which `kubectl get`
//! asks for. Plain objects are returned instead; kubectl prints those with its default
//! NAME/AGE columns. Kept as one hook so a real Table rendering can be added here.

use serde_json::Value;

/// Whether to answer with a `meta.k8s.io/v1` Table.
pub fn wanted(_accept: &str) -> bool {
    false
}

/// An object as the client should see it.
pub fn render(object: Value) -> Value {
    object
}
