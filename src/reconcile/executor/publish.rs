//! The Kubernetes Secret the operator writes: its desired shape and how drift from it is recognised.
//!
//! The Secret carries a SHA-256 of the data keys the operator writes in an annotation. A user (or a tool) that
//! edits one of those keys does not update that annotation, so an edit is visible without reading the secret back
//! from EIAM; only the repair itself calls `ObtainApplicationClientSecret`.
//!
//! With `spec.target.template`, the operator's keys are the rendered ones (plus the plain keys when `spec.target.keys`
//! is set), and a fingerprint of the template sits next to the data hash: editing the template is drift too, and
//! is repaired by re-publishing the same EIAM secret.
//!
//! Keys other field managers add (a mutating webhook, another tool's `kubectl apply`) are theirs: server-side apply
//! leaves them alone, so the operator does too — they neither count as drift nor get removed. Otherwise every
//! resync would repeat an Obtain, a re-apply that changes nothing, and a `Repaired` event.

use super::template::{self, TemplateError, TemplateValues};
use crate::api::{
    ANNOTATION_EXPIRES_AT, ANNOTATION_SECRET_ID, LABEL_MANAGED_BY, SecretKeys, SecretTemplate,
};
use k8s_openapi::{
    ByteString,
    api::core::v1::Secret,
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
    jiff::Timestamp,
};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// Annotation holding the SHA-256 of the data the operator wrote.
pub const ANNOTATION_DATA_HASH: &str = "eiam-operator.io/data-hash";
/// Annotation holding the fingerprint of `spec.target.template` the data was rendered from (absent without one).
pub const ANNOTATION_TEMPLATE_HASH: &str = "eiam-operator.io/template-hash";

/// Everything needed to render the Secret; the clear value is borrowed only for the time of the write.
pub struct SecretLayout<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    /// The EIAM instance and application, for templates.
    pub instance_id: &'a str,
    pub application_id: &'a str,
    /// The plain client id / client secret keys ([`crate::api::SecretTarget::plain_keys`]); `None` when a
    /// template replaces them.
    pub plain_keys: Option<SecretKeys>,
    /// `spec.target.template`.
    pub template: Option<&'a SecretTemplate>,
    pub labels: &'a BTreeMap<String, String>,
    pub annotations: &'a BTreeMap<String, String>,
    pub owner: Option<OwnerReference>,
}

impl SecretLayout<'_> {
    /// Every data key the operator writes.
    pub fn data_keys(&self) -> BTreeSet<String> {
        let mut keys: BTreeSet<String> = self
            .plain_keys
            .iter()
            .flat_map(|k| [k.client_id.clone(), k.client_secret.clone()])
            .collect();
        if let Some(template) = self.template {
            keys.extend(template.data.keys().cloned());
        }
        keys
    }

    /// The Secret's `type`.
    pub fn secret_type(&self) -> &str {
        self.template.map(|t| t.type_.as_str()).unwrap_or("Opaque")
    }

    fn template_hash(&self) -> Option<String> {
        self.template.map(template::fingerprint)
    }
}

/// The secret being published: which EIAM secret it is and when it expires.
pub struct PublishedSecret<'a> {
    pub secret_id: &'a str,
    pub client_id: &'a str,
    pub client_secret: &'a str,
    pub not_after: Option<Timestamp>,
}

/// SHA-256 (hex) over the data keys and values, in key order: over the operator's own keys only.
pub fn data_hash(data: &BTreeMap<String, ByteString>) -> String {
    let mut hasher = Sha256::new();
    for (key, value) in data {
        hasher.update((key.len() as u64).to_be_bytes());
        hasher.update(key.as_bytes());
        hasher.update((value.0.len() as u64).to_be_bytes());
        hasher.update(&value.0);
    }
    hex::encode(hasher.finalize())
}

/// Renders the Secret for server-side apply with the operator's field manager. Fails only when a template does not
/// render with the real values (the error never quotes them).
pub fn desired_secret(
    layout: &SecretLayout<'_>,
    published: &PublishedSecret<'_>,
) -> Result<Secret, TemplateError> {
    let mut data = BTreeMap::new();
    if let Some(template) = layout.template {
        let rendered = template::render(
            template,
            &TemplateValues {
                client_id: published.client_id,
                client_secret: published.client_secret,
                secret_id: published.secret_id,
                expires_at: published.not_after,
                instance_id: layout.instance_id,
                application_id: layout.application_id,
            },
        )?;
        data.extend(
            rendered
                .into_iter()
                .map(|(key, text)| (key, ByteString(text.into_bytes()))),
        );
    }
    if let Some(keys) = &layout.plain_keys {
        data.insert(
            keys.client_id.clone(),
            ByteString(published.client_id.as_bytes().to_vec()),
        );
        data.insert(
            keys.client_secret.clone(),
            ByteString(published.client_secret.as_bytes().to_vec()),
        );
    }

    let mut labels = layout.labels.clone();
    labels.insert(LABEL_MANAGED_BY.0.to_owned(), LABEL_MANAGED_BY.1.to_owned());
    let mut annotations = layout.annotations.clone();
    annotations.insert(
        ANNOTATION_SECRET_ID.to_owned(),
        published.secret_id.to_owned(),
    );
    annotations.insert(
        ANNOTATION_EXPIRES_AT.to_owned(),
        published
            .not_after
            .map(|t| t.to_string())
            .unwrap_or_else(|| "never".to_owned()),
    );
    annotations.insert(ANNOTATION_DATA_HASH.to_owned(), data_hash(&data));
    if let Some(hash) = layout.template_hash() {
        annotations.insert(ANNOTATION_TEMPLATE_HASH.to_owned(), hash);
    }

    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(layout.name.to_owned()),
            namespace: Some(layout.namespace.to_owned()),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: layout.owner.clone().map(|owner| vec![owner]),
            ..ObjectMeta::default()
        },
        type_: Some(layout.secret_type().to_owned()),
        data: Some(data),
        ..Secret::default()
    })
}

/// What the planner needs to know about the Secret that exists now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedSecret {
    /// The EIAM secret id the Secret says it holds.
    pub secret_id: Option<String>,
    /// The data, keys, labels and annotations are what the operator would write for that id.
    pub in_sync: bool,
}

/// Whether the operator's own data keys (`keys`: [`SecretLayout::data_keys`]) are all present and exactly as it
/// wrote them (their hash matches the data-hash annotation). Keys of other field managers are not looked at.
pub fn data_as_written(secret: &Secret, keys: &BTreeSet<String>) -> bool {
    let ours: BTreeMap<String, ByteString> = secret
        .data
        .iter()
        .flatten()
        .filter(|(key, _)| keys.contains(*key))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    ours.len() == keys.len()
        && secret
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_DATA_HASH))
            .is_some_and(|hash| *hash == data_hash(&ours))
}

/// Compares an existing Secret with the layout; `None` when it does not exist.
pub fn observe(existing: Option<&Secret>, layout: &SecretLayout<'_>) -> Option<ObservedSecret> {
    let secret = existing?;
    let annotations = secret.metadata.annotations.clone().unwrap_or_default();
    let labels = secret.metadata.labels.clone().unwrap_or_default();
    // The data as written, rendered from the template the spec holds now, into a Secret of the type it asks for.
    let data_matches = data_as_written(secret, &layout.data_keys())
        && annotations.get(ANNOTATION_TEMPLATE_HASH) == layout.template_hash().as_ref()
        && secret.type_.as_deref().unwrap_or("Opaque") == layout.secret_type();
    let labels_match = labels.get(LABEL_MANAGED_BY.0).map(String::as_str)
        == Some(LABEL_MANAGED_BY.1)
        && layout.labels.iter().all(|(k, v)| labels.get(k) == Some(v));
    let annotations_match = layout
        .annotations
        .iter()
        .all(|(k, v)| annotations.get(k) == Some(v));
    let owner_matches = match &layout.owner {
        Some(owner) => secret
            .metadata
            .owner_references
            .as_ref()
            .is_some_and(|refs| refs.iter().any(|r| r.uid == owner.uid)),
        None => true,
    };
    Some(ObservedSecret {
        secret_id: annotations.get(ANNOTATION_SECRET_ID).cloned(),
        in_sync: data_matches && labels_match && annotations_match && owner_matches,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout<'a>(
        labels: &'a BTreeMap<String, String>,
        annotations: &'a BTreeMap<String, String>,
    ) -> SecretLayout<'a> {
        SecretLayout {
            namespace: "team-a",
            name: "app-credentials",
            instance_id: "idaas_1",
            application_id: "app_1",
            plain_keys: Some(SecretKeys::default()),
            template: None,
            labels,
            annotations,
            owner: None,
        }
    }

    fn published() -> PublishedSecret<'static> {
        PublishedSecret {
            secret_id: "sci_1",
            client_id: "app_1",
            client_secret: "CSsecretvalue",
            not_after: None,
        }
    }

    #[test]
    fn a_freshly_rendered_secret_is_in_sync() {
        let (labels, annotations) = (BTreeMap::new(), BTreeMap::new());
        let layout = layout(&labels, &annotations);
        let secret = desired_secret(&layout, &published()).expect("renders");
        let observed = observe(Some(&secret), &layout).expect("exists");
        assert_eq!(
            observed,
            ObservedSecret {
                secret_id: Some("sci_1".into()),
                in_sync: true
            }
        );
    }

    #[test]
    fn an_edited_data_key_is_out_of_sync() {
        let (labels, annotations) = (BTreeMap::new(), BTreeMap::new());
        let layout = layout(&labels, &annotations);
        let mut secret = desired_secret(&layout, &published()).expect("renders");
        secret
            .data
            .as_mut()
            .expect("data")
            .insert("clientSecret".into(), ByteString(b"edited".to_vec()));
        assert!(!observe(Some(&secret), &layout).expect("exists").in_sync);
    }

    #[test]
    fn keys_of_other_field_managers_are_tolerated_but_a_missing_key_of_ours_is_not() {
        let (labels, annotations) = (BTreeMap::new(), BTreeMap::new());
        let layout = layout(&labels, &annotations);
        let mut secret = desired_secret(&layout, &published()).expect("renders");
        let data = secret.data.as_mut().expect("data");
        data.insert("injected-by-webhook".into(), ByteString(b"x".to_vec()));
        assert!(observe(Some(&secret), &layout).expect("exists").in_sync);
        secret.data.as_mut().expect("data").remove("clientId");
        assert!(!observe(Some(&secret), &layout).expect("exists").in_sync);
    }

    #[test]
    fn a_missing_user_label_is_out_of_sync() {
        let labels = BTreeMap::from([("team".to_owned(), "a".to_owned())]);
        let annotations = BTreeMap::new();
        let rendered =
            desired_secret(&layout(&BTreeMap::new(), &annotations), &published()).expect("renders");
        assert!(
            !observe(Some(&rendered), &layout(&labels, &annotations))
                .expect("exists")
                .in_sync
        );
    }

    fn templated() -> SecretTemplate {
        SecretTemplate {
            type_: "Opaque".to_owned(),
            data: BTreeMap::from([(
                "app.env".to_owned(),
                "ID={{ clientId }}\nSECRET={{ clientSecret }}\n".to_owned(),
            )]),
        }
    }

    #[test]
    fn a_template_writes_only_its_keys_unless_plain_keys_are_set() {
        let (labels, annotations) = (BTreeMap::new(), BTreeMap::new());
        let template = templated();
        let mut layout = layout(&labels, &annotations);
        layout.template = Some(&template);
        layout.plain_keys = None;
        let secret = desired_secret(&layout, &published()).expect("renders");
        let data = secret.data.clone().expect("data");
        assert_eq!(data.keys().collect::<Vec<_>>(), ["app.env"]);
        assert_eq!(data["app.env"].0, b"ID=app_1\nSECRET=CSsecretvalue\n");
        assert!(observe(Some(&secret), &layout).expect("exists").in_sync);

        layout.plain_keys = Some(SecretKeys::default());
        let both = desired_secret(&layout, &published()).expect("renders");
        assert_eq!(
            both.data.expect("data").keys().collect::<Vec<_>>(),
            ["app.env", "clientId", "clientSecret"]
        );
    }

    #[test]
    fn a_template_change_or_an_edited_rendered_key_is_drift() {
        let (labels, annotations) = (BTreeMap::new(), BTreeMap::new());
        let template = templated();
        let mut layout = layout(&labels, &annotations);
        layout.template = Some(&template);
        layout.plain_keys = None;
        let secret = desired_secret(&layout, &published()).expect("renders");

        let mut edited = secret.clone();
        edited
            .data
            .as_mut()
            .expect("data")
            .insert("app.env".into(), ByteString(b"ID=x".to_vec()));
        assert!(!observe(Some(&edited), &layout).expect("exists").in_sync);

        // The same Secret, but the spec's template now differs: re-publish.
        let mut changed = templated();
        changed
            .data
            .insert("app.env".into(), "CLIENT_ID={{ clientId }}\n".into());
        layout.template = Some(&changed);
        assert!(!observe(Some(&secret), &layout).expect("exists").in_sync);

        // A new type is drift as well (the executor re-creates the Secret for it).
        let mut retyped = templated();
        retyped.type_ = "kubernetes.io/basic-auth".into();
        layout.template = Some(&retyped);
        assert!(!observe(Some(&secret), &layout).expect("exists").in_sync);

        // Dropping the template goes back to the plain keys: drift too.
        layout.template = None;
        layout.plain_keys = Some(SecretKeys::default());
        assert!(!observe(Some(&secret), &layout).expect("exists").in_sync);
    }
}
