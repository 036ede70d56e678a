//! `spec.target.template`: the Secret's data rendered from Jinja2 templates (minijinja), for applications that want
//! a config file rather than two keys.
//!
//! Strict: an unknown variable is an error, not an empty string, so a typo never publishes a broken config. A
//! template is checked *before* anything is minted, by rendering it with placeholder values ([`validate`]): that
//! render can only echo placeholders, so its error messages are shown in full. The real render ([`render`]) could
//! fail differently on the real values (a filter that chokes on the secret's content); its errors are reported by
//! key and kind only: never minijinja's detail, which may quote the value, and never the line, which depends on the
//! branch the value took (a tenant who may edit the template but not read the Secret could otherwise learn the
//! secret a character at a time, one failing branch per line).

use std::collections::BTreeMap;

use jiff::Timestamp;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};
use sha2::{Digest, Sha256};

use crate::api::SecretTemplate;

/// The variables a template sees, as it spells them.
pub const VARIABLES: [&str; 6] = [
    "clientId",
    "clientSecret",
    "secretId",
    "expiresAt",
    "instanceId",
    "applicationId",
];

/// Why a template could not be used. Never carries a secret value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The template is wrong whatever the values: a syntax error or an unknown variable.
    #[error("spec.target.template.data[{key:?}] {position}: {problem}")]
    Invalid {
        /// The data key whose template failed.
        key: String,
        /// `line N`, or `at an unknown position`.
        position: String,
        /// The engine's description, from a render with placeholder values only.
        problem: String,
    },
    /// The template compiled and rendered with placeholders but failed with the real values.
    #[error(
        "spec.target.template.data[{key:?}]: {kind} while rendering with the real values (position and details \
         withheld: they could reveal the secret); check filters and operations on clientSecret and clientId"
    )]
    Render {
        /// The data key whose template failed.
        key: String,
        /// The engine's error kind (for example `invalid operation`), which never contains a value.
        kind: String,
    },
}

/// The values a template is rendered with. `client_secret` is the clear secret: it only ever enters the
/// rendered output, never an error.
pub struct TemplateValues<'a> {
    pub client_id: &'a str,
    pub client_secret: &'a str,
    pub secret_id: &'a str,
    pub expires_at: Option<Timestamp>,
    pub instance_id: &'a str,
    pub application_id: &'a str,
}

/// Work one template may do (minijinja "fuel": roughly instructions, or 64 bytes of allocation each). Config files
/// take a few hundred; a runaway loop in a tenant's template stops here instead of holding a reconcile worker.
const FUEL: u64 = 50_000;

/// Values that stand in for the real ones when a template is checked before anything is minted.
const PLACEHOLDERS: TemplateValues<'static> = TemplateValues {
    client_id: "placeholder-client-id",
    client_secret: "placeholder-client-secret",
    secret_id: "placeholder-secret-id",
    expires_at: None,
    instance_id: "placeholder-instance-id",
    application_id: "placeholder-application-id",
};

/// Checks every template by rendering it with placeholder values.
pub fn validate(template: &SecretTemplate) -> Result<(), TemplateError> {
    render_with(template, &PLACEHOLDERS, |key, err| TemplateError::Invalid {
        key: key.to_owned(),
        position: position(&err),
        problem: problem(&err),
    })
    .map(|_| ())
}

/// Renders every template with the real values: data key → rendered text.
pub fn render(
    template: &SecretTemplate,
    values: &TemplateValues<'_>,
) -> Result<BTreeMap<String, String>, TemplateError> {
    render_with(template, values, |key, err| TemplateError::Render {
        key: key.to_owned(),
        kind: err.kind().to_string(),
    })
}

/// A fingerprint of the template (type and every entry), written next to the data hash: a template change is
/// drift, so the Secret is re-published (with the same EIAM secret) when the template changes.
pub fn fingerprint(template: &SecretTemplate) -> String {
    let mut hasher = Sha256::new();
    for part in std::iter::once((&template.type_, &template.type_)).chain(template.data.iter()) {
        hasher.update((part.0.len() as u64).to_be_bytes());
        hasher.update(part.0.as_bytes());
        hasher.update((part.1.len() as u64).to_be_bytes());
        hasher.update(part.1.as_bytes());
    }
    hex::encode(hasher.finalize())
}

fn render_with(
    template: &SecretTemplate,
    values: &TemplateValues<'_>,
    error: impl Fn(&str, minijinja::Error) -> TemplateError,
) -> Result<BTreeMap<String, String>, TemplateError> {
    let environment = environment();
    let context = context(values);
    template
        .data
        .iter()
        .map(|(key, source)| {
            let rendered = environment
                .template_from_named_str(key, source)
                .and_then(|compiled| compiled.render(context.clone()))
                .map_err(|err| error(key, err))?;
            Ok((key.clone(), rendered))
        })
        .collect()
}

fn environment() -> Environment<'static> {
    let mut environment = Environment::new();
    environment.set_undefined_behavior(UndefinedBehavior::Strict);
    environment.set_fuel(Some(FUEL));
    // Secret data is not HTML: a key named `index.html` must not escape the secret's characters.
    environment.set_auto_escape_callback(|_| AutoEscape::None);
    // Config files end with a newline; keep the one the template ends with. (Building the default syntax with
    // this one change cannot fail; if it ever did, the engine's default only drops that final newline.)
    if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
        .keep_trailing_newline(true)
        .build()
    {
        environment.set_syntax(syntax);
    }
    environment
}

fn context(values: &TemplateValues<'_>) -> Value {
    let expires_at = values.expires_at.map(|t| t.to_string()).unwrap_or_default();
    let entries: BTreeMap<String, Value> = VARIABLES
        .iter()
        .zip([
            values.client_id.to_owned(),
            values.client_secret.to_owned(),
            values.secret_id.to_owned(),
            expires_at,
            values.instance_id.to_owned(),
            values.application_id.to_owned(),
        ])
        .map(|(name, value)| ((*name).to_owned(), Value::from(value)))
        .collect();
    Value::from(entries)
}

/// `line N` of the error in the template, as the engine reports it.
fn position(err: &minijinja::Error) -> String {
    match err.line() {
        Some(line) => format!("line {line}"),
        None => "at an unknown position".to_owned(),
    }
}

/// The engine's description without its `(in NAME:LINE)` suffix, which [`position`] already gives.
fn problem(err: &minijinja::Error) -> String {
    match err.detail() {
        Some(detail) => format!("{}: {detail}", err.kind()),
        None => err.kind().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(entries: &[(&str, &str)]) -> SecretTemplate {
        SecretTemplate {
            type_: "Opaque".to_owned(),
            data: entries
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    const SECRET: &str = "CS-very-secret-value";

    fn real() -> TemplateValues<'static> {
        TemplateValues {
            client_id: "app_1",
            client_secret: SECRET,
            secret_id: "sci_1",
            expires_at: Some("2027-01-02T03:04:05Z".parse().expect("a timestamp")),
            instance_id: "idaas_1",
            application_id: "app_1",
        }
    }

    #[test]
    fn every_variable_renders_and_html_is_not_escaped() {
        let t = template(&[
            (
                "application.yaml",
                "id: {{ clientId }}\nsecret: {{ clientSecret }}\n",
            ),
            (
                "all.html",
                "{{ secretId }} {{ expiresAt }} {{ instanceId }}/{{ applicationId }} <{{ clientSecret }}>",
            ),
            ("config.json", "{\"secret\": {{ clientSecret | tojson }}}"),
            // Template-local names, printed the way admission lets through (README).
            (
                "loop.txt",
                "{% for x in ['a', 'b'] %}{{ (loop.index) }}{{ (x) }}{% endfor %}",
            ),
        ]);
        assert_eq!(validate(&t), Ok(()));
        let rendered = render(&t, &real()).expect("renders");
        assert_eq!(
            rendered["application.yaml"],
            format!("id: app_1\nsecret: {SECRET}\n")
        );
        assert_eq!(
            rendered["all.html"],
            format!("sci_1 2027-01-02T03:04:05Z idaas_1/app_1 <{SECRET}>")
        );
        assert_eq!(
            rendered["config.json"],
            format!("{{\"secret\": \"{SECRET}\"}}")
        );
        assert_eq!(rendered["loop.txt"], "1a2b");
    }

    #[test]
    fn expires_at_is_empty_for_a_secret_that_never_expires() {
        let t = template(&[("expires", "[{{ expiresAt }}]")]);
        let values = TemplateValues {
            expires_at: None,
            ..real()
        };
        assert_eq!(render(&t, &values).expect("renders")["expires"], "[]");
    }

    #[test]
    fn an_unknown_variable_is_invalid_and_named_with_key_and_line() {
        let t = template(&[("app.env", "ID={{ clientId }}\nSECRET={{ clientSecert }}\n")]);
        let err = validate(&t).expect_err("unknown variable");
        let text = err.to_string();
        assert!(
            text.contains("\"app.env\"") && text.contains("line 2") && text.contains("undefined"),
            "{text}"
        );
    }

    #[test]
    fn a_syntax_error_is_invalid_and_named_with_key_and_line() {
        let t = template(&[
            ("ok", "{{ clientId }}"),
            ("broken", "a\nb {% if clientId %}"),
        ]);
        let text = validate(&t).expect_err("syntax error").to_string();
        assert!(
            text.contains("\"broken\"") && text.contains("line 2") && text.contains("syntax"),
            "{text}"
        );
    }

    #[test]
    fn a_runaway_template_runs_out_of_fuel() {
        let t = template(&[(
            "loop",
            "{% for i in range(10000) %}{% for j in range(10000) %}{{ clientId }}{% endfor %}{% endfor %}",
        )]);
        let started = std::time::Instant::now();
        let text = validate(&t).expect_err("stopped").to_string();
        assert!(text.contains("\"loop\"") && text.contains("fuel"), "{text}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn a_render_error_with_the_real_values_never_quotes_them() {
        // Valid with the (longer) placeholder, whose branch is not taken; failing on the real, shorter secret.
        let t = template(&[(
            "n",
            "{% if clientSecret | length < 21 %}{{ clientSecret + 1 }}{% endif %}",
        )]);
        assert_eq!(validate(&t), Ok(()));
        let err = render(&t, &real()).expect_err("fails on the real value");
        let text = err.to_string();
        assert!(matches!(err, TemplateError::Render { .. }), "{err:?}");
        assert!(
            text.contains("\"n\"") && text.contains("invalid operation"),
            "{text}"
        );
        // The line would tell which branch the secret took: withheld like the details.
        assert!(!text.contains("line"), "{text}");
        assert!(!text.contains(SECRET), "{text}");
        assert!(!format!("{err:?}").contains(SECRET));
    }

    #[test]
    fn the_fingerprint_changes_with_any_entry_or_the_type() {
        let base = template(&[("a", "{{ clientId }}")]);
        let mut retyped = base.clone();
        retyped.type_ = "kubernetes.io/basic-auth".to_owned();
        let edited = template(&[("a", "{{ clientId }} ")]);
        let renamed = template(&[("b", "{{ clientId }}")]);
        let fingerprints = [&base, &retyped, &edited, &renamed].map(fingerprint);
        for (i, a) in fingerprints.iter().enumerate() {
            for b in &fingerprints[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(fingerprint(&base), fingerprint(&base.clone()));
    }
}
