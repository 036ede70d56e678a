//! What a pass may know without reading: the Secret as its status recorded it, when the watch vouches for it.

// The pass's own types and imports: this is one room of it.
use super::*;

/// How long a reconcile right after a start waits for the watch's first list of Secret metadata before it reads
/// its Secret instead.
const SECRET_VERSIONS_PATIENCE: Duration = Duration::from_secs(10);

/// The Secret as the status recorded it, with its version, when nothing can have changed either since: the watch
/// shows the version `status.secretResourceVersion` recorded, and the spec that shapes the Secret is the one the
/// status describes. `None`: read the Secret.
pub(super) async fn unchanged_secret(
    resource: &ApplicationClientSecret,
    secret_name: &str,
    context: &Context,
) -> Option<(KubeSecret, Option<String>)> {
    let status = resource.status.as_ref()?;
    let recorded = status.secret_resource_version.as_deref()?;
    let current = status.current_secret_id.as_deref()?;
    if status.observed_generation != resource.metadata.generation
        || status.secret_name.as_deref() != Some(secret_name)
    {
        return None;
    }
    let namespace = resource.namespace().unwrap_or_default();
    let seen = context
        .secret_versions
        .get(&namespace, secret_name, SECRET_VERSIONS_PATIENCE)
        .await?;
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
