//! Who owns the fields of a Secret the operator created: a create (POST) is recorded by the API server as an
//! `Update` by the operator, and only fields the operator owns through `Apply` alone are removed when a later
//! server-side apply no longer sets them. This folds the create's entry into the apply's.
//!
//! A new resource's Secret is created with a POST, not applied: a create cannot land on a Secret someone else made
//! a moment before (it fails with a conflict), which an apply would take over (issue 25 removed the read that used
//! to guard it). The price is that create's `Update` entry: while it co-owns a label, an annotation or a data key,
//! removing that one from `spec.target` would leave it on the Secret. Every write after a read of the Secret (a
//! spec change, a drift repair) folds the entry first, conditional on the version read; a rotation changes the
//! values, never which fields are set, and needs no fold.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
use serde_json::Value;

use crate::api::FIELD_MANAGER;

fn ours(entry: &ManagedFieldsEntry, operation: &str) -> bool {
    entry.manager.as_deref() == Some(FIELD_MANAGER)
        && entry.operation.as_deref() == Some(operation)
        && entry.subresource.as_deref().unwrap_or_default().is_empty()
}

/// The managed fields with this operator's `Update` entry (its create's) folded into its `Apply` entry, or `None`
/// when there is no such entry to fold. The other managers' entries are kept as they are.
pub(super) fn fold_create_entry(entries: &[ManagedFieldsEntry]) -> Option<Vec<ManagedFieldsEntry>> {
    let created = entries.iter().find(|e| ours(e, "Update"))?;
    let created_fields = created.fields_v1.as_ref().map(|f| &f.0);
    let mut folded: Vec<ManagedFieldsEntry> = entries
        .iter()
        .filter(|e| !ours(e, "Update"))
        .cloned()
        .collect();
    match folded.iter_mut().find(|e| ours(e, "Apply")) {
        Some(applied) => {
            // Fields are tracked per API version: a create of another version is not folded (never the case for
            // Secrets, which have one), so nothing is attributed to the wrong schema.
            if applied.api_version != created.api_version {
                return None;
            }
            let mut union = applied.fields_v1.take().map(|f| f.0).unwrap_or_default();
            if let Some(created) = created_fields {
                merge(&mut union, created);
            }
            applied.fields_v1 = Some(FieldsV1(union));
        }
        None => folded.push(ManagedFieldsEntry {
            operation: Some("Apply".to_owned()),
            ..created.clone()
        }),
    }
    Some(folded)
}

/// Adds every field of `from` to `into` (a FieldsV1 set is a tree of objects).
fn merge(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Object(into), Value::Object(from)) => {
            for (key, value) in from {
                match into.get_mut(key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        into.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (into @ Value::Null, from) => *into = from.clone(),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(manager: &str, operation: &str, fields: Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.to_owned()),
            operation: Some(operation.to_owned()),
            api_version: Some("v1".to_owned()),
            fields_type: Some("FieldsV1".to_owned()),
            fields_v1: Some(FieldsV1(fields)),
            ..ManagedFieldsEntry::default()
        }
    }

    #[test]
    fn nothing_to_fold_without_our_create_entry() {
        let entries = [
            entry(FIELD_MANAGER, "Apply", json!({"f:data": {"f:a": {}}})),
            entry("kubectl", "Update", json!({"f:data": {"f:b": {}}})),
        ];
        assert_eq!(fold_create_entry(&entries), None);
    }

    #[test]
    fn a_create_alone_becomes_the_apply_entry() {
        let created = json!({"f:data": {".": {}, "f:clientSecret": {}}, "f:type": {}});
        let entries = [
            entry(FIELD_MANAGER, "Update", created.clone()),
            entry(
                "kubectl",
                "Update",
                json!({"f:metadata": {"f:labels": {"f:team": {}}}}),
            ),
        ];
        let folded = fold_create_entry(&entries).expect("folded");
        assert_eq!(folded.len(), 2);
        assert_eq!(folded[0], entries[1], "other managers kept as they are");
        assert_eq!(folded[1], entry(FIELD_MANAGER, "Apply", created));
    }

    #[test]
    fn a_create_and_later_applies_become_one_apply_entry_owning_both() {
        let entries = [
            entry(
                FIELD_MANAGER,
                "Update",
                json!({"f:data": {"f:clientSecret": {}, "f:dsn": {}}, "f:metadata": {"f:labels": {"f:a": {}}}}),
            ),
            entry(
                FIELD_MANAGER,
                "Apply",
                json!({"f:data": {"f:clientSecret": {}}, "f:metadata": {"f:annotations": {"f:x": {}}}}),
            ),
        ];
        let folded = fold_create_entry(&entries).expect("folded");
        assert_eq!(
            folded,
            [entry(
                FIELD_MANAGER,
                "Apply",
                json!({
                    "f:data": {"f:clientSecret": {}, "f:dsn": {}},
                    "f:metadata": {"f:annotations": {"f:x": {}}, "f:labels": {"f:a": {}}},
                }),
            )]
        );
    }

    #[test]
    fn an_entry_of_a_subresource_is_not_ours_to_fold() {
        let mut status = entry(FIELD_MANAGER, "Update", json!({"f:status": {}}));
        status.subresource = Some("status".to_owned());
        assert_eq!(fold_create_entry(&[status]), None);
    }
}
