//! Kubernetes API request metrics: every request the operator's kube client sends, by method and response code —
//! what `rest_client_requests_total` is to a controller-runtime operator. A tower layer on the client's stack, so
//! no call path can bypass it; the benchmarks read it to report API-server requests per resource.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Method, Request, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tower_layer::Layer;
use tower_service::Service;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    code: String,
}

/// Requests to the Kubernetes API server.
#[derive(Debug, Clone, Default)]
pub struct KubeMetrics {
    requests: Family<RequestLabels, Counter>,
}

impl KubeMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "kube_requests",
            "Requests sent to the Kubernetes API server, by method (GET, POST, PATCH, PUT, DELETE, or WATCH for a \
             GET that opens a watch) and response code (`error` when no response came back)",
            metrics.requests.clone(),
        );
        metrics
    }

    /// The layer to add to the kube client (`ClientBuilder::with_layer`).
    pub fn layer(&self) -> CountRequestsLayer {
        CountRequestsLayer {
            requests: self.requests.clone(),
        }
    }
}

/// Counts each request once its response headers arrive (a watch: when the stream opens).
#[derive(Debug, Clone)]
pub struct CountRequestsLayer {
    requests: Family<RequestLabels, Counter>,
}

impl<S> Layer<S> for CountRequestsLayer {
    type Service = CountRequests<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CountRequests {
            inner,
            requests: self.requests.clone(),
        }
    }
}

/// The service [`CountRequestsLayer`] wraps around the client's stack.
#[derive(Debug, Clone)]
pub struct CountRequests<S> {
    inner: S,
    requests: Family<RequestLabels, Counter>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for CountRequests<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let method = method_label(
            request.method(),
            request.uri().path(),
            request.uri().query(),
        );
        // At trace level each request is logged by method and path (never a body): what `make bench` counts,
        // request by request, when a count has to be explained.
        tracing::trace!(method, path = request.uri().path(), "kube request");
        let requests = self.requests.clone();
        let response = self.inner.call(request);
        Box::pin(async move {
            let result = response.await;
            let code = match &result {
                Ok(response) => response.status().as_u16().to_string(),
                Err(_) => "error".to_owned(),
            };
            requests
                .get_or_create(&RequestLabels { method, code })
                .inc();
            result
        })
    }
}

/// The `method` label: the HTTP method, except `WATCH` for a GET with `watch=true` (or `1`), which holds a stream
/// open rather than reading once, and `LIST` for a GET of a whole collection (a watch's list, paid per kind, not
/// per object: `GET` alone then counts the reads of single objects).
fn method_label(method: &Method, path: &str, query: Option<&str>) -> &'static str {
    let watch = query.is_some_and(|query| {
        query
            .split('&')
            .any(|pair| pair == "watch=true" || pair == "watch=1")
    });
    match *method {
        Method::GET if watch => "WATCH",
        Method::GET if is_collection(path) => "LIST",
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        _ => "OTHER",
    }
}

/// Whether an API path names a collection (`/api/v1/namespaces/a/secrets`, `/apis/g/v/things`) rather than one
/// object (`.../secrets/s`) or an object's subresource (`.../things/t/status`).
fn is_collection(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match segments.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => return false,
    };
    let rest = match rest {
        // A namespaced resource: `namespaces/{ns}/{resource}...`; `namespaces` and `namespaces/{ns}` themselves
        // are the collection of namespaces and one namespace.
        ["namespaces", _namespace, scoped @ ..] if !scoped.is_empty() => scoped,
        other => other,
    };
    rest.len() == 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Format, Metrics};

    /// A stand-in API server: 404 for DELETE, 200 for everything else; fails the request whose path is `/fail`.
    #[derive(Clone)]
    struct Answer;

    impl Service<Request<()>> for Answer {
        type Response = Response<()>;
        type Error = &'static str;
        type Future = std::future::Ready<Result<Response<()>, &'static str>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: Request<()>) -> Self::Future {
            if request.uri().path() == "/fail" {
                return std::future::ready(Err("connection reset"));
            }
            let status = if request.method() == Method::DELETE {
                404
            } else {
                200
            };
            let mut response = Response::new(());
            *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
            std::future::ready(Ok(response))
        }
    }

    fn request(method: Method, uri: &str) -> Request<()> {
        Request::builder().method(method).uri(uri).body(()).unwrap()
    }

    #[tokio::test]
    async fn counts_by_method_and_code_with_watches_apart() {
        let metrics = Metrics::new();
        let mut service = metrics.kube.layer().layer(Answer);
        for (method, uri) in [
            (Method::GET, "/api/v1/namespaces/a/secrets?labelSelector=x"),
            (
                Method::GET,
                "/api/v1/namespaces/a/secrets?watch=true&resourceVersion=1",
            ),
            (
                Method::GET,
                "/api/v1/secrets?allowWatchBookmarks=true&watch=1",
            ),
            (Method::GET, "/api/v1/namespaces/a/secrets/s"),
            (Method::PATCH, "/api/v1/namespaces/a/secrets/s"),
            (Method::DELETE, "/api/v1/namespaces/a/secrets/s"),
            (Method::POST, "/fail"),
        ] {
            let _ = service.call(request(method, uri)).await;
        }
        let text = metrics.encode(Format::PrometheusText).unwrap();
        for line in [
            "eiam_operator_kube_requests_total{method=\"LIST\",code=\"200\"} 1",
            "eiam_operator_kube_requests_total{method=\"GET\",code=\"200\"} 1",
            "eiam_operator_kube_requests_total{method=\"WATCH\",code=\"200\"} 2",
            "eiam_operator_kube_requests_total{method=\"PATCH\",code=\"200\"} 1",
            "eiam_operator_kube_requests_total{method=\"DELETE\",code=\"404\"} 1",
            "eiam_operator_kube_requests_total{method=\"POST\",code=\"error\"} 1",
        ] {
            assert!(text.contains(line), "missing {line}:\n{text}");
        }
    }

    #[test]
    fn a_watch_parameter_set_to_false_is_a_plain_get() {
        let one = "/api/v1/namespaces/a/secrets/s";
        assert_eq!(method_label(&Method::GET, one, Some("watch=false")), "GET");
        assert_eq!(method_label(&Method::GET, one, Some("nowatch=true")), "GET");
        assert_eq!(method_label(&Method::GET, one, None), "GET");
    }

    #[test]
    fn collections_are_told_from_objects() {
        for list in [
            "/api/v1/secrets",
            "/api/v1/namespaces",
            "/api/v1/namespaces/a/secrets",
            "/apis/eiam-operator.io/v1alpha1/clustereiamproviders",
            "/apis/eiam-operator.io/v1alpha1/namespaces/a/applicationclientsecrets",
        ] {
            assert!(is_collection(list), "{list}");
        }
        for object in [
            "/api/v1/namespaces/a",
            "/api/v1/namespaces/a/secrets/s",
            "/apis/eiam-operator.io/v1alpha1/clustereiamproviders/p",
            "/apis/eiam-operator.io/v1alpha1/namespaces/a/applicationclientsecrets/x/status",
            "/apis/coordination.k8s.io/v1/namespaces/a/leases/eiam-operator",
            "/version",
        ] {
            assert!(!is_collection(object), "{object}");
        }
    }
}
