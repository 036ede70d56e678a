//! Kubernetes Events (events.k8s.io/v1) about the resources, posted one by one as they happen.
//!
//! Not kube-runtime's `Recorder`: to fold repeats into a series it keeps every Event of the last six minutes in
//! memory and scans that cache on every publish. Its repeat key includes the regarding object's resourceVersion,
//! which changes with every status write, so for this operator no Event ever repeats: the cache only grew — by one
//! Event per issue, rotation and retirement, tens of MiB when 10,000 resources rotate at once — and each publish
//! cost a scan of it. (A resource's Warning is emitted when its stall reason changes, not on every retry.)

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};

/// `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// Posts Events as `reporting_controller`.
#[derive(Clone)]
pub struct EventPublisher {
    kube: Client,
    controller: String,
}

impl EventPublisher {
    pub fn new(kube: Client, controller: &str) -> Self {
        Self {
            kube,
            controller: controller.to_owned(),
        }
    }

    /// Posts one Event about `regarding`, in its namespace.
    pub async fn publish(
        &self,
        regarding: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: &str,
    ) -> Result<(), kube::Error> {
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let event = EventContent {
            type_,
            reason,
            action,
            note,
        }
        .build(&self.controller, regarding, Timestamp::now());
        Api::<Event>::namespaced(self.kube.clone(), &namespace)
            .create(&PostParams::default(), &event)
            .await?;
        Ok(())
    }
}

/// What an Event says.
struct EventContent<'a> {
    type_: EventType,
    reason: &'a str,
    action: &'a str,
    note: &'a str,
}

impl EventContent<'_> {
    /// The Event as client-go's recorder writes it, reported by `controller` at `now`.
    fn build(&self, controller: &str, regarding: &ObjectReference, now: Timestamp) -> Event {
        let name = regarding.name.as_deref().unwrap_or(controller);
        Event {
            action: Some(self.action.to_owned()),
            reason: Some(self.reason.to_owned()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            note: Some(self.note.to_owned()),
            metadata: ObjectMeta {
                namespace: regarding.namespace.clone(),
                // Unique per resource and instant.
                name: Some(format!("{name}.{:x}", now.as_nanosecond())),
                ..ObjectMeta::default()
            },
            reporting_controller: Some(controller.to_owned()),
            reporting_instance: Some(controller.to_owned()),
            type_: Some(
                match self.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .to_owned(),
            ),
            ..Event::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_names_its_resource_and_instant_and_says_who_reported_it() {
        let regarding = ObjectReference {
            kind: Some("ApplicationClientSecret".to_owned()),
            namespace: Some("team-a".to_owned()),
            name: Some("web".to_owned()),
            uid: Some("uid-1".to_owned()),
            ..ObjectReference::default()
        };
        let now = Timestamp::from_second(1_800_000_000).expect("a time");
        let event = EventContent {
            type_: EventType::Warning,
            reason: "SecretDeletedInEiam",
            action: "Reconcile",
            note: "note",
        }
        .build("eiam-operator", &regarding, now);
        assert_eq!(event.metadata.namespace.as_deref(), Some("team-a"));
        assert_eq!(
            event.metadata.name,
            Some(format!("web.{:x}", now.as_nanosecond()))
        );
        assert_eq!(event.type_.as_deref(), Some("Warning"));
        assert_eq!(event.reason.as_deref(), Some("SecretDeletedInEiam"));
        assert_eq!(event.action.as_deref(), Some("Reconcile"));
        assert_eq!(event.note.as_deref(), Some("note"));
        assert_eq!(event.regarding, Some(regarding));
        assert_eq!(event.reporting_controller.as_deref(), Some("eiam-operator"));
        assert_eq!(event.reporting_instance.as_deref(), Some("eiam-operator"));
        assert!(event.series.is_none() && event.event_time.is_some());
    }
}
