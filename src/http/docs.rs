//! The OpenAPI 3.1 document, generated from the handlers' annotations: every
//! route is registered through `utoipa_axum::routes!`, so a route cannot exist
//! without its description. Served at `/openapi.json`, browsable at `/docs`
//! (Swagger UI, vendored in the binary: the page works offline).

use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use super::{
    AppState, captions, error, formats, health, hls, lifecycle, owners, responses, tus, videos,
    webhooks,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ProStream",
        description = "Upload a video, poll its status, play it back as adaptive HLS.\n\n\
            Every error is an RFC 9457 problem document (`application/problem+json`) whose \
            `code` is one of `ErrorCode`.",
        license(name = "MIT", identifier = "MIT"),
    ),
    tags(
        (name = "videos", description = "Upload, inspect, cancel, retry and delete videos"),
        (name = "captions", description = "Caption and subtitle tracks added to a video after upload (WebVTT or SubRip)"),
        (name = "uploads", description = "Resumable uploads (tus 1.0.0): create, resume, terminate"),
        (name = "playback", description = "HLS playlists, segments and posters"),
        (name = "owners", description = "Usage against quotas; every owner's for admin keys"),
        (name = "webhooks", description = "Endpoints told when videos change state (Standard Webhooks), and their deliveries"),
        (name = "operations", description = "Health and readiness (metrics are on METRICS_ADDR)"),
    ),
    components(schemas(
        error::ErrorCode,
        error::Problem,
        tus::TusResumable,
        formats::Title,
        formats::HttpUrl,
        formats::PlainName,
        formats::LanguageTag,
    )),
    modifiers(&ApiKeyScheme),
)]
struct ApiDoc;

/// Declares the `api_key` scheme the `/v1` operations name in their `security`.
struct ApiKeyScheme;

impl utoipa::Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "An API key (`ps_…`) made with `prostream keys create`, sent as \
                 `Authorization: Bearer KEY`.",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("api_key", SecurityScheme::Http(scheme));
    }
}

/// Every route of the API with its description.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    let mut router = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(videos::router())
        .merge(tus::router())
        .merge(lifecycle::router())
        .merge(captions::router())
        .merge(owners::router())
        .merge(hls::router())
        .merge(health::router())
        .merge(webhooks::router());
    shared_refusals(router.get_openapi_mut());
    router
}

/// Documents on every operation what is answered before its handler runs: 414 `uri_too_long`
/// (the bound on path and query is checked before routing), and, where the path has parameters,
/// 400 `invalid_path` (a segment that is not UTF-8 once percent-decoded).
fn shared_refusals(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::{IntoResponses, openapi::RefOr};
    let too_long = responses::UriTooLong::responses();
    let invalid_path = responses::InvalidPath::responses();
    for (path, item) in openapi.paths.paths.iter_mut() {
        let operations = [
            (&mut item.get, true),
            (&mut item.put, true),
            (&mut item.post, true),
            (&mut item.delete, true),
            (&mut item.options, true),
            (&mut item.head, false),
            (&mut item.patch, true),
            (&mut item.trace, true),
        ];
        for (operation, with_body) in operations {
            let Some(operation) = operation else {
                continue;
            };
            let answers = &mut operation.responses.responses;
            for (status, response) in &too_long {
                let mut response = response.clone();
                // An answer to HEAD has no body.
                if let (RefOr::T(response), false) = (&mut response, with_body) {
                    response.content.clear();
                }
                answers.entry(status.clone()).or_insert(response);
            }
            if !path.contains('{') {
                continue;
            }
            match answers.get_mut("400") {
                Some(RefOr::T(bad_request))
                    if !bad_request.description.contains("invalid_path") =>
                {
                    bad_request.description.push_str(", `invalid_path`");
                }
                Some(_) => {}
                None => answers.extend(invalid_path.clone()),
            }
        }
    }
}

/// `/openapi.json` and the `/docs` page.
pub(super) fn ui(openapi: utoipa::openapi::OpenApi) -> Router<AppState> {
    SwaggerUi::new("/docs").url("/openapi.json", openapi).into()
}

/// The document as `/openapi.json` serves it.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_code_is_in_the_document() {
        let json = serde_json::to_value(openapi()).unwrap();
        assert_eq!(json["openapi"], "3.1.0");
        let codes = &json["components"]["schemas"]["ErrorCode"];
        let listed: Vec<&str> = codes["oneOf"]
            .as_array()
            .map(|variants| {
                variants
                    .iter()
                    .flat_map(|v| v["enum"].as_array().into_iter().flatten())
                    .filter_map(|c| c.as_str())
                    .collect()
            })
            .or_else(|| {
                codes["enum"]
                    .as_array()
                    .map(|e| e.iter().filter_map(|c| c.as_str()).collect())
            })
            .unwrap_or_default();
        for code in error::ErrorCode::ALL {
            assert!(
                listed.contains(&code.as_str()),
                "{} is missing",
                code.as_str()
            );
        }
    }

    #[test]
    fn every_error_with_a_body_is_a_problem_document() {
        let json = serde_json::to_value(openapi()).unwrap();
        let mut checked = 0;
        for (path, item) in json["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                for (status, response) in operation["responses"].as_object().unwrap() {
                    let error = status.parse::<u16>().is_ok_and(|s| s >= 400);
                    let Some(content) = response.get("content").filter(|_| error) else {
                        continue;
                    };
                    let types: Vec<&String> = content.as_object().unwrap().keys().collect();
                    assert_eq!(
                        types,
                        ["application/problem+json"],
                        "{method} {path} {status}"
                    );
                    assert_eq!(
                        content["application/problem+json"]["schema"]["$ref"],
                        "#/components/schemas/Problem",
                        "{method} {path} {status}"
                    );
                    checked += 1;
                }
            }
        }
        // The shared responses (http/responses.rs) are among them: 17 operations document a 401.
        assert!(checked > 60, "only {checked} problem responses");
    }

    #[test]
    fn every_operation_documents_what_is_refused_before_its_handler() {
        let json = serde_json::to_value(openapi()).unwrap();
        for (path, item) in json["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let responses = &operation["responses"];
                assert!(
                    responses["414"]["description"]
                        .as_str()
                        .is_some_and(|d| d.contains("uri_too_long")),
                    "{method} {path}"
                );
                if path.contains('{') {
                    assert!(
                        responses["400"]["description"]
                            .as_str()
                            .is_some_and(|d| d.contains("invalid_path")),
                        "{method} {path}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_path_is_described() {
        let json = serde_json::to_value(openapi()).unwrap();
        let paths = json["paths"].as_object().unwrap();
        for path in [
            "/v1/videos",
            "/v1/videos/{id}",
            "/v1/videos/{id}/cancel",
            "/v1/videos/{id}/retry",
            "/v1/videos/{id}/hls/{attempt}/{file}",
            "/v1/videos/{id}/signed/{token}/{attempt}/{file}",
            "/v1/uploads",
            "/v1/uploads/{id}",
            "/v1/usage",
            "/v1/owners",
            "/v1/webhooks",
            "/v1/webhooks/{id}",
            "/v1/webhooks/{id}/deliveries",
            "/healthz",
            "/readyz",
        ] {
            assert!(paths.contains_key(path), "{path} is not described");
        }
        // Served on METRICS_ADDR, not on the API's port.
        assert!(!paths.contains_key("/metrics"));
    }
}
