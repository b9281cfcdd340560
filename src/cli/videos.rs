//! `prostream videos list|show|cancel|retry|delete`.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::Value;

use super::{CliError, Client, ServerArgs, check};

#[derive(Debug, Args)]
pub struct VideosArgs {
    #[command(subcommand)]
    pub command: VideosCommand,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Subcommand)]
pub enum VideosCommand {
    /// Newest first.
    List {
        /// Only videos in this state (queued, processing, ready, failed, canceled).
        #[arg(long)]
        status: Option<String>,
        /// How many, 1-100.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// One video in full.
    Show { id: String },
    /// Stop a queued or processing video.
    Cancel { id: String },
    /// Queue a failed or canceled video again.
    Retry { id: String },
    /// Delete a video and everything it produced.
    Delete { id: String },
}

pub async fn run(args: VideosArgs) -> Result<(), CliError> {
    let client = Client::new(&args.server)?;
    let json = args.server.json;
    match args.command {
        VideosCommand::List { status, limit } => {
            let mut request = client
                .request(Method::GET, "/v1/videos")
                .query(&[("limit", limit.to_string())]);
            if let Some(status) = status {
                request = request.query(&[("status", status)]);
            }
            let page: Value = client.json(request).await?;
            if json {
                println!("{}", pretty(&page));
            } else {
                print_table(page["items"].as_array().map_or(&[][..], Vec::as_slice));
            }
            Ok(())
        }
        VideosCommand::Show { id } => {
            let video = client
                .json(client.request(Method::GET, &format!("/v1/videos/{id}")))
                .await?;
            print_video(&client, &video, json)
        }
        VideosCommand::Cancel { id } => act(&client, &id, "cancel", json).await,
        VideosCommand::Retry { id } => act(&client, &id, "retry", json).await,
        VideosCommand::Delete { id } => {
            let path = format!("/v1/videos/{id}");
            check(client.request(Method::DELETE, &path).send().await?).await?;
            if json {
                println!("{}", serde_json::json!({ "id": id, "deleted": true }));
            } else {
                println!("deleted {id}");
            }
            Ok(())
        }
    }
}

async fn act(client: &Client, id: &str, action: &str, json: bool) -> Result<(), CliError> {
    let video = client
        .json(client.request(Method::POST, &format!("/v1/videos/{id}/{action}")))
        .await?;
    print_video(client, &video, json)
}

/// A video as JSON (`--json`) or as a short human summary.
pub fn print_video(client: &Client, video: &Value, json: bool) -> Result<(), CliError> {
    if json {
        println!("{}", pretty(video));
        return Ok(());
    }
    let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
    println!("id:         {}", text(&video["id"]));
    println!("title:      {}", text(&video["title"]));
    let mut status = text(&video["status"]);
    if status == "processing" {
        let percent = video["progress"].as_f64().unwrap_or(0.0);
        status.push_str(&format!(" {percent:.0}% {}", text(&video["stage"])));
    }
    println!("status:     {status}");
    if let Some(error) = video["error"].as_object() {
        println!(
            "error:      {}: {}",
            error["code"].as_str().unwrap_or(""),
            error["message"].as_str().unwrap_or("")
        );
    }
    if let Some(duration) = video["source"]["duration_s"].as_f64() {
        println!("duration:   {duration:.1} s");
    }
    let renditions = renditions(video);
    if !renditions.is_empty() {
        println!("renditions: {renditions}");
    }
    if let Some(hls) = video["playback"]["hls"].as_str() {
        println!("playback:   {}", client.url(hls));
    }
    Ok(())
}

fn print_table(items: &[Value]) {
    let statuses: Vec<String> = items.iter().map(status_cell).collect();
    let width = statuses.iter().map(String::len).max().unwrap_or(0).max(10);
    println!(
        "{:<36}  {:<width$}  {:>8}  {:<24}  TITLE",
        "ID", "STATUS", "DURATION", "RENDITIONS"
    );
    for (video, status) in items.iter().zip(&statuses) {
        println!(
            "{:<36}  {:<width$}  {:>7.1}s  {:<24}  {}",
            video["id"].as_str().unwrap_or(""),
            status,
            video["source"]["duration_s"].as_f64().unwrap_or(0.0),
            renditions(video),
            video["title"].as_str().unwrap_or(""),
        );
    }
}

/// The status, and for a failed video why: `failed: transcode_failed`. (A canceled video's code is
/// `canceled`, which its status already says.)
fn status_cell(video: &Value) -> String {
    let status = video["status"].as_str().unwrap_or("");
    match video["error"]["code"].as_str() {
        Some(code) if code != status => format!("{status}: {code}"),
        _ => status.to_owned(),
    }
}

fn renditions(video: &Value) -> String {
    video["renditions"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|r| r["name"].as_str())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).expect("a JSON value serialises")
}
