//! The client commands of `prostream`: upload a file and follow it, list and
//! manage videos. They talk to a running API over HTTP like any other client.

pub mod keys;
mod tus;
pub mod upload;
pub mod videos;

use std::{fmt, time::Duration};

use clap::Args;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Where the API is and how to authenticate.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// The API's base URL.
    #[arg(
        long,
        global = true,
        env = "PROSTREAM_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,
    /// API key, sent as `Authorization: Bearer KEY`.
    #[arg(long, global = true, env = "PROSTREAM_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Print JSON (the API's own documents) instead of text, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
}

/// What a command failed with: the API's problem `code` and `detail`, or a
/// transport failure described the same way.
#[derive(Debug)]
pub struct CliError {
    pub code: String,
    pub detail: String,
}

impl CliError {
    pub fn new(code: &str, detail: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            detail: detail.into(),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

impl std::error::Error for CliError {}

impl From<reqwest::Error> for CliError {
    fn from(err: reqwest::Error) -> Self {
        let code = if err.is_connect() {
            "connection_failed"
        } else if err.is_timeout() {
            "timeout"
        } else {
            "request_failed"
        };
        // reqwest's Display omits the cause ("connection refused"); the chain has it.
        let mut detail = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            detail.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        Self::new(code, detail)
    }
}

impl From<std::io::Error> for CliError {
    fn from(err: std::io::Error) -> Self {
        Self::new("io_error", err.to_string())
    }
}

/// An HTTP client bound to one server and key.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    api_key: Option<String>,
}

impl Client {
    pub fn new(args: &ServerArgs) -> Result<Self, CliError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("prostream-cli/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            base: args.server.trim_end_matches('/').to_owned(),
            api_key: args.api_key.clone(),
        })
    }

    /// `path` is absolute on the server (`/v1/videos`) or a full URL (a `Location`).
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self.http.request(method, self.url(path));
        match &self.api_key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    /// Sends and decodes a JSON answer; a problem answer becomes the error.
    pub async fn json<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T, CliError> {
        let response = check(request.send().await?).await?;
        Ok(response.json().await?)
    }
}

/// Passes a success through; turns anything else into the problem it carries.
pub async fn check(response: Response) -> Result<Response, CliError> {
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status();
    let body: Option<Value> = response.json().await.ok();
    let field = |name: &str| {
        body.as_ref()
            .and_then(|b| b.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let mut err = match (field("code"), field("detail")) {
        (Some(code), Some(detail)) => CliError { code, detail },
        _ => CliError::new(
            &format!("http_{}", status.as_u16()),
            format!("the server answered {status}"),
        ),
    };
    if status == StatusCode::UNAUTHORIZED {
        // The server speaks of headers; say what to set on this side.
        err.detail.push_str(KEY_HINT);
    }
    Err(err)
}

/// Added to a 401: where this command takes its key from.
const KEY_HINT: &str = "; prostream sends the key given with --api-key KEY or in the \
                        PROSTREAM_API_KEY environment variable";

/// True when the server answered 404 for a route (an older server without it).
pub fn is_missing_route(status: StatusCode) -> bool {
    status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED
}
