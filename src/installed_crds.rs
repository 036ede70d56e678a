//! Are the installed CRDs the ones this operator was built with? Asked at start, before anything is reconciled.
//!
//! Helm never upgrades a chart's `crds/` directory, and an API server prunes every field its CRD does not know. An
//! operator newer than its CRDs would then see a spec without the fields the user set (a template, say) and act on
//! what is left; one older than its CRDs would ignore fields it does not know. Either way it would quietly do the
//! wrong thing. So each CRD carries the hash of its spec (`eiam-operator.io/schema-hash`, written by `crdgen`), the
//! binary knows the hashes it was built with ([`crate::api::crds::expected_schema_hashes`]), and until they agree
//! the operator reconciles nothing: it is not ready, `/readyz` and the log say which CRD differs and how to upgrade
//! it, and `eiam_operator_crd_schema_current` is 0 for it. It checks again every few seconds, so upgrading the CRDs
//! is enough to let it start.
//!
//! The CRDs are read with `get` by name (the chart's ClusterRole grants exactly that, in both RBAC modes).

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;

use crate::api::ANNOTATION_SCHEMA_HASH;
use crate::api::crds::expected_schema_hashes;
use crate::health::{Health, Phase};
use crate::metrics::Metrics;

/// How often the CRDs are read again while they do not match.
pub const RECHECK_INTERVAL: Duration = Duration::from_secs(5);

/// What is wrong with one installed CRD.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrdProblem {
    /// The CRD is not installed at all.
    #[error("CRD {name} is not installed")]
    Missing {
        /// The CRD's name, e.g. `applicationclientsecrets.eiam-operator.io`.
        name: String,
    },
    /// The CRD predates schema hashes (or was edited): it has no `eiam-operator.io/schema-hash` annotation.
    #[error(
        "CRD {name} has no {ANNOTATION_SCHEMA_HASH} annotation (installed by an older release)"
    )]
    Unstamped {
        /// The CRD's name.
        name: String,
    },
    /// The CRD was generated from other types than this build's: older or newer.
    #[error("CRD {name} has schema hash {installed}, this operator was built for {expected}")]
    Different {
        /// The CRD's name.
        name: String,
        /// The hash the installed CRD carries.
        installed: String,
        /// The hash this build computes.
        expected: String,
    },
    /// The CRD could not be read (RBAC, the API server): whether it matches is unknown, so it counts as not matching.
    #[error(
        "cannot read CRD {name}: {message} (the operator needs get on customresourcedefinitions {name}; the chart's \
         ClusterRole grants it)"
    )]
    Unreadable {
        /// The CRD's name.
        name: String,
        /// The API server's error, without anything secret (it names the request, not data).
        message: String,
    },
}

impl CrdProblem {
    /// The CRD the problem is about.
    pub fn name(&self) -> &str {
        match self {
            CrdProblem::Missing { name }
            | CrdProblem::Unstamped { name }
            | CrdProblem::Different { name, .. }
            | CrdProblem::Unreadable { name, .. } => name,
        }
    }
}

/// What to do about mismatched CRDs, appended to every report of them.
pub const UPGRADE_HINT: &str = "upgrade the CRDs to this operator's version: `helm upgrade` with crds.enabled=true \
     (the default), or `kubectl apply --server-side -f deploy/eiam-operator.yaml` (or `crds/`) of the same release; \
     the operator reconciles nothing until they match";

/// Compares an installed CRD (or its absence) with the hash this build expects.
pub fn compare(
    name: &str,
    expected: &str,
    installed: Option<&CustomResourceDefinition>,
) -> Option<CrdProblem> {
    let Some(crd) = installed else {
        return Some(CrdProblem::Missing {
            name: name.to_owned(),
        });
    };
    let hash = crd
        .metadata
        .annotations
        .as_ref()
        .and_then(|annotations| annotations.get(ANNOTATION_SCHEMA_HASH));
    match hash {
        None => Some(CrdProblem::Unstamped {
            name: name.to_owned(),
        }),
        Some(hash) if hash == expected => None,
        Some(hash) => Some(CrdProblem::Different {
            name: name.to_owned(),
            installed: hash.clone(),
            expected: expected.to_owned(),
        }),
    }
}

/// Reads every CRD of the operator once; returns what does not match (empty: all do) and records the metric.
pub async fn check(client: &kube::Client, metrics: &Metrics) -> Vec<CrdProblem> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut problems = Vec::new();
    for (name, expected) in expected_schema_hashes() {
        let problem = match api.get_opt(&name).await {
            Ok(installed) => compare(&name, &expected, installed.as_ref()),
            Err(err) => Some(CrdProblem::Unreadable {
                name: name.clone(),
                message: err.to_string(),
            }),
        };
        metrics.set_crd_current(&name, problem.is_none());
        problems.extend(problem);
    }
    problems
}

/// Waits until every installed CRD matches this build, reporting loudly while they do not (error log on every
/// change of the problems, `/readyz` detail, metric). Returns `false` when `stop` resolved first.
pub async fn wait_until_current(
    client: &kube::Client,
    metrics: &Metrics,
    health: &Health,
    stop: impl std::future::Future<Output = ()>,
) -> bool {
    tokio::pin!(stop);
    let mut reported: Vec<CrdProblem> = Vec::new();
    loop {
        let problems = check(client, metrics).await;
        if problems.is_empty() {
            if !reported.is_empty() {
                tracing::info!("the installed CRDs now match this operator: starting");
            }
            return true;
        }
        if problems != reported {
            let summary = problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            tracing::error!(
                crds = %problems.iter().map(CrdProblem::name).collect::<Vec<_>>().join(","),
                problems = %summary,
                "the installed CRDs do not match this operator: {UPGRADE_HINT}"
            );
            health.set_with_detail(Phase::CrdsOutdated, format!("{summary}; {UPGRADE_HINT}"));
            reported = problems;
        }
        tokio::select! {
            () = tokio::time::sleep(RECHECK_INTERVAL) => {}
            () = &mut stop => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::crds;

    fn installed(hash: Option<&str>) -> CustomResourceDefinition {
        let mut crd = crds::all().remove(0);
        let annotations = crd
            .metadata
            .annotations
            .get_or_insert_with(Default::default);
        annotations.remove(ANNOTATION_SCHEMA_HASH);
        if let Some(hash) = hash {
            annotations.insert(ANNOTATION_SCHEMA_HASH.to_owned(), hash.to_owned());
        }
        crd
    }

    #[test]
    fn the_crds_this_build_generates_match_it() {
        for (crd, (name, expected)) in crds::all().iter().zip(expected_schema_hashes()) {
            assert_eq!(crd.metadata.name.as_deref(), Some(name.as_str()));
            assert_eq!(compare(&name, &expected, Some(crd)), None, "{name}");
        }
    }

    #[test]
    fn missing_unstamped_and_different_crds_are_named() {
        let (name, expected) = expected_schema_hashes().remove(0);
        assert_eq!(
            compare(&name, &expected, None),
            Some(CrdProblem::Missing { name: name.clone() })
        );
        assert_eq!(
            compare(&name, &expected, Some(&installed(None))),
            Some(CrdProblem::Unstamped { name: name.clone() })
        );
        let problem = compare(&name, &expected, Some(&installed(Some("sha256:0ld"))));
        assert_eq!(
            problem,
            Some(CrdProblem::Different {
                name: name.clone(),
                installed: "sha256:0ld".to_owned(),
                expected: expected.clone(),
            })
        );
        let text = problem.map(|p| p.to_string()).unwrap_or_default();
        assert!(text.contains(&name) && text.contains("sha256:0ld") && text.contains(&expected));
    }

    #[test]
    fn a_schema_change_changes_the_hash() {
        let mut crd = installed(None);
        let before = crds::schema_hash(&crd);
        crd.spec.versions[0].served = !crd.spec.versions[0].served;
        assert_ne!(crds::schema_hash(&crd), before);
        // The annotation is metadata: stamping a CRD does not change its hash.
        let stamped = crds::all().remove(0);
        assert_eq!(crds::schema_hash(&stamped), before);
    }
}
