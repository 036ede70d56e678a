//! What a pass may know without reading: the Secret as its status recorded it, or its absence, when the watch
//! vouches for it.

// The pass's own types and imports: this is one room of it.
use super::*;

/// How long a reconcile right after a start waits for the watch's first list of Secret metadata before it reads
/// its Secret instead.
const SECRET_VERSIONS_PATIENCE: Duration = Duration::from_secs(10);

/// The Secret as the watch vouches for it, with its version, when no read can tell more: either the watch shows
/// the version `status.secretResourceVersion` recorded and the spec that shapes the Secret is the one the status
/// describes (nothing changed since: the Secret holds the current secret), or the watch knows no Secret of that
/// name at all and the status records none published (a new resource's: missing, which is what a read would say).
/// `None`: read the Secret.
///
/// The watch can lag a moment behind a Secret someone else just created. Trusting its "none" is safe because a
/// Secret the pass believes missing is only ever created, never applied over (see `writes::apply_secret`): one
/// that appeared meanwhile fails that create with a conflict, and the next pass reads it.
pub(super) async fn unchanged_secret(
    resource: &ApplicationClientSecret,
    secret_name: &str,
    context: &Context,
) -> Option<(KubeSecret, Option<String>)> {
    let namespace = resource.namespace().unwrap_or_default();
    let published = context
        .secret_versions
        .lookup(&namespace, secret_name, SECRET_VERSIONS_PATIENCE)
        .await?;
    let Some(seen) = published else {
        // A Secret this resource published and recorded may just not be in the watch yet (its own write, a moment
        // ago): only a resource that has recorded none trusts the watch's "none".
        if resource
            .status
            .as_ref()
            .is_some_and(|status| status.secret_resource_version.is_some())
        {
            return None;
        }
        // No Secret of ours by that name; one of anyone else's would be in the other map (a Secret whose label
        // changed may sit in both for a while, which only costs a read).
        let other = context
            .other_secret_versions
            .lookup(&namespace, secret_name, SECRET_VERSIONS_PATIENCE)
            .await?;
        return other.is_none().then_some((KubeSecret::Missing, None));
    };
    let status = resource.status.as_ref()?;
    let recorded = status.secret_resource_version.as_deref()?;
    let current = status.current_secret_id.as_deref()?;
    if status.observed_generation != resource.metadata.generation
        || status.secret_name.as_deref() != Some(secret_name)
    {
        return None;
    }
    (seen == recorded).then(|| {
        (
            KubeSecret::Present {
                secret_id: Some(current.to_owned()),
                data_in_sync: true,
                owned_by_us: true,
            },
            Some(seen),
        )
    })
}
