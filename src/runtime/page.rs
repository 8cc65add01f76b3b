//! Serving the catalog page (`/catalog`, see `crate::page`) on the metrics
//! port: the reflector stores the controllers publish, the routes, and the
//! optional bearer-token gate.
//!
//! The page reads only the stores: a page view makes no API call. Only the
//! replica that leads keeps stores (the controllers run there), so a standby
//! answers 503 "standing by". With `--page-require-token`, a request must
//! carry a bearer token the API server accepts (TokenReview) whose user may
//! `list` Environments, Applications and Services (SubjectAccessReview); the
//! answers are cached for [`REVIEW_TTL`] per token, so a reload costs no call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use kube::runtime::reflector::ObjectRef;
use sha2::{Digest, Sha256};

use crate::names::GROUP;
use crate::page::{self, Catalog, ChildState, html};
use crate::reconcile::{PublishedStores, Stores};

/// How long an accepted or refused token is remembered.
pub const REVIEW_TTL: Duration = Duration::from_secs(30);
/// Bound on remembered tokens (the cache is emptied when full).
const REVIEW_CACHE_LIMIT: usize = 1024;
/// The kinds the page shows: a viewer must be allowed to `list` each.
const KINDS_SHOWN: [&str; 3] = ["environments", "applications", "services"];

/// What the page routes need.
pub struct Pages {
    pub stores: PublishedStores,
    /// Some: only requests with an accepted bearer token see the pages.
    pub gate: Option<TokenGate>,
}

impl Pages {
    pub fn open(stores: PublishedStores) -> Pages {
        Pages { stores, gate: None }
    }
}

/// The bearer-token check (TokenReview + SubjectAccessReview), with a cache.
pub struct TokenGate {
    client: std::sync::OnceLock<kube::Client>,
    reviewed: Mutex<HashMap<[u8; 32], (Instant, bool)>>,
}

impl Default for TokenGate {
    fn default() -> Self {
        TokenGate {
            client: std::sync::OnceLock::new(),
            reviewed: Mutex::new(HashMap::new()),
        }
    }
}

impl TokenGate {
    /// The client the reviews are created with, once connected.
    pub fn connect(&self, client: kube::Client) {
        let _ = self.client.set(client);
    }

    async fn admits(&self, headers: &HeaderMap) -> Result<(), Response> {
        let Some(token) = bearer_token(headers) else {
            return Err((
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "a bearer token is required (Authorization: Bearer <token>)",
            )
                .into_response());
        };
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let cached = self
            .reviewed
            .lock()
            .expect("review cache")
            .get(&key)
            .filter(|(at, _)| at.elapsed() < REVIEW_TTL)
            .map(|(_, allowed)| *allowed);
        let allowed = match cached {
            Some(allowed) => allowed,
            None => {
                let Some(client) = self.client.get() else {
                    return Err((
                        StatusCode::SERVICE_UNAVAILABLE,
                        "not connected to the API server yet",
                    )
                        .into_response());
                };
                let allowed = match review(client, token).await {
                    Ok(allowed) => allowed,
                    Err(error) => {
                        tracing::warn!(%error, "reviewing a page token failed");
                        return Err((
                            StatusCode::BAD_GATEWAY,
                            "the API server could not review the token",
                        )
                            .into_response());
                    }
                };
                let mut reviewed = self.reviewed.lock().expect("review cache");
                if reviewed.len() >= REVIEW_CACHE_LIMIT {
                    reviewed.clear();
                }
                reviewed.insert(key, (Instant::now(), allowed));
                allowed
            }
        };
        if allowed {
            Ok(())
        } else {
            Err((
                StatusCode::FORBIDDEN,
                "this token may not list Environments, Applications and Services",
            )
                .into_response())
        }
    }
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Whether the API server authenticates `token` and its user may list every kind shown.
async fn review(client: &kube::Client, token: &str) -> Result<bool, kube::Error> {
    let token_review = TokenReview {
        spec: TokenReviewSpec {
            token: Some(token.to_string()),
            audiences: None,
        },
        ..Default::default()
    };
    let reviewed = Api::<TokenReview>::all(client.clone())
        .create(&PostParams::default(), &token_review)
        .await?;
    let status = reviewed.status.unwrap_or_default();
    let Some(user) = status.user.filter(|_| status.authenticated == Some(true)) else {
        return Ok(false);
    };
    let reviews = Api::<SubjectAccessReview>::all(client.clone());
    for resource in KINDS_SHOWN {
        let access_review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: user.username.clone(),
                groups: user.groups.clone(),
                uid: user.uid.clone(),
                extra: user.extra.clone(),
                resource_attributes: Some(ResourceAttributes {
                    group: Some(GROUP.into()),
                    resource: Some(resource.into()),
                    verb: Some("list".into()),
                    ..Default::default()
                }),
                non_resource_attributes: None,
            },
            ..Default::default()
        };
        let answer = reviews
            .create(&PostParams::default(), &access_review)
            .await?;
        if !answer.status.is_some_and(|s| s.allowed) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The page routes, with their own state (merged into the metrics router).
pub fn router(pages: Arc<Pages>) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to(page::paths::OVERVIEW) }))
        .route(page::paths::OVERVIEW, get(overview))
        .route("/catalog/", get(overview))
        .route("/catalog/environments/{name}", get(environment))
        .route("/catalog/applications/{namespace}/{name}", get(application))
        .route("/catalog/services/{namespace}/{name}", get(service))
        .route(
            page::paths::STYLESHEET,
            get(|| async { asset("text/css; charset=utf-8", html::STYLESHEET) }),
        )
        .route(
            page::paths::SCRIPT,
            get(|| async { asset("text/javascript; charset=utf-8", html::SCRIPT) }),
        )
        .with_state(pages)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "max-age=300"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// An HTML answer with the headers that keep a page inert: scripts and styles
/// from this server only (no inline script can run even if one slipped
/// through), no framing, no form, no referrer.
fn page_response(status: StatusCode, markup: maud::Markup) -> Response {
    let mut response = (status, markup.into_string()).into_response();
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(headers, header::CONTENT_TYPE, "text/html; charset=utf-8");
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    );
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(headers, header::CACHE_CONTROL, "no-store");
    response
}

/// The gate, then the stores (loaded), then `render`.
async fn with_catalog(
    pages: &Pages,
    headers: &HeaderMap,
    render: impl FnOnce(&Stores, &Catalog) -> Response,
) -> Response {
    if let Some(gate) = &pages.gate
        && let Err(refused) = gate.admits(headers).await
    {
        return refused;
    }
    let Some(stores) = pages.stores.current() else {
        return page_response(StatusCode::SERVICE_UNAVAILABLE, html::standing_by());
    };
    if !*stores.loaded.borrow() {
        return page_response(StatusCode::SERVICE_UNAVAILABLE, html::standing_by());
    }
    let catalog = Catalog {
        environments: stores.environments.state(),
        applications: stores.applications.state(),
        services: stores.services.state(),
    };
    render(&stores, &catalog)
}

async fn overview(State(pages): State<Arc<Pages>>, headers: HeaderMap) -> Response {
    with_catalog(&pages, &headers, |_, catalog| {
        page_response(StatusCode::OK, html::overview(catalog))
    })
    .await
}

async fn environment(
    State(pages): State<Arc<Pages>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    with_catalog(&pages, &headers, |_, catalog| {
        match catalog.environment(&name) {
            Some(env) => page_response(StatusCode::OK, html::environment_page(catalog, env)),
            None => page_response(
                StatusCode::NOT_FOUND,
                html::not_found(&format!("Environment {name}")),
            ),
        }
    })
    .await
}

async fn application(
    State(pages): State<Arc<Pages>>,
    Path((namespace, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    with_catalog(&pages, &headers, |_, catalog| {
        match catalog.application(&namespace, &name) {
            Some(app) => page_response(StatusCode::OK, html::application_page(catalog, app)),
            None => page_response(
                StatusCode::NOT_FOUND,
                html::not_found(&format!("Application {namespace}/{name}")),
            ),
        }
    })
    .await
}

async fn service(
    State(pages): State<Arc<Pages>>,
    Path((namespace, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    with_catalog(&pages, &headers, |stores, catalog| {
        match catalog.service(&namespace, &name) {
            Some(service) => {
                let children = children_of(stores, &namespace, &name);
                page_response(
                    StatusCode::OK,
                    html::service_page(catalog, service, &children),
                )
            }
            None => page_response(
                StatusCode::NOT_FOUND,
                html::not_found(&format!("Service {namespace}/{name}")),
            ),
        }
    })
    .await
}

/// A Service's children from the stores: each is named after the Service.
fn children_of(stores: &Stores, namespace: &str, name: &str) -> Vec<ChildState> {
    let mut found = Vec::new();
    found.extend(
        stores
            .deployments
            .get(&child_ref(namespace, name))
            .and_then(|d| d.object())
            .map(|d| page::children::deployment(&d)),
    );
    found.extend(
        stores
            .core_services
            .get(&child_ref(namespace, name))
            .and_then(|s| s.object())
            .map(|s| page::children::core_service(&s)),
    );
    found.extend(
        stores
            .ingresses
            .get(&child_ref(namespace, name))
            .and_then(|i| i.object())
            .map(|i| page::children::ingress(&i)),
    );
    found.extend(
        stores
            .http_routes
            .get(&child_ref(namespace, name))
            .and_then(|r| r.object())
            .map(|r| page::children::http_route(&r)),
    );
    found.extend(
        stores
            .autoscalers
            .get(&child_ref(namespace, name))
            .and_then(|h| h.object())
            .map(|h| page::children::autoscaler(&h)),
    );
    found.extend(
        stores
            .disruption_budgets
            .get(&child_ref(namespace, name))
            .and_then(|p| p.object())
            .map(|p| page::children::disruption_budget(&p)),
    );
    found
}

fn child_ref<K: kube::Resource<DynamicType = ()>>(namespace: &str, name: &str) -> ObjectRef<K> {
    ObjectRef::new(name).within(namespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_bearer_authorization_header_carries_a_token() {
        let headers = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            h
        };
        assert_eq!(bearer_token(&headers("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(&headers("bearer  abc ")), Some("abc"));
        assert_eq!(
            bearer_token(&headers("Basic YWxhZGRpbjpvcGVuc2VzYW1l")),
            None
        );
        assert_eq!(bearer_token(&headers("Bearer ")), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }

    #[tokio::test]
    async fn a_gated_page_refuses_a_request_without_a_token_before_reading_anything() {
        let pages = Pages {
            stores: PublishedStores::default(),
            gate: Some(TokenGate::default()),
        };
        let response = with_catalog(&pages, &HeaderMap::new(), |_, _| {
            panic!("must not render without a token")
        })
        .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn a_replica_without_stores_says_it_is_standing_by() {
        let pages = Pages::open(PublishedStores::default());
        let response = with_catalog(&pages, &HeaderMap::new(), |_, _| unreachable!()).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
