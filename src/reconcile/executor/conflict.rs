//! EIAM's two slots belong to one resource per application: of several resources naming the same instance and
//! application, which one owns it (the others stall with `Conflict`).

use crate::api::ApplicationClientSecret;
use crate::api::conditions::reasons;
use crate::reconcile::context::Context;
use kube::ResourceExt;

/// The other live resource that owns the same instance and application (see the ranking below), if it is not
/// this one.
pub(super) fn conflicting_owner(
    resource: &ApplicationClientSecret,
    context: &Context,
) -> Option<String> {
    let spec = &resource.spec;
    // A resource that already holds secrets of the application owns it, whatever its age: creation timestamps have
    // one-second resolution, and a newcomer created in the same second must not win a tie (on its namespace or
    // name) against the resource that minted the secret in use. Among resources holding nothing, the oldest wins.
    let holds = |r: &ApplicationClientSecret| {
        r.first_create_since().is_some()
            || r.status.as_ref().is_some_and(|s| {
                s.current_secret_id.is_some()
                    || s.previous_secret_id.is_some()
                    || s.pending_create_since.is_some()
            })
    };
    // A resource its provider refused, holding nothing, claims nothing: otherwise a tenant could block another
    // team's application by creating a resource for it that is refused.
    let refused = |r: &ApplicationClientSecret| {
        !holds(r)
            && r.status.as_ref().is_some_and(|s| {
                s.conditions.iter().any(|c| {
                    c.type_ == "Stalled" && c.status == "True" && c.reason == reasons::NOT_ALLOWED
                })
            })
    };
    let rank = |r: &ApplicationClientSecret| {
        let holds = holds(r);
        (
            !holds,
            r.metadata.creation_timestamp.clone().map(|t| t.0),
            r.namespace(),
            r.name_any(),
        )
    };
    let mine = rank(resource);
    context
        .claims
        .of(&spec.instance_id, &spec.application_id)
        .iter()
        .filter_map(|key| context.store.get(key))
        .filter(|other| {
            other.uid() != resource.uid()
                && other.metadata.deletion_timestamp.is_none()
                && other.spec.instance_id == spec.instance_id
                && other.spec.application_id == spec.application_id
                && !refused(other)
                && rank(other) < mine
        })
        .min_by_key(|other| rank(other))
        .map(|other| {
            format!(
                "{}/{}",
                other.namespace().unwrap_or_default(),
                other.name_any()
            )
        })
}
