//! `prostream keys`: create, list and revoke API keys, and set owners' quotas. An operator command: it talks to Postgres
//! (`DATABASE_URL`) directly, like `migrate`, because no key exists yet to ask the API with.

use anyhow::Context;
use clap::{Args, Subcommand};
use prostream::{auth, db};
use time::format_description::well_known::Rfc3339;

#[derive(Args)]
pub struct KeysArgs {
    /// Postgres connection string.
    #[arg(
        long,
        global = true,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/prostream"
    )]
    database_url: String,
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key and print it once (only its hash is stored).
    Create {
        /// What the key is for, e.g. `ci` or `course-site`.
        #[arg(long)]
        name: String,
        /// The owner whose videos the key sees and creates; created if new. Default: the name.
        #[arg(long)]
        owner: Option<String>,
        /// An admin key sees and manages every owner's videos.
        #[arg(long)]
        admin: bool,
        /// Print only the key (for scripts: `KEY=$(prostream keys create --name x --quiet)`).
        #[arg(long)]
        quiet: bool,
    },
    /// List keys (prefix, name, owner, admin, created, last used, revoked).
    List,
    /// Revoke a key by its prefix (the first 11 characters, as `keys list` shows them).
    Revoke { prefix: String },
    /// Set an owner's quotas. A limit left out falls back to the API's default
    /// (QUOTA_MAX_BYTES, QUOTA_UPLOADS_PER_DAY); 0 means no limit.
    Quota {
        /// The owner's name (as `keys list` shows it).
        owner: String,
        /// Bytes of originals the owner may store.
        #[arg(long, value_parser = clap::value_parser!(i64).range(0..))]
        max_bytes: Option<i64>,
        /// Uploads the owner may start per UTC day.
        #[arg(long, value_parser = clap::value_parser!(i32).range(0..))]
        uploads_per_day: Option<i32>,
    },
}

pub async fn run(args: KeysArgs) -> anyhow::Result<()> {
    let pool = db::connect(&args.database_url, 1).await?;
    match args.command {
        KeysCommand::Create {
            name,
            owner,
            admin,
            quiet,
        } => {
            let owner = owner.unwrap_or_else(|| name.clone());
            let key = auth::generate();
            let mut tx = pool.begin().await?;
            let owner_id = db::keys::ensure_owner(&mut tx, &owner)
                .await
                .with_context(|| format!("cannot create the owner {owner:?} (1-100 characters)"))?;
            db::keys::insert_key(&mut tx, owner_id, &name, &key.prefix, &key.sha256, admin)
                .await
                .with_context(|| format!("cannot store the key {name:?} (1-100 characters)"))?;
            tx.commit().await?;
            if quiet {
                println!("{}", key.secret);
            } else {
                let role = if admin { "admin key" } else { "key" };
                println!(
                    "{role} {name:?} for owner {owner:?} (prefix {}):",
                    key.prefix
                );
                println!("{}", key.secret);
                println!("It is shown only now; send it as `Authorization: Bearer KEY`.");
            }
        }
        KeysCommand::List => {
            let keys = db::keys::list(&mut *pool.acquire().await?).await?;
            println!(
                "{:<11}  {:<20}  {:<20}  {:<5}  {:<20}  {:<20}  REVOKED",
                "PREFIX", "NAME", "OWNER", "ADMIN", "CREATED", "LAST USED"
            );
            let when = |t: Option<time::OffsetDateTime>| {
                t.and_then(|t| t.replace_millisecond(0).ok()?.format(&Rfc3339).ok())
                    .unwrap_or_else(|| "-".into())
            };
            for k in keys {
                println!(
                    "{:<11}  {:<20}  {:<20}  {:<5}  {:<20}  {:<20}  {}",
                    k.prefix,
                    k.name,
                    k.owner,
                    if k.admin { "yes" } else { "no" },
                    when(Some(k.created_at)),
                    when(k.last_used_at),
                    when(k.revoked_at),
                );
            }
        }
        KeysCommand::Revoke { prefix } => {
            anyhow::ensure!(
                db::keys::revoke(&mut *pool.acquire().await?, &prefix).await?,
                "no live key has the prefix {prefix:?} (see `prostream keys list`)"
            );
            println!("revoked {prefix}");
        }
        KeysCommand::Quota {
            owner,
            max_bytes,
            uploads_per_day,
        } => {
            let overrides = db::owners::Overrides {
                max_bytes,
                max_uploads_per_day: uploads_per_day,
            };
            anyhow::ensure!(
                db::owners::set_overrides(&mut *pool.acquire().await?, &owner, overrides).await?,
                "there is no owner {owner:?} (see `prostream keys list`)"
            );
            let shown = |v: Option<String>| v.unwrap_or_else(|| "the default".into());
            println!(
                "owner {owner:?}: max bytes {}, uploads per day {}",
                shown(max_bytes.map(|n| n.to_string())),
                shown(uploads_per_day.map(|n| n.to_string()))
            );
        }
    }
    Ok(())
}
